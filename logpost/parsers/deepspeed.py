"""DeepSpeed engine, loss scaler and launcher lines, Megatron(-DeepSpeed) iterations, torchtitan steps.

Formats: shared ``formats/deepspeed.md``; every regex below is tested on lines copied from real logs
(tests/test_ingest.py).

* ``[Rank 0] step=13120, skipped=223, lr=[1.96e-05], mom=[(0.9, 0.95)]`` (and the 2020 ``rank:0 step=``
  form): a frame row of kind ``optimizer`` (``skipped`` is cumulative), with the loss scale last shown
  by an OVERFLOW line;
* throughput timer (``epoch=0/micro_step=40/global_step=40, RunningAvgSamplesPerSec=..``, older
  ``0/40, SamplesPerSec=..``): ``samples_per_second`` on the optimizer row of that step;
* ``[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 65536, reducing to 32768`` (also
  ``[deepscale]``, the hysteresis variant and the unfused optimizer's ``fp16 dynamic loss scale
  overflow!``): warning events, tag ``overflow``;
* ``Current loss scale already at minimum``: error, tag ``loss_scale_min`` (a traceback when raised);
* ``tried to get lr value before scheduler/optimizer started stepping``: warning, tag ``lr_before_step``;
* launcher ``Killing subprocess N`` (warning, tag ``killing``) and ``... exits with return code = N``
  (error, tag ``exit``); ``Main process received SIGTERM`` (warning, tag ``signal_received``);
* ZeRO stage / DeepSpeed version (run metadata);
* Megatron ``iteration N/ M | ... | lm loss: .. | loss scale: .. | grad norm: ..`` (train rows with the
  logged step) and ``validation loss at iteration N | lm loss value: ..`` (eval rows);
* torchtitan ``step: N  loss: x  grad_norm: y  memory: ..GiB(..%)  tps: ..`` (train rows).
"""

from __future__ import annotations

import math
import re
from typing import Any

from logpost.frame import to_number
from logpost.model import Line
from logpost.parsers.base import Builder, LineParser
from logpost.parsers.hf import GLUED_BAR

_STEP = re.compile(r"\bstep=(\d+),\s*skipped=(\d+),\s*lr=\[([^\]]*)\](?:,\s*mom=\[(.*)\])?")
# The fast lane (see LineParser.fast): the engine's step line and the throughput timer line after it, as
# DeepSpeed prints them on rank 0
_FAST = re.compile(
    GLUED_BAR +  # a step line is printed while tqdm's bar is drawn: glued to it
    rb"(?P<text>\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] \[INFO\] (?:"
    rb"\[logging\.py:\d+:log_dist\] \[Rank (?P<rank>\d+)\] step=(?P<step>\d+), skipped=(?P<skipped>\d+), "
    rb"lr=\[(?P<lr>[-+\d.e, ]*)\], mom=\[[-+\d.e, ()]*\]"
    rb"|\[timer\.py:\d+:stop\] epoch=\d+/micro_step=\d+/global_step=(?P<global_step>\d+), "
    rb"RunningAvgSamplesPerSec=(?P<samples>[-+\d.e]+), CurrSamplesPerSec=[-+\d.e]+, "
    rb"MemAllocated=(?P<mem>[\d.]+)GB, MaxMemAllocated=(?P<max_mem>[\d.]+)GB)[ \t]*)")
_TIMER = re.compile(r"(?:global_step=|\b\d+/)(\d+),\s*(?:RunningAvg)?SamplesPerSec=([\d.eE+-]+|nan|inf)")
_MEM = re.compile(r"\bMemAllocated=([\d.]+)GB,\s*MaxMemAllocated=([\d.]+)GB")
_OVERFLOW = re.compile(
    r"(?:OVERFLOW!|overflow!).*?Attempted loss scale:\s*([\d.eE+-]+|inf|nan)\s*,\s*"
    r"(?:reducing to\s*([\d.eE+-]+|inf|nan)|but hysteresis is\s*(\d+))", re.I)
_OVERFLOW_RANK = re.compile(r"OVERFLOW! Rank (\d+)")
_MIN_SCALE = "loss scale already at minimum"
_LR_BEFORE = "tried to get lr value before scheduler/optimizer started stepping"
_KILLING = re.compile(r"Killing subprocess (\d+)")
_RETURN = re.compile(r"exits with return code\s*=\s*(-?\d+)")
_LOCAL_RANK = re.compile(r"--local[_-]rank[=' ,]+(\d+)")
_SIG_RECEIVED = re.compile(r"Main process received (SIG[A-Z]+), exiting")
_ZERO = re.compile(r"Creating (?:([\w.]+) )?ZeRO stage (\d)")
_DS_VERSION = re.compile(r"DeepSpeed info: version=([\w.+-]+)")
_DS_RANK = re.compile(r"\[Rank (-?\d+)\]|\brank:(\d+) ")

