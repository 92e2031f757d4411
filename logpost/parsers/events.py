"""Errors, warnings and Python tracebacks, whatever framework printed them.

A traceback becomes one event (kind ``traceback``) whose text is the final exception line and whose
data holds the exception type, the message and the frames; tracebacks of several ranks may
interleave (``[rank0]:`` / ``[rank1]:`` prefixes) and are assembled per rank.
"""

from __future__ import annotations

import re
from typing import Any

from logpost.model import Line
from logpost.parsers.base import Builder, LineParser

_EXC = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Exit|Interrupt|Failure))(?::\s?(.*))?$")
_FRAME = re.compile(r'^\s+File "([^"]+)", line (\d+), in (.+)$')
_ERROR_LEVEL = re.compile(
    r"\[(?:ERROR|CRITICAL|FATAL)[\]|]|\bERROR:|\b(?:ERROR|CRITICAL)\b\s*[-|:\]]|^\s*E\d{4} \d|\[E[\s\d]|"
    r"\bKilled\b|exits with return code|failed \(exitcode|NCCL error|CUDA error|out of memory|"
    r"^(?:[\w.]+\.)?\w*(?:Error|Exception):")
_WARN_LEVEL = re.compile(r"\[(?:WARNING|WARN)[\]|]|\bWARNING:|\bWARNING\b\s*[-|:\]]|^\s*W\d{4} \d|\[W[\s\d]|"
                         r"\w+Warning:|NCCL WARN")
# a tqdm bar with no newline glued before the real message: "  0%|   | 0/40 [00:00<?, ?it/s][2026-..."
_TQDM_HEAD = re.compile(r"^[^\[]*?\d{1,3}%\|[^|]*\|[^\[\]]*\[[^\]]*\]\s*(?=\S)")
_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")


class EventParser(LineParser):
    markers = ("Traceback (most recent call last)", "Error", "ERROR", "Exception", "WARN", "Warning",
               "Killed", "exitcode", "return code", "out of memory", "CRITICAL", "FATAL", "[E", "[W", "E1", "E0",
               "W1", "W0", "NCCL")

    def __init__(self) -> None:
        self.open: dict[int | None, dict[str, Any]] = {}

    def feed(self, line: Line, out: Builder) -> None:
        if "%|" in line.text:
            m = _TQDM_HEAD.match(line.text)
            if m:
                line = Line(line.no, line.text[m.end():], line.rank)
        text = line.text
        tb = self.open.get(line.rank)
        if "Traceback (most recent call last)" in text:
            if tb is not None and not tb.get("chained"):
                self._close(line.rank, out, truncated=True)
            prev = self.open.get(line.rank)
            self.open[line.rank] = {"start": line.no, "frames": prev["frames"] if prev else [],
                                    "chain": prev["chain"] if prev else []}
            out.follow(self, 400)
            return
        if tb is not None and self._traceback_line(line, tb, out):
            return
        self._level(line, out)

    def _traceback_line(self, line: Line, tb: dict[str, Any], out: Builder) -> bool:
        text = line.text
        m = _FRAME.match(text)
        if m:
            tb["frames"].append((m.group(1), int(m.group(2)), m.group(3).strip()))
            tb.pop("chained", None)
            return True
        if text.startswith((" ", "\t")) or set(text.strip()) <= set("^~ "):
            return True  # source line under a frame, or Python 3.11 ^^^^ markers
        if any(c in text for c in _CHAIN):
            tb["chained"] = True
            return True
        m = _EXC.match(text)
        if m:
            tb["chain"].append(f"{m.group(1)}: {m.group(2) or ''}".strip())
            tb["exc_type"], tb["message"], tb["line"] = m.group(1), (m.group(2) or "").strip(), line
            tb["chained"] = False
            self._close(line.rank, out)
            return True
        return False

    def _close(self, rank: int | None, out: Builder, truncated: bool = False) -> None:
        tb = self.open.pop(rank, None)
        if tb is None:
            return
        if not self.open:
            out.stop_following(self)
        end: Line | None = tb.get("line")
        if end is None:
            if not tb["frames"]:
                return
            end = Line(tb["start"], "Traceback (most recent call last): (no exception line)", rank)
        frames = tb["frames"][-8:]
        text = end.text.strip() if not truncated or tb.get("exc_type") else end.text
        out.event("traceback", Line(end.no, text, rank), exc_type=tb.get("exc_type"),
                  message=tb.get("message", ""), start_line=tb["start"],
                  frames=[f"{f}:{n} in {fn}" for f, n, fn in frames], chain=list(tb["chain"]))

    def _level(self, line: Line, out: Builder) -> None:
        text = line.text
        if _ERROR_LEVEL.search(text):
            out.event("error", line)
        elif _WARN_LEVEL.search(text):
            out.event("warning", line)

    def finish(self, out: Builder) -> None:
        for rank in list(self.open):
            self._close(rank, out, truncated=True)
