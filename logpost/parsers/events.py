"""Errors, warnings and Python tracebacks, whatever framework printed them.

The event contract (signature detectors are written against it; keep it stable)
--------------------------------------------------------------------------------

``Event.kind`` is one of ``"error"``, ``"warning"``, ``"traceback"``, ``"info"``. ``Event.rank`` is the
rank when the log says it (a launcher prefix, ``[Rank N]``, ``[RANK:n]``). Repeated identical
messages are folded into one event (``count``, ``last_line``); texts that differ only in digits
(timestamps, pids) count as identical, except that tagged events fold only with events of the same
rank and the same identifying fields (``base.FOLD_FIELDS``: e.g. OVERFLOW lines at different scales
stay apart). Structured fields live in ``Event.data``, with ``data["tag"]`` naming the family:

==================  =========================  ===================================================
tag                 kind                       data keys
==================  =========================  ===================================================
``overflow``        warning                    attempted_scale (float), next_scale (float),
                                               hysteresis (bool); DeepSpeed ``OVERFLOW!`` in every
                                               variant (``[deepspeed]``, ``[deepscale]``, hysteresis,
                                               unfused ``fp16 dynamic loss scale overflow!``)
``loss_scale_min``  error | traceback          (none): ``Current loss scale already at minimum``
``lr_before_step``  warning                    (none): ``tried to get lr value before
                                               scheduler/optimizer started stepping`` (bare too)
``killing``         warning                    pid, launcher: DeepSpeed launcher ``Killing subprocess``
``signal_received`` warning                    signal, launcher: ``Main process received SIGTERM``
``closing_signal``  warning                    pid, signal: torchrun ``Sending process N closing signal``
``exit``            error                      code (int, negative = signal), signal (``"SIGKILL"``
                                               or None), local_rank (int|None), pid (int|None),
                                               launcher (``deepspeed``, ``torchrun``, ``srun``,
                                               ``subprocess``, ``dataloader``: ``DataLoader worker
                                               (pid N) is killed by signal: Killed.``); plus
                                               root_cause (bool) on torchrun ChildFailedError rows,
                                               host when printed, agent (True) on the torchrun
                                               agent's own ``Received 15 death signal``
``nccl_timeout``    error                      timeout_ms (int|None: None when a hard-wrapped paste
                                               cut the line before it), ran_ms (int|None), op
                                               (str|None), seq (int|None); the watchdog line in
                                               every torch era
``nccl_watchdog``   error | warning            seq, last_enqueued, last_completed, pg (int|None
                                               each): teardown and ``[PG N Rank N]`` lines, the
                                               heartbeat monitor (``watchdog got stuck``), Flight
                                               Recorder notices (warning)
``nccl_error``      error                      kind: ``unhandled system error``, ``remote error``,
                                               ``internal error``, ``unhandled cuda error``,
                                               ``invalid usage``, ``ib_completion`` (then status,
                                               peer), ``ib_error``
``nccl_warn``       warning                    (none): any other ``NCCL WARN`` line
``cuda_oom``        traceback | error          requested_bytes, total_bytes, free_bytes (int|None
                                               each; GiB/MiB/KiB/B parsed, hard-wrapped pastes joined)
``killed``          error                      pid (int|None): a plain ``Killed`` line, a shell's
                                               ``1234 Killed  python ...``, zsh's ``zsh: killed`` and
                                               ``[1]  1234 killed  python``, ``已杀死`` (zh locale),
                                               kernel oom-killer text
``slurm_cancelled`` error                      reason (e.g. ``TIME LIMIT``)
``progress``        info                       step, total, sec_per_step (float|None): the training
                                               bar as it stood at the end (the last tqdm redraw)
``traceback_cut``   traceback                  end_line (int): a traceback still open, with no
                                               exception line, when the log ended (``exc_type`` None;
                                               ``end_line`` is the last line it took in, so a
                                               detector can tell a log that stops inside it)
``usage_error``     error                      prog (str): argparse's ``prog.py: error: ...`` line
                                               (``unrecognized arguments``, ``the following arguments
                                               are required``, ``argument --x: invalid ...``)
``masked_labels``   warning                    (none): a sample or turn left without supervised
                                               tokens: TRL's completion collator (``Could not find
                                               response key``, ``This instance will be ignored in
                                               loss calculation``, also the bare message tail),
                                               Axolotl's ``Turn indices: start=-1, end=-1`` trace and
                                               ``Could not find content start/end boundary``
==================  =========================  ===================================================

Tracebacks are one event of kind ``traceback`` whose text is the final exception line and whose
data holds ``exc_type``, ``message``, ``frames`` (last 8, ``file:line in func``), ``chain`` (the
chained exceptions, first to last) and ``start_line``; when the exception is one of the families
above it also carries that ``tag`` and its fields. A traceback with frames but no exception line is
still an event (text ``Traceback (most recent call last): (no exception line)``, ``exc_type`` None, at
its first line); tag ``traceback_cut`` when the log ended inside it. Tracebacks of several ranks may interleave
(``[rank0]:`` / ``[rank1]:`` prefixes) and are assembled per rank; Python 3.11 ``^^^^`` marker lines
and source lines are skipped. Other lines at ERROR (CRITICAL, FATAL) / WARNING level (logging, glog ``E1206``/``W1206``,
``[E ...]``/``[W ...]``, ``*Error:``, ``*Warning:``) become untagged error / warning events.
In a run directory every event also has ``data["source"]``, the file it came from.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from logpost.model import Line
from logpost.parsers.base import Builder, LineParser

# pyarrow names its parse failure ArrowInvalid (no Error suffix): ``pyarrow.lib.ArrowInvalid: JSON parse error``
_EXC = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Exit|Interrupt|Failure|ArrowInvalid))(?::\s?(.*))?$")
# An exception message that starts on the next line (``raise RuntimeError("\n  The detected CUDA version ...")``,
# bitsandbytes' ``RuntimeError: `` + indented "CUDA Setup failed ...") or a message ending in ":" whose details
# follow indented (torch's ``Error(s) in loading state_dict for X:`` + tab-indented "size mismatch ..."): up to
# this many lines are joined to it.
MESSAGE_TAIL = 3
_FRAME = re.compile(r'^\s+File "([^"]+)", line (\d+), in (.+)$')
_ERROR_LEVEL = re.compile(
    r"\[(?:ERROR|CRITICAL|FATAL)[\]|]|\bERROR:|\b(?:ERROR|CRITICAL)\b\s*[-|:\]]|^\s*E\d{4} \d|\[E[\s\d]|"
    r"\bKilled\b|exits with return code|failed \(exitcode|NCCL error|CUDA error|out of memory|\bAssertion `[^`]*` failed|"
    r"^(?:[\w.]+\.)?\w*(?:Error|Exception):")
_WARN_LEVEL = re.compile(r"\[(?:WARNING|WARN)[\]|]|\bWARNING:|\bWARNING\b\s*[-|:\]]|^\s*W\d{4} \d|\[W[\s\d]|"
                         r"\w+Warning:|NCCL WARN")
# Cheap tests before the level regexes: a line at ERROR (WARNING) level holds one of these.
_ERROR_KEYS = ("ERROR", "Error", "Exception", "CRITICAL", "FATAL", "Killed", " killed ", "zsh: killed", "已杀死",
               "exits with", "exitcode", "NCCL", "CUDA",
               "out of memory", "[E", "oom-kill", "Out of memory", "CANCELLED", "Assertion `")
# argparse's exit line: "usage: ..." then "train.py: error: unrecognized arguments: --lora_rank 8"
_USAGE_ERROR = re.compile(r"\s*(?:([\w.\-/]+): )?error: (?:unrecognized arguments|the following arguments are required"
                          r"|argument -|one of the arguments|ambiguous option|invalid choice|expected one argument)")
_WARN_KEYS = ("WARN", "Warning", "[W")
_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")

# ---------------------------------------------------------------------------------- families
_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|HIP out of memory")
_SIZE = r"([\d.]+)\s*([KMGT]i?B|bytes)"
_REQ = re.compile(r"Tried to allocate\s+" + _SIZE)
_TOTAL = re.compile(r"total capac\w*\s+(?:of\s+)?" + _SIZE + r"|" + _SIZE + r"\s+total capacity")
_FREE = re.compile(r"of which\s+" + _SIZE + r"\s+is free|" + _SIZE + r"\s+free\b")
_UNITS = {"B": 1, "bytes": 1, "KB": 1000, "KiB": 1024, "MB": 1000 ** 2, "MiB": 1024 ** 2, "GB": 1000 ** 3,
          "GiB": 1024 ** 3, "TB": 1000 ** 4, "TiB": 1024 ** 4}
# bash "Killed" / "1234 Killed  python ..."; zsh "zsh: killed  python ..." and its job line "[1]  26478 killed  python";
# bash in a Chinese locale "已杀死"
_KILLED = re.compile(r"Killed process (\d+)|\b(\d+)\s+Killed\s+\S|^\s*Killed\s*$|\boom-kill\b|Out of memory: Kill"
                     r"|\[\d+\]\s*[+-]?\s+(\d+) killed\s+\S|\bzsh: killed\b|^\s*(?:(\d+)\s+)?已杀死")
_KILLED_KEYS = ("Killed", "oom-kill", "Out of memory: Kill", " killed ", "zsh: killed", "已杀死")
_KILLED_PID = re.compile(r"Killed process (\d+)()")
_NCCL_KINDS = (
    ("ncclSystemError", "unhandled system error"), ("unhandled system error", "unhandled system error"),
    ("ncclRemoteError", "remote error"), ("remote process exited", "remote error"),
    ("ncclInternalError", "internal error"), ("internal error", "internal error"),
    ("ncclUnhandledCudaError", "unhandled cuda error"), ("unhandled cuda error", "unhandled cuda error"),
    ("ncclInvalidUsage", "invalid usage"), ("invalid usage", "invalid usage"),
)
# torch's DataLoader (csrc/DataLoader.cpp): a worker process ended by a signal, named by strsignal()
_DL_KILLED = re.compile(r"DataLoader worker \(pid (\d+)\) is killed by signal: ([A-Za-z ]+?)\.")
_STRSIGNAL = {"Killed": 9, "Bus error": 7, "Segmentation fault": 11, "Aborted": 6, "Terminated": 15, "Hangup": 1,
              "Interrupt": 2, "Floating point exception": 8, "Illegal instruction": 4}
_SUBPROC = re.compile(r"returned non-zero exit status (-?\d+)|died with <Signals\.(SIG\w+): (\d+)>")
_SLURM = re.compile(r"CANCELLED AT \S+(?: DUE TO ([A-Z ]+?))? \*\*\*")


# Label-masking diagnostics: printed while the data is prepared, or by the collator on any batch.
MASKING = ("This instance will be ignored in loss calculation", "Could not find response key",
           "Could not find instruction key", "Turn indices: start=", "Could not find content start boundary",
           "Could not find content end boundary")


def size_bytes(num: str, unit: str) -> int | None:
    try:
        return int(float(num) * _UNITS[unit])
    except (KeyError, ValueError):
        return None


def _size(pattern: re.Pattern[str], text: str) -> int | None:
    m = pattern.search(text)
    if not m:
        return None
    groups = [g for g in m.groups() if g is not None]
    return size_bytes(groups[0], groups[1]) if len(groups) >= 2 else None


def oom_sizes(text: str) -> dict[str, int | None]:
    """Sizes of a CUDA OOM message (torch <=2.0 ``(GPU 3; 31.75 GiB total capacity; ...; 340.94 MiB
    free; ...)`` and newer ``GPU 0 has a total capacity of 63.42 GiB of which 1.20 GiB is free``)."""
    return {"requested_bytes": _size(_REQ, text), "total_bytes": _size(_TOTAL, text),
            "free_bytes": _size(_FREE, text)}


def classify(text: str) -> dict[str, Any] | None:
    """The family of an error text (an exception line or a log line), as event data with its tag."""
    if "out of memory" in text or "OutOfMemory" in text:
        if _OOM.search(text) and "NCCL WARN" not in text:
            return {"tag": "cuda_oom", **oom_sizes(text)}
    if "loss scale already at minimum" in text:
        return {"tag": "loss_scale_min"}
    if "DataLoader worker (pid " in text:
        m = _DL_KILLED.search(text)
        if m and m.group(2) in _STRSIGNAL:
            from logpost.parsers.deepspeed import signal_name

            code = -_STRSIGNAL[m.group(2)]
            return {"tag": "exit", "code": code, "signal": signal_name(code), "local_rank": None,
                    "pid": int(m.group(1)), "launcher": "dataloader"}
    if any(k in text for k in _KILLED_KEYS):
        m = _KILLED_PID.search(text) or _KILLED.search(text)
        if m:
            pid = next((g for g in m.groups() if g), None)
            return {"tag": "killed", "pid": int(pid) if pid else None}
    if "nccl" in text or "NCCL" in text:
        for needle, kind in _NCCL_KINDS:
            if needle in text:
                return {"tag": "nccl_error", "kind": kind}
    if "exit status" in text or "died with <Signals" in text:
        m = _SUBPROC.search(text)
        if m:
            code = int(m.group(1)) if m.group(1) is not None else -int(m.group(3))
            from logpost.parsers.deepspeed import signal_name

            return {"tag": "exit", "code": code, "signal": m.group(2) or signal_name(code), "local_rank": None,
                    "pid": None, "launcher": "subprocess"}
    return None


LEVEL_MEMO = 4096  # texts whose level-line decision is remembered (at most ~2 MB: texts of <= MEMO_TEXT)
MEMO_TEXT = 512


def _decide(text: str) -> tuple[str, str, dict[str, Any]] | None:
    """What a level-tagged line (not in a traceback, not claimed) becomes: ``(how, kind, data)`` where
    ``how`` is ``"event"`` or ``"emit"`` (an error that may wait for its wrapped sizes), or None."""
    if "Turn indices: start=" in text and "start=-1" not in text:
        return "event", "info", {"tag": "turn_indices"}  # a turn whose boundaries were found: it is trained
    if ("ould not find" in text or "Turn indices" in text or "ignored in loss" in text) and \
            any(m in text for m in MASKING):
        return "event", "warning", {"tag": "masked_labels"}
    if "error: " in text:
        m = _USAGE_ERROR.match(text)
        if m:
            return "event", "error", {"tag": "usage_error", "prog": m.group(1)}
    glog = text.lstrip()[:1]
    maybe_error = glog == "E" or any(k in text for k in _ERROR_KEYS)
    maybe_warn = glog == "W" or any(k in text for k in _WARN_KEYS)
    if not (maybe_error or maybe_warn):
        return None
    fam = classify(text) if maybe_error else None
    if "CANCELLED" in text and "***" in text:
        m = _SLURM.search(text)
        if m:
            return "event", "error", {"tag": "slurm_cancelled", "reason": (m.group(1) or "").strip() or None}
    if maybe_error and _ERROR_LEVEL.search(text):
        return "emit", "error", fam or {}
    if fam is not None:
        return "emit", _kind_for(fam.get("tag"), "error"), fam
    if maybe_warn and _WARN_LEVEL.search(text):
        return "event", "warning", {"tag": "nccl_warn"} if "NCCL WARN" in text else {}
    return None


_remembered_decision = functools.lru_cache(maxsize=LEVEL_MEMO)(_decide)


def _kind_for(tag: str | None, default: str) -> str:
    return "error" if tag in ("cuda_oom", "loss_scale_min", "killed", "nccl_error", "exit") else default


class EventParser(LineParser):
    """Tracebacks and level-tagged lines; must run after the framework parsers (it skips lines they
    already made an event of)."""

    # glog: "E1206 18:44:12...", "[E ProcessGroupNCCL.cpp:475]", "[rank4]:[E1206 ..."; dmesg oom-kill lines
    # say "Killed process"
    markers = ("Traceback (most recent call last)", "Error", "ERROR", "CRITICAL", "FATAL", "Exception", "WARN",
               "Warning", "Killed", " killed ", "zsh: killed", "已杀死", "oom-kill", "out of memory", "[E ", "[W ",
               "CANCELLED", "Assertion `", ": error: ", "error: unrecognized arguments",
               *(f"[{c}{d}" for c in "EW" for d in range(2, 10)), *MASKING,
               # glog's level and month ("E1206 18:44:12"): three bytes (two-byte markers made the scan a quarter slower)
               *(f"{c}{d:02d}" for c in "EW" for d in range(20)))

    def __init__(self) -> None:
        self.open: dict[int | None, dict[str, Any]] = {}
        self.pending: dict[str, Any] | None = None  # a CUDA OOM message cut by a hard wrap

    def idle(self) -> bool:
        return not self.open and self.pending is None

    def feed(self, line: Line, out: Builder) -> None:
        if not self.open and self.pending is None and out.is_claimed(line):
            return
        if self.pending is not None and self._continue(line, out):
            return
        text = line.text
        tb = self.open.get(line.rank)
        if tb is not None and tb.get("done"):
            # an exception line ended it: a chained traceback may follow ("During handling of ...")
            if any(c in text for c in _CHAIN):
                tb["done"], tb["chained"] = False, True
                return
            if "Traceback (most recent call last)" not in text:
                if self._message_tail(tb, line, out):
                    return
                self._close(line.rank, out)
                tb = None
        if "Traceback (most recent call last)" in text:
            if tb is not None and not tb.get("chained"):
                self._close(line.rank, out)
            prev = self.open.get(line.rank)
            self.open[line.rank] = {"start": prev["start"] if prev else line.no,
                                    "frames": prev["frames"] if prev else [], "chain": prev["chain"] if prev else []}
            out.follow(self, 400)
            return
        if tb is not None and self._traceback_line(line, tb, out):
            return
        if not out.is_claimed(line):
            self._level(line, out)

    # ------------------------------------------------------------------------------ tracebacks
    def _traceback_line(self, line: Line, tb: dict[str, Any], out: Builder) -> bool:
        text = line.text
        m = _FRAME.match(text)
        if m:
            tb["frames"].append((m.group(1), int(m.group(2)), m.group(3).strip()))
            tb.setdefault("indent", len(text) - len(text.lstrip()))
            tb.pop("chained", None)
            tb["last"] = line.no
            return True
        indent = len(text) - len(text.lstrip())
        # an indented traceback (a @record worker's in torchrun's ChildFailedError table, a pasted block):
        # its exception line is indented less than its frames
        exception = indent < tb.get("indent", 1) and _EXC.match(text) is not None
        if not exception and (indent or set(text.strip()) <= set("^~ ")):
            tb["last"] = line.no
            return True  # source line under a frame, or Python 3.11 ^^^^ markers
        if any(c in text for c in _CHAIN):
            tb["chained"] = True
            return True
        m = _EXC.match(text)
        if m:
            tb["chain"].append(f"{m.group(1)}: {m.group(2) or ''}".strip())
            tb["exc_type"], tb["message"], tb["line"] = m.group(1), (m.group(2) or "").strip(), line
            # the message continues below: it is empty after the colon, or ends with one (then indented details)
            tb["tail"] = 0 if m.group(2) is not None and (not tb["message"] or tb["message"].endswith(":")) else None
            tb["tail_any"] = not tb["message"]
            tb["chained"] = False
            tb["done"] = True  # emitted at the next line of this rank, unless a chained traceback follows
            out.follow(self, 4)
            return True
        return False

    def _message_tail(self, tb: dict[str, Any], line: Line, out: Builder) -> bool:
        """Join a line that continues the exception message just read; True when it was one."""
        n = tb.get("tail")
        text = line.text
        if n is None or n >= MESSAGE_TAIL or not text.strip() or _FRAME.match(text):
            return False
        if not tb.get("tail_any") and not text.startswith((" ", "\t")):  # after "...for X:" only indented details
            return False
        tail = " ".join(text.split())
        end: Line = tb["line"]
        tb["line"] = Line(end.no, f"{end.text.rstrip()} {tail}", end.rank)
        tb["message"] = f"{tb['message']} {tail}".strip()
        if tb["chain"]:
            tb["chain"][-1] = f"{tb['exc_type']}: {tb['message']}"
        tb["tail"] = n + 1
        out.follow(self, 4)
        return True

    def _close(self, rank: int | None, out: Builder, at_end: bool = False) -> None:
        tb = self.open.pop(rank, None)
        if tb is None:
            return
        if not self.open:
            out.stop_following(self)
        end: Line | None = tb.get("line")
        if end is None:
            if not tb["frames"]:
                return
            text = "Traceback (most recent call last): (no exception line)"
            if tb["chain"]:  # cut off after "During handling of the above exception": the exception above stands
                text = f"{tb['chain'][-1]} (then a traceback with no exception line)"
            end = Line(tb["start"], text, rank)
        frames = tb["frames"][-8:]
        data: dict[str, Any] = {"exc_type": tb.get("exc_type"), "message": tb.get("message", ""),
                                "start_line": tb["start"], "frames": [f"{f}:{n} in {fn}" for f, n, fn in frames],
                                "chain": list(tb["chain"])}
        # the family of the last exception, else of the first chained one that has one: a CUDA OOM re-raised
        # through an error handler, or a paste cut off after "During handling of the above exception"
        fam = classify(end.text) or next((f for f in map(classify, tb["chain"]) if f), None)
        data.update(fam or {})
        if at_end and tb.get("line") is None and not tb["chain"]:  # the log ended inside it: no exception line at all
            data.update(tag="traceback_cut", end_line=tb.get("last", tb["start"]))
        self._emit("traceback", Line(end.no, end.text.strip(), rank), data, out)

    # ------------------------------------------------------------------------------ level lines
    def _level(self, line: Line, out: Builder) -> None:
        # The same text gives the same decision (per-rank warnings repeat verbatim): it is kept, up to
        # LEVEL_MEMO texts, and only replayed.
        text = line.text
        decision = _remembered_decision(text) if len(text) <= MEMO_TEXT else _decide(text)
        if decision is not None:
            how, kind, data = decision
            if how == "emit":
                self._emit(kind, line, dict(data), out)
            else:
                out.event(kind, line, **data)

    def _emit(self, kind: str, line: Line, data: dict[str, Any], out: Builder) -> None:
        """Emit, or hold a CUDA OOM message whose sizes were cut off by a hard wrap."""
        if data.get("tag") == "cuda_oom" and data.get("free_bytes") is None and "free" not in line.text:
            self.pending = {"kind": kind, "line": line, "text": line.text.rstrip("\n"), "data": data, "left": 8}
            out.follow(self, 8)
            return
        out.event(kind, line, **data)

    def _continue(self, line: Line, out: Builder) -> bool:
        """Feed one line to a held OOM message; True when the line was a continuation of it."""
        p = self.pending
        assert p is not None
        text = line.text
        starts_new = (line.rank not in (None, p["line"].rank) or text.lstrip().startswith(("File ", "Traceback", "[20", "{'"))
                      or _FRAME.match(text) is not None or p["left"] <= 0)
        if starts_new:
            self._flush(out)
            return False
        p["left"] -= 1
        p["text"] += text  # a hard wrap cuts mid-word: join without a space
        if "free" in text or p["left"] <= 0:
            self._flush(out)
        return True

    def _flush(self, out: Builder) -> None:
        p, self.pending = self.pending, None
        if p is None:
            return
        data = {**p["data"], **oom_sizes(p["text"])}
        line = p["line"]
        out.event(p["kind"], Line(line.no, p["text"][:2000], line.rank), **data)
        if not self.open:
            out.stop_following(self)

    def finish(self, out: Builder) -> None:
        for rank in list(self.open):
            self._close(rank, out, at_end=True)
        self._flush(out)