_ITER = re.compile(r"\biteration\s+(\d+)\s*/\s*(\d+)\s*\|")
_MEGATRON_PAIR = re.compile(r"([A-Za-z][A-Za-z ()/_-]*?)\s*:\s*([-+]?(?:\d[\d.]*(?:[eE][-+]?\d+)?|nan|inf))\s*(?=\||$)")
_MEGATRON_LINES = 4  # continuation lines of one iteration (learning rate, lm loss, skipped/nan counts)
_VALID = re.compile(r"\b(?:valid(?:ation)? loss) at iteration\s+(\d+)\s*\|\s*lm loss value:\s*([-+\w.]+)")
_MEGATRON_KEYS = {
    "lm loss": "loss", "learning rate": "learning_rate", "loss scale": "loss_scale", "grad norm": "grad_norm",
    "number of skipped iterations": "skipped_iterations", "number of nan iterations": "nan_iterations",
    "samples per second": "samples_per_second", "consumed samples": "consumed_samples",
    "consumed tokens": "consumed_tokens", "global batch size": "global_batch_size", "num zeros": "num_zeros",
    "elapsed time per iteration (ms)": "iteration_time_ms", "elapsed time per iteration (s)": "iteration_time_s",
    "TFLOPs": "tflops",
}
_TITAN = re.compile(r"\bstep:\s*(\d+)\s+loss:\s*([-+\w.]+)(.*)$")
_TITAN_PAIR = re.compile(r"(\w+):\s*([-+]?[\d.,]+(?:[eE][-+]?\d+)?|nan|inf)")

SIGNALS = {1: "SIGHUP", 2: "SIGINT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
           11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}


def _search_from(pattern: re.Pattern[str], text: str, first: int) -> re.Match[str] | None:
    """``pattern.search(text)`` for a pattern whose every match starts at an occurrence of a literal,
    the first of which is at ``first`` (-1: none). The regexes start with ``\\b``, which keeps ``re``
    from skipping ahead to the literal itself (6-7 us a line); ``\\b`` still sees the text before pos."""
    return None if first == -1 else pattern.search(text, first)


# What a _TIMER match holds before its "SamplesPerSec=" (whitespace aside).
_TIMER_CHARS = frozenset("global_step=RunningAvg0123456789/,")


def _timer_match(text: str) -> re.Match[str] | None:
    """``_TIMER.search(text)``, started near "SamplesPerSec=": a match ends at its first occurrence (a
    match ending at a later one starts after it) and holds only _TIMER_CHARS and whitespace before it,
    so it starts after the last other character before that occurrence."""
    j = text.find("SamplesPerSec=")
    if j == -1:
        return None
    lo = j - 64
    if lo <= 0 or text[lo - 1] in _TIMER_CHARS or text[lo - 1].isspace():
        lo = 0  # the run of such characters may go back further: search it all
    return _TIMER.search(text, lo)


def signal_name(code: int | None) -> str | None:
    """``-9`` -> ``SIGKILL`` (Popen return codes are minus the signal)."""
    if code is None or code >= 0:
        return None
    return SIGNALS.get(-code, f"SIG{-code}")


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    v = to_number(text)
    return v if isinstance(v, float) else None


def _lane_float(raw: bytes) -> float | None:
    """``_float`` of a number the fast lane matched (digits, sign, dot, ``e``: no quote, space or nan)."""
    try:
        return float(raw)
    except ValueError:
        return None


def first_of_list(text: str) -> float | None:
    """``'1.96e-05, 1.96e-05'`` -> 1.96e-05 (DeepSpeed prints one lr per param group)."""
    head = text.split(",")[0].strip().strip("()[]'\" ")
    return _float(head) if head else None


