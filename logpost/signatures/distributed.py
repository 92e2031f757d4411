"""Process exits and distributed failures: exit codes, HOST_OOM, NCCL_TIMEOUT inferred from SIGABRT
or from a silent hang (no record for many step times while the job keeps logging, see :mod:`hang`).

The text markers (watchdog lines, NCCL errors, "Killed") are catalogue patterns; the code here
reads launcher exit codes, from ``Event.data`` (tag ``exit``: code, signal, local_rank) when the
parser provides them, else from the event text of torchrun, the deepspeed launcher, accelerate,
ChildFailedError summaries and shells (128 + signal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import regex

from logpost.model import Event, RunLog
from logpost.signatures.hang import find_stall
from logpost.signatures.loss import _note
from logpost.signatures.registry import Hit, detector, event_evidence

_EXIT = regex.compile(
    r"failed \(exitcode: (?P<code>-?\d+)\)(?: local_rank: (?P<rank>\d+))?"
    r"|exits with return code = (?P<code>-?\d+)"
    r"|exitcode\s*:\s*(?P<code>-?\d+)"
    r"|returned non-zero exit status (?P<code>-?\d+)"
    r"|Signal (?P<signal>\d+) \(SIG\w+\) received by PID"
    r"|exited with (?:exit )?code (?P<code>\d+)"
    r"|Exited with exit code (?P<code>\d+)")
SIGNALS = {9: "SIGKILL", 6: "SIGABRT", 11: "SIGSEGV", 7: "SIGBUS", 15: "SIGTERM", 2: "SIGINT", 1: "SIGHUP"}


@dataclass(frozen=True)
class Exit:
    event: Event
    code: int
    signal: int | None  # the signal that killed the process, from a negative code or 128+N

    @property
    def signal_name(self) -> str | None:
        return SIGNALS.get(self.signal, f"signal {self.signal}") if self.signal else None


def exits(run: RunLog) -> list[Exit]:
    """Non-zero process exits the log reports, in line order."""
    out = []
    for e in run.events:
        data = e.data or {}
        code: int | None = None
        sig: int | None = None
        if data.get("tag") == "exit" and isinstance(data.get("code"), int):
            code = int(data["code"])
            sig = int(data["signal"]) if isinstance(data.get("signal"), int) else None
        elif e.kind in ("error", "traceback", "warning"):
            m = _EXIT.search(e.text)
            if not m:
                continue
            if m.group("signal"):
                sig = int(m.group("signal"))
                code = -sig
            elif m.group("code") is not None:
                code = int(m.group("code"))
        if code is None or code == 0:
            continue
        if sig is None:
            # Popen returns -N for a signal; shells and srun report 128+N
            sig = -code if code < 0 else (code - 128 if 128 < code < 160 else None)
        out.append(Exit(e, code, sig))
    out.sort(key=lambda x: x.event.line)  # events come in emission order: a traceback is emitted at its end
    return out


def distributed(run: RunLog) -> bool:
    """A multi-process launch: a launcher exit line, rank prefixes, or a ChildFailedError."""
    return any(e.rank is not None or "ChildFailedError" in e.text or "elastic" in e.text
               or "local_rank" in e.text or (e.data or {}).get("tag") == "exit" for e in run.events)


def multi_process(run: RunLog) -> bool:
    """Several ranks take part, so a hang sits in a collective: rank prefixes on records or events, a
    launcher, NCCL lines, Megatron/DeepSpeed, or an HF header whose total batch spans several processes."""
    if distributed(run) or set(run.frameworks) & {"megatron", "deepspeed", "torchrun", "torchtitan"}:
        return True
    if "rank" in run.frame and run.frame["rank"].notna().any():
        return True
    if any("NCCL" in e.text for e in run.events):
        return True
    h = run.meta.get("header", {})
    per, acc, total = h.get("per_device_batch_size"), h.get("gradient_accumulation_steps"), h.get("total_batch_size")
    return bool(per and acc and total and total > per * acc)


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
