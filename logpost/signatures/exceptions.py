"""Every exception placed (#13): the exception a run died of, placed by :mod:`crash` from its type, message
and frames, as a CONFIG_ERROR, DATASET_ERROR or ENV_ERROR finding. The catalogue patterns of the same ids
still match the sentences they know; a detector hit and a pattern hit for one id are merged into one finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from logpost.model import RunLog
from logpost.signatures.base import Hit, detector, event_evidence
from logpost.signatures.base import note as _note
from logpost.signatures.crash import fatal_exceptions


def _hits(run: RunLog, sig_id: str, params: Mapping[str, Any]) -> list[Hit]:
    placed = [p for p in fatal_exceptions(run) if p.sig == sig_id]
    if not placed:
        return []
    first = placed[0]
    conf = params.get(f"placed_{first.how}_confidence", 0.8)
    data = first.event.data or {}
    hit = Hit(evidence=[event_evidence(p.event) for p in placed[:3]], confidence=conf,
              first_line=first.event.line,
              facts={"exc_type": data.get("exc_type"), "count": sum(p.event.count for p in placed),
                     "events": len(placed)})
    frames = list(data.get("frames") or ())
    if first.how == "frames" and frames:
        _note(hit, f"Placed by the frames it was raised from: {frames[-1]}.",
              f"根据抛出异常的调用栈判断：{frames[-1]}。")
    return [hit]


@detector("CONFIG_ERROR")
def config_error(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """The run died of a config or command-line error: argparse's usage error, a validation error."""
    return _hits(run, "CONFIG_ERROR", params)


@detector("DATASET_ERROR")
def dataset_error(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """The run died of a lookup or value error raised from dataset, tokenisation or collator code."""
    return _hits(run, "DATASET_ERROR", params)


@detector("ENV_ERROR")
def env_error(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """The run died of an import error, an undefined symbol, a GPU the build does not support."""
    return _hits(run, "ENV_ERROR", params)
