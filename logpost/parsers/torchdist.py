"""torchrun / torch.distributed.elastic and NCCL: exits, the ChildFailedError table, the watchdog.

Formats: shared ``formats/deepspeed.md`` sections 6-8, tested on real lines in tests/test_ingest.py.

* ``failed (exitcode: -9) local_rank: 1 (pid: 91820) of binary: ...`` in its three logger eras
  (``ERROR:torch.distributed...``, ``[...] torch.distributed...: [ERROR]``, glog ``E1223 ...``):
  error, tag ``exit``;
* the ``ChildFailedError`` table: every ``[N]:`` failure block (root cause and others) becomes an
  error with tag ``exit`` (``exitcode  : -6 (pid: 540118)``, torch 2.13 ``exitcode  : -9 (pid: 13816)
  (SIGKILL)``, ``rank : 1 (local_rank: 1)``, the signal name from ``Signal 6 (SIGABRT) received by PID``);
  a worker decorated with ``@record`` puts its whole traceback under ``traceback : Traceback (most
  recent call last):``, indented, which the table skips (the event parser reads it);
  a block flattened onto one line by a log viewer (CloudWatch for SageMaker: ``| <time> | [2]: time :
  ... rank : 2 (local_rank: 2) exitcode : -6 (pid: 189) ... Signal 6 (SIGABRT) received by PID 189``)
  is read the same;
* ``Sending process N closing signal SIGTERM``: warning, tag ``closing_signal``;
* the agent itself stopped by a signal (preemption, ``scancel``, a closed terminal), the elastic agent's
  ``Received 15 death signal, shutting down workers`` (``Received Signals.SIGHUP death signal`` where
  the enum prints by name): error, tag ``exit`` with code ``-N``, the signal name, ``local_rank`` None and
  ``agent`` True (torch then raises ``SignalException: Process N got signal: 15``, a traceback);
* the NCCL watchdog in every torch era: ``[E ProcessGroupNCCL.cpp:737] [Rank 1] Watchdog caught
  collective operation timeout: WorkNCCL(SeqNum=.., OpType=.., [NumelIn=.., NumelOut=..,]
  Timeout(ms)=..) ran for .. milliseconds before timing out.``, the blocking-wait form, with
  ``[rank0]:[E321 ...]`` prefixes and ``[PG 3 Rank 0]`` / ``[PG ID 0 PG GUID 0(default_pg) Rank 1]``
  headers: error, tag ``nccl_timeout``, also hard-wrapped by a terminal (``...Timeout(ms)=1800000) r`` /
  ``an for ...``, or cut inside ``OpT`` / ``ype=``: the fields before the cut); the teardown lines (``Some
  NCCL operations have failed or timed out``, ``taking the entire process down``, ``Timeout at NCCL work``,
  ``detected by watchdog``, ``watchdog thread terminated``, ``Received a dump signal due to a collective
  timeout``) and torch >= 2.2's heartbeat monitor (``Heartbeat monitor timed out!``, glog level F
  ``ProcessGroupNCCL's watchdog got stuck for 600 seconds``) error, tag ``nccl_watchdog``; Flight
  Recorder notices warning;
* NCCL ``NET/IB : Got completion from peer ... with error 12`` / ``status=5``: error, tag
  ``nccl_error`` kind ``ib_completion``; other ``NET/IB`` WARN lines kind ``ib_error``;
* slurm ``srun: error: node: task 3: Exited with exit code 1`` / ``: Killed``: error, tag ``exit``.
"""

from __future__ import annotations

import re
import signal
from typing import Any

from logpost.model import Line
from logpost.parsers.base import Builder, LineParser
from logpost.parsers.deepspeed import signal_name

