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

from logpost.model import Evidence, RunLog, Severity
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
        return _teardown(run, params) or _hang(run, params) or _after_init(run, params)
    x = aborted[0]
    hit = Hit(evidence=[event_evidence(k.event) for k in aborted[:3]], confidence=params["sigabrt_confidence"],
              first_line=x.event.line, facts={"code": x.code, "signal": x.signal_name, "rank": _rank(x)})
    _note(hit, "Inferred from the exit code: a worker was aborted (SIGABRT, -6), which is how the NCCL "
          "watchdog ends a process after a collective timed out. Look for the watchdog lines of the "
          "other ranks to confirm.",
          "这是从退出码推断的：有 worker 被 abort（SIGABRT，-6），NCCL watchdog 在集合通信超时后"
          "就是这样结束进程的。可以在其他 rank 的日志里找 watchdog 的报错来确认。")
    return [hit]


# The NCCL watchdog's words across torch versions (shared/formats/deepspeed.md, section NCCL): the teardown
# ("Some NCCL operations have failed or timed out", "To avoid data inconsistency, we are taking the entire
# process down"), the work it caught ("failure detected by watchdog", "Exception (either an error or timeout)
# detected by watchdog at work"), "Watchdog caught collective operation timeout", Flight Recorder dumps. They
# say "failed or timed out": with no NCCL error named in the log (NCCL_ERROR's markers), it is the timeout.
_WATCHDOG = regex.compile(r"Some NCCL operations have failed or timed out|taking the entire process down"
                          r"|(?:failure|timeout\)) detected by watchdog|Watchdog caught|watchdog thread terminated"
                          r"|Flight ?Recorder|dump(?:ing)? debug info", regex.I)
_NCCL_FAULT = regex.compile(r"nccl\w*Error|unhandled (?:system|cuda) error|remote process exited|NCCL WARN NET"
                            r"|Got completion from peer|NCCL error|Connection reset by peer|internal error|invalid usage",
                            regex.I)


def _teardown(run: RunLog, params: Mapping[str, Any]) -> list[Hit]:
    """The watchdog tore the process down and the log names no NCCL error: a collective timed out."""
    said = [e for e in run.events if (e.data or {}).get("tag") in ("nccl_watchdog", "nccl_timeout")
            or (e.kind in ("error", "warning", "traceback") and _WATCHDOG.search(e.text))]
    if not said or any(_NCCL_FAULT.search(e.text) or (e.data or {}).get("tag") == "nccl_error" for e in run.events):
        return []
    return [Hit(evidence=[event_evidence(e) for e in said[:3]], confidence=params["teardown_confidence"],
                first_line=min(e.line for e in said), facts={"events": len(said)})]


def _after_init(run: RunLog, params: Mapping[str, Any]) -> list[Hit]:
    """A multi-rank log whose NCCL communicators came up (``Init COMPLETE``) and that ends there: no training
    step, no error, no normal end after the last init line: a hang in the first collective or a silent stop."""
    facts = run.facts
    nranks = facts.settings.get("nccl_ranks")
    first = facts.stated.get("nccl_ranks")
    if not isinstance(nranks, int) or nranks < 2 or first is None or facts.finished:
        return []
    frame = run.frame
    if frame["step"].notna().any():
        return []
    if any(e.line > first[0] and e.kind in ("error", "traceback") for e in run.events):
        return []
    evidence = [Evidence(first[0], first[1])]
    if facts.last_line_text and run.lines and run.lines != first[0]:
        evidence.append(Evidence(run.lines, facts.last_line_text))
    last = first[0]
    hit = Hit(evidence=evidence, confidence=params["after_init_confidence"], first_line=last,
              facts={"nranks": nranks, "init_line": last, "lines_after": max(0, run.lines - last)},
              severity=Severity.WARNING, variant="after_init")
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
