"""Process exits and distributed failures: exit codes, HOST_OOM, NCCL_TIMEOUT inferred from SIGABRT
or from a silent hang (no record for many step times while the job keeps logging, see :mod:`hang`).

The text markers (watchdog lines, NCCL errors, "Killed") are catalogue patterns; the code here
reads launcher exit codes, from ``Event.data`` (tag ``exit``: code, signal, local_rank) when the
parser provides them, else from the event text of torchrun, the deepspeed launcher, accelerate,
ChildFailedError summaries and shells (128 + signal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import regex

from logpost.model import RunLog
from logpost.signatures.base import Exit, Hit, detector, distributed, event_evidence, exits, multi_process
from logpost.signatures.base import note as _note
from logpost.signatures.hang import find_stall


@detector("HOST_OOM")
def host_oom(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """A worker killed by SIGKILL (-9, or 137 from a shell): almost always the kernel OOM killer on host RAM."""
    killed = [x for x in exits(run) if x.signal == 9]
    if not killed:
        return []
    x = killed[0]
    return [Hit(evidence=[event_evidence(k.event) for k in killed[:3]], confidence=params["sigkill_confidence"],
                first_line=x.event.line, facts={"code": x.code, "signal": x.signal_name, "rank": _rank(x)})]


@detector("NCCL_TIMEOUT")
def nccl_timeout_from_abort(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """A distributed worker that died of SIGABRT (-6): the usual end after the NCCL watchdog tears the
    process down; else a silent hang (variant ``hang``). The watchdog lines themselves are matched by
    the catalogue patterns."""
    aborted = [x for x in exits(run) if x.signal == 6]
    if not aborted or not distributed(run):
        return _hang(run, params)
    x = aborted[0]
    hit = Hit(evidence=[event_evidence(k.event) for k in aborted[:3]], confidence=params["sigabrt_confidence"],
              first_line=x.event.line, facts={"code": x.code, "signal": x.signal_name, "rank": _rank(x)})
    _note(hit, "Inferred from the exit code: a worker was aborted (SIGABRT, -6), which is how the NCCL "
          "watchdog ends a process after a collective timed out. Look for the watchdog lines of the "
          "other ranks to confirm.",
          "这是从退出码推断的：有 worker 被 abort（SIGABRT，-6），NCCL watchdog 在集合通信超时后"
          "就是这样结束进程的。可以在其他 rank 的日志里找 watchdog 的报错来确认。")
    return [hit]


def _hang(run: RunLog, params: Mapping[str, Any]) -> list[Hit]:
    """A distributed run that stopped making progress while it kept logging, and no watchdog fired."""
    if not multi_process(run):
        return []
    st = find_stall(run, params)
    if st is None:
        return []
    return [Hit(evidence=st.evidence(), confidence=params["hang_confidence"], first_step=st.step,
                first_line=st.anchor.line, facts=st.facts(), variant="hang")]


def _rank(x: Exit) -> Any:
    data = x.event.data or {}
    if isinstance(data.get("local_rank"), int):
        return data["local_rank"]
    m = regex.search(r"local_rank:? (\d+)", x.event.text)
    return int(m.group(1)) if m else x.event.rank