_FAILED = re.compile(r"failed \(exitcode: (-?\d+)\) local_rank: (\d+) \(pid: (\d+)\)")
_CLOSING = re.compile(r"Sending process (\d+) closing signal (SIG\w+)")
_DEATH = re.compile(r"Received (?:(\d+)|Signals\.(SIG[A-Z0-9]+)) death signal")
_GLOG_PID = re.compile(r"[IWEF]\d{4} [\d:.]+ (\d+) ")
_ROW = re.compile(r"^\s*(time|host|rank|exitcode|error_file|traceback)\s*:\s?(.*)$")
_BLOCK = re.compile(r"^\s*\[(\d+)\]:\s*$")
_ROW_RANK = re.compile(r"(-?\d+)(?: \(local_rank: (\d+)\))?")
_ROW_EXIT = re.compile(r"(-?\d+)(?: \(pid: (\d+)\))?")
_SIGNAL = re.compile(r"Signal (\d+) \((SIG\w+)\)")

_TIMEOUT = re.compile(r"WorkNCCL\((.*?)\)\s*(?:ran for (\d+) milliseconds|timed out)")
# a hard-wrapped paste cuts the watchdog line ("...Timeout(ms)=1800000) r" + "an for 1804582 ...", or
# "WorkNCCL(SeqNum=1, OpT" + "ype=BROADCAST, ..."): the fields up to the cut are still read
_WORK_OPEN = re.compile(r"WorkNCCL\((.*)")
_FLAT_ROW = re.compile(r"rank\s*:\s*(-?\d+) \(local_rank: (\d+)\)\s+exitcode\s*:\s*(-?\d+)(?: \(pid: (\d+)\))?")
_WORK_FIELD = re.compile(r"(\w+(?:\(ms\))?)=([\w\-\[\]]+)")
_RANK_HDR = re.compile(r"\[(?:PG (?:ID )?(\d+)[^\]]*?)?\s*Rank (\d+)\]")
_WORK_SEQ = re.compile(r"(?:watchdog at work(?: sequence id)?|Timeout at NCCL work):\s*(\d+)")
_LAST = re.compile(r"last enqueued(?: NCCL)? work: (\d+), last completed(?: NCCL)? work: (\d+)")
_IB = re.compile(r"Got completion from peer ([\w.:<>\[\]-]+) with (?:error |status=)(\d+)")
_SRUN = re.compile(r"srun: error: ([\w.-]+): tasks? ([\d,\-\[\] ]+): (Exited with exit code (\d+)|Killed|Terminated|"
                   r"Aborted|Segmentation fault)")
_TEARDOWN = ("Some NCCL operations have failed or timed out", "taking the entire process down",
             "detected by watchdog", "Timeout at NCCL work", "watchdog thread terminated",
             "failure detected by watchdog",
             # torch >= 2.2: a rank whose own watchdog saw the timeout asks the others to dump their state
             "dump signal due to a collective timeout",
             # torch >= 2.2 heartbeat monitor: the watchdog thread itself was stuck in a NCCL/CUDA call
             "Heartbeat monitor timed out", "watchdog got stuck for")
_NCCL_INIT = re.compile(r"NCCL INFO .*\bnranks (\d+)\b.*Init COMPLETE")
_FLIGHT = ("FlightRecorder", "Flight Recorder", "preparing to dump debug info", "TORCH_NCCL_TRACE_BUFFER_SIZE")