class DeepSpeedParser(LineParser):
    # torchtitan step lines hold "memory: 14.58GiB(15.34%)"; the throughput timer line follows the step
    # line: it is read by following, not searched for
    markers = (", skipped=", "OVERFLOW!", "overflow!", _MIN_SCALE, _LR_BEFORE, "Killing subprocess",
               "exits with return code", "received SIGTERM", "elapsed time per iteration",
               "loss at iteration", "ZeRO stage", "DeepSpeed info", "GiB(")
    fast = _FAST

    def __init__(self) -> None:
        self.scale: float | None = None  # next_scale of the last OVERFLOW line (only rank 0 logs them)
        self.last_opt: dict[str, Any] | None = None
        self.iteration: dict[str, Any] | None = None  # a Megatron iteration whose pairs go on on the next lines
        self.iteration_until = 0

    def idle(self) -> bool:
        return self.iteration is None

    def feed(self, line: Line, out: Builder) -> None:
        if out.is_claimed(line):  # a metric record of another parser
            return
        text = line.text
        if self.iteration is not None:
            if line.no <= self.iteration_until and self._megatron_more(line, out):
                return
            if line.no > self.iteration.get("line", 0):
                self.iteration = None
        if "skipped=" in text:
            self._step(line, out)
            return
        if "SamplesPerSec" in text:
            self._timer(line, out)
        if "verflow!" in text or "VERFLOW!" in text:
            self._overflow(line, out)
            return
        if _MIN_SCALE in text:  # the event (error or traceback) is the event parser's: see events.classify
            out.saw("deepspeed")
            return
        if _LR_BEFORE in text:
            out.event("warning", line, tag="lr_before_step")
            return
        if "Killing subprocess" in text:
            m = _KILLING.search(text)
            out.saw("deepspeed")
            out.event("warning", line, tag="killing", pid=int(m.group(1)) if m else None, launcher="deepspeed")
            return
        if "exits with return code" in text:
            m = _RETURN.search(text)
            if m:
                code = int(m.group(1))
                lr = _LOCAL_RANK.search(text)
                out.saw("deepspeed")
                out.event("error", line, tag="exit", code=code, signal=signal_name(code),
                          local_rank=int(lr.group(1)) if lr else None, pid=None, launcher="deepspeed")
            return
        if "received SIG" in text:
            m = _SIG_RECEIVED.search(text)
            if m:
                out.event("warning", line, tag="signal_received", signal=m.group(1), launcher="deepspeed")
            return
        if "elapsed time per iteration" in text:
            self._megatron(line, out)
            return
        if "loss at iteration" in text:
            m = _VALID.search(text)
            if m:
                out.saw("megatron")
                out.record("eval", {"eval_loss": _float(m.group(2))}, line, step=int(m.group(1)))
            return
        if "GiB(" in text and "loss:" in text:
            self._titan(line, out)
            return
        if "ZeRO stage" in text:
            m = _ZERO.search(text)
            if m:
                out.saw("deepspeed")
                out.set_meta("zero_stage", int(m.group(2)), line)
                if m.group(1):
                    out.set_meta("dtype", m.group(1), line)
        elif "DeepSpeed info" in text:
            m = _DS_VERSION.search(text)
            if m:
                out.saw("deepspeed")
                out.set_meta("deepspeed_version", m.group(1), line)

    def fast_feed(self, line: Line, match: re.Match[bytes], out: Builder) -> bool:
        """A step or timer line of the fast lane: what :meth:`_step` or :meth:`_timer` does, from the lane's groups."""
        step = match.group("step")
        if step is not None:
            out.saw("deepspeed")
            lr = match.group("lr")
            values: dict[str, Any] = {"skipped_steps": float(match.group("skipped")),
                                      "learning_rate": _lane_float(lr) if b"," not in lr and b" " not in lr
                                      else first_of_list(lr.decode("ascii"))}
            if self.scale is not None:
                values["loss_scale"] = self.scale
            self.last_opt = out.record("optimizer", values, Line(line.no, line.text, int(match.group("rank"))),
                                       step=int(step))
            out.follow(self, 1)
            return True
        rec = self.last_opt
        if rec is None or rec.get("step") != int(match.group("global_step")):
            self.feed(line, out)
            return out.is_claimed(line)
        out.claimed = (line.no, line.text)
        rec["samples_per_second"] = _lane_float(match.group("samples"))
        rec["mem_allocated_gb"] = _lane_float(match.group("mem"))
        rec["max_mem_allocated_gb"] = _lane_float(match.group("max_mem"))
        return True

    # ------------------------------------------------------------------------------ engine
    @staticmethod
    def _rank(line: Line) -> int | None:
        if line.rank is not None:
            return line.rank
        text = line.text
        m = _DS_RANK.search(text) if "[Rank " in text or "rank:" in text else None
        if m:
            r = int(m.group(1) if m.group(1) is not None else m.group(2))
            return r if r >= 0 else None
        return None

    def _step(self, line: Line, out: Builder) -> None:
        m = _search_from(_STEP, line.text, line.text.find("step="))
        if not m:
            return
        out.saw("deepspeed")
        rank = self._rank(line)
        values: dict[str, Any] = {"skipped_steps": float(m.group(2)), "learning_rate": first_of_list(m.group(3))}
        if self.scale is not None:
            values["loss_scale"] = self.scale
        rec = out.record("optimizer", values, Line(line.no, line.text, rank), step=int(m.group(1)))
        self.last_opt = rec
        out.follow(self, 1)  # the throughput timer line comes right after

    def _timer(self, line: Line, out: Builder) -> None:
        m = _timer_match(line.text)
        rec = self.last_opt
        if not m or rec is None or rec.get("step") != int(m.group(1)):
            return
        out.claimed = (line.no, line.text)  # part of the step's record, not an event
        rec["samples_per_second"] = _float(m.group(2))
        mem = _search_from(_MEM, line.text, line.text.find("MemAllocated="))
        if mem:
            rec["mem_allocated_gb"] = _float(mem.group(1))
            rec["max_mem_allocated_gb"] = _float(mem.group(2))

    def _overflow(self, line: Line, out: Builder) -> None:
        m = _OVERFLOW.search(line.text)
        if not m:
            out.event("warning", line, tag="overflow", attempted_scale=None, next_scale=None, hysteresis=False)
            return
        out.saw("deepspeed")
        attempted = _float(m.group(1))
        hysteresis = m.group(3) is not None
        nxt = attempted if hysteresis else _float(m.group(2))
        r = _OVERFLOW_RANK.search(line.text)
        rank = line.rank if line.rank is not None else (int(r.group(1)) if r else None)
        if nxt is not None:
            self.scale = nxt
        out.event("warning", Line(line.no, line.text, rank), tag="overflow", attempted_scale=attempted,
                  next_scale=nxt, hysteresis=hysteresis)

    # ------------------------------------------------------------------------------ Megatron, torchtitan
    def _megatron(self, line: Line, out: Builder) -> None:
        text = line.text
        m = _ITER.search(text)
        if not m:
            return
        out.saw("megatron")
        values: dict[str, Any] = {}
        for key, raw in _MEGATRON_PAIR.findall(text[m.end():] + "|"):
            key = key.strip()
            col = _MEGATRON_KEYS.get(key) or re.sub(r"[^0-9a-z]+", "_", key.lower()).strip("_")
            if col and col not in values:
                values[col] = _float(raw)
        out.set_meta("max_steps", int(m.group(2)), line)
        rec = out.record("train", values, line, step=int(m.group(1)))
        # recent Megatron spreads one iteration over several lines ("iteration 5/50 | ... |", then
        # "learning rate: .. |", "lm loss: .. | grad norm: .. |"): the next lines' pairs join this record
        if "lm loss" not in text and text.rstrip().endswith("|"):
            self.iteration, self.iteration_until = rec, line.no + _MEGATRON_LINES
            out.follow(self, _MEGATRON_LINES)

    def _megatron_more(self, line: Line, out: Builder) -> bool:
        """A continuation line of the open Megatron iteration: its pairs join the iteration's record."""
        rec, text = self.iteration, line.text
        if rec is None or "|" not in text or _ITER.search(text):
            return False
        pairs = [(k.strip(), raw) for k, raw in _MEGATRON_PAIR.findall(text + "|")]
        if not any(k in _MEGATRON_KEYS for k, _ in pairs):
            return False
        bad = set(filter(None, str(rec.get("nonfinite") or "").split(",")))
        for key, raw in pairs:
            col = _MEGATRON_KEYS.get(key) or re.sub(r"[^0-9a-z]+", "_", key.lower()).strip("_")
            if col and col not in rec:
                v = _float(raw)
                if v is not None:
                    rec[col] = v
                    if not math.isfinite(v):
                        bad.add(col)
        if bad:
            rec["nonfinite"] = ",".join(sorted(bad))
        rec["_text"] = (str(rec.get("_text") or "") + " " + text.strip())[:500]
        out.claimed = (line.no, line.text)
        return True

    def _titan(self, line: Line, out: Builder) -> None:
        m = _TITAN.search(line.text)
        if not m:
            return
        out.saw("torchtitan")
        values: dict[str, Any] = {"loss": _float(m.group(2))}
        for key, raw in _TITAN_PAIR.findall(m.group(3)):
            if key in ("memory",):
                continue
            values.setdefault(key, _float(raw.replace(",", "")))
        out.record("train", values, line, step=int(m.group(1)))