def _signum(name: str) -> int | None:
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class TorchDistParser(LineParser):
    # ProcessGroupNCCL / [PG N Rank N] lines carry a glog level ("[E ...", "[rank0]:[E1206", "W1206"): the
    # event parser's markers bring them in
    markers = ("exitcode", "closing signal", "death signal", "ChildFailedError", "Root Cause", "Watchdog caught", "WorkNCCL(",
               "NET/IB", "srun: error", "FlightRecorder",
               # torch >= 2.2; the heartbeat's last line is glog level F, which the event parser does not take
               "Heartbeat monitor timed out", "watchdog got stuck for", "dump signal due to a collective timeout",
               # NCCL_DEBUG=INFO: a communicator is up (meta nccl_ranks: its nranks, stated by the first such line)
               "Init COMPLETE")

    def __init__(self) -> None:
        self.table: dict[str, Any] | None = None

    def idle(self) -> bool:
        return self.table is None  # an open ChildFailedError table ends at the first line not of it

    def feed(self, line: Line, out: Builder) -> None:
        if out.is_claimed(line):  # a metric record of another parser
            return
        text = line.text
        if self.table is not None and self._table_line(line, out):
            return
        if "Init COMPLETE" in text:
            m = _NCCL_INIT.search(text)
            if m:
                out.saw("nccl")
                out.set_meta("nccl_ranks", int(m.group(1)), line)
            return
        if "ChildFailedError" in text:
            out.saw("torchrun")
            self.table = {"blocks": [], "root": False, "cur": None}
            out.follow(self, 60)
            return
        if "exitcode" in text:
            m = _FAILED.search(text)
            if m:
                code = int(m.group(1))
                out.saw("torchrun")
                out.event("error", line, tag="exit", code=code, signal=signal_name(code),
                          local_rank=int(m.group(2)), pid=int(m.group(3)), launcher="torchrun")
                return
            m = _FLAT_ROW.search(text)
            if m:  # a ChildFailedError block flattened onto one line (CloudWatch / SageMaker log viewers)
                code = int(m.group(3))
                named = _SIGNAL.search(text)
                out.saw("torchrun")
                out.event("error", Line(line.no, line.text, int(m.group(1))), tag="exit", code=code,
                          signal=named.group(2) if named else signal_name(code), local_rank=int(m.group(2)),
                          pid=_int(m.group(4)), launcher="torchrun")
            return
        if "closing signal" in text:
            m = _CLOSING.search(text)
            if m:
                out.saw("torchrun")
                out.event("warning", line, tag="closing_signal", pid=int(m.group(1)), signal=m.group(2))
            return
        if "death signal" in text:
            m = _DEATH.search(text)
            if m:
                num = int(m.group(1)) if m.group(1) else _signum(m.group(2))
                pid = _GLOG_PID.search(text)
                out.saw("torchrun")
                out.event("error", line, tag="exit", code=-num if num else None,
                          signal=signal_name(-num) if num else m.group(2), local_rank=None,
                          pid=int(pid.group(1)) if pid else None, launcher="torchrun", agent=True)
            return
        if ("WorkNCCL(" in text and "timed out" in text) or "Watchdog caught collective operation timeout" in text:
            self._timeout(line, out)
            return
        if "terminate called after throwing" in text and "DistBackendError" in text:
            self._watchdog(line, out, "error")  # the NCCL watchdog tearing the process down (torch >= 2.2)
            return
        if "NCCL" in text or "watchdog" in text or "[PG " in text:
            if any(t in text for t in _TEARDOWN):
                self._watchdog(line, out, "error")
                return
            if any(t in text for t in _FLIGHT):
                self._watchdog(line, out, "warning")
                return
        if "NET/IB" in text:
            m = _IB.search(text)
            if m:
                out.event("error", line, tag="nccl_error", kind="ib_completion", status=int(m.group(2)),
                          peer=m.group(1))
            elif "WARN" in text:
                out.event("error", line, tag="nccl_error", kind="ib_error")
            return
        if "srun: error" in text:
            m = _SRUN.search(text)
            if m:
                code = int(m.group(4)) if m.group(4) else (-9 if m.group(3) == "Killed" else
                                                           -15 if m.group(3) == "Terminated" else
                                                           -6 if m.group(3) == "Aborted" else -11)
                # a shell's / srun's 128 + signal (137 = SIGKILL) names the signal too
                sig = signal_name(code) or (signal_name(128 - code) if 128 < code < 160 else None)
                out.event("error", line, tag="exit", code=code, signal=sig, local_rank=None,
                          pid=None, launcher="srun", host=m.group(1), tasks=m.group(2).strip())

    # ------------------------------------------------------------------------------ NCCL
    def _rank(self, line: Line) -> tuple[int | None, int | None]:
        m = _RANK_HDR.search(line.text)
        pg = _int(m.group(1)) if m else None
        if line.rank is not None:
            return line.rank, pg
        return (_int(m.group(2)) if m else None), pg

    def _timeout(self, line: Line, out: Builder) -> None:
        m = _TIMEOUT.search(line.text)
        cut = None if m else _WORK_OPEN.search(line.text)
        fields = dict(_WORK_FIELD.findall(m.group(1) if m else cut.group(1) if cut else ""))
        timeout = _int(fields.get("Timeout(ms)"))
        if timeout is None and "Watchdog caught" not in line.text:
            return  # a blocking-wait line without its timeout: not this form
        rank, _ = self._rank(line)
        out.saw("nccl")
        out.event("error", Line(line.no, line.text, rank), tag="nccl_timeout", timeout_ms=timeout,
                  ran_ms=_int(m.group(2)) if m else None, op=fields.get("OpType"), seq=_int(fields.get("SeqNum")))

    def _watchdog(self, line: Line, out: Builder, kind: str) -> None:
        rank, pg = self._rank(line)
        seq = _WORK_SEQ.search(line.text)
        last = _LAST.search(line.text)
        out.event(kind, Line(line.no, line.text, rank), tag="nccl_watchdog", seq=_int(seq.group(1)) if seq else None,
                  last_enqueued=_int(last.group(1)) if last else None,
                  last_completed=_int(last.group(2)) if last else None, pg=pg)

    # ------------------------------------------------------------------------------ ChildFailedError
    def _table_line(self, line: Line, out: Builder) -> bool:
        t = self.table
        assert t is not None
        text = line.text.strip()
        if text.startswith("Root Cause"):
            t["root"] = True
            return True
        if text.startswith("Failures:"):
            t["root"] = False
            return True
        m = _BLOCK.match(text)
        if m:
            self._flush_block(out)
            t["cur"] = {"root": t["root"], "line": line}
            return True
        m = _ROW.match(line.text)
        if m and t["cur"] is not None:
            t["cur"][m.group(1)] = m.group(2).strip()
            if m.group(1) == "exitcode":
                t["cur"]["line"] = line
            return True
        if t["cur"] is not None and t["cur"].get("traceback", "").startswith("Traceback") \
                and line.text.startswith("  ") and not _BLOCK.match(text) and not set(text) <= set("=-"):
            # the worker's own traceback (an error_file written by @record), indented under its row: the
            # event parser makes the traceback event, the table goes on after it
            return True
        if set(text) <= set("=-") and len(text) >= 20 or text.endswith("FAILED") or text.startswith("<NO_OTHER"):
            if text.startswith("=") and t["cur"] is not None:  # the closing border
                self._flush_block(out)
                self.table = None
                out.stop_following(self)
            return True
        if not text:
            return True
        self._flush_block(out)
        self.table = None
        out.stop_following(self)
        return False

    def _flush_block(self, out: Builder) -> None:
        t = self.table
        cur = t["cur"] if t else None
        if t is None or cur is None:
            return
        t["cur"] = None
        ex = _ROW_EXIT.match(cur.get("exitcode", ""))
        if not ex:
            return
        code = int(ex.group(1))
        rk = _ROW_RANK.match(cur.get("rank", ""))
        sig = _SIGNAL.search(cur.get("traceback", ""))
        line: Line = cur["line"]
        rank = _int(rk.group(1)) if rk else None
        out.event("error", Line(line.no, line.text, rank), tag="exit", code=code,
                  signal=sig.group(2) if sig else signal_name(code),
                  local_rank=_int(rk.group(2)) if rk else None, pid=_int(ex.group(2)), launcher="torchrun",
                  root_cause=bool(cur["root"]), host=cur.get("host"))

    def finish(self, out: Builder) -> None:
        if self.table is not None:
            self._flush_block(out)
            self.table = None
