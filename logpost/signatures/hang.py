"""A silent hang: the job keeps logging (a heartbeat, a scheduler pulse, NCCL or monitor lines) but no
training record comes, and no watchdog fires.

The proof is the log's own clock. After the last sign of progress (the last metric record, the last
progress-bar redraw) the timestamps of later lines show how much wall time passed; that is compared
with how long the run took between records (Megatron's ``elapsed time per iteration``, the tqdm rate,
or the timestamps of the records themselves). A gap of many record periods, and of at least half an
hour, with no new record, no finish marker and no error is a hang.

Cost: the parsers do not keep timestamps, so this module reads the source again, but only its last
``tail_kib`` KiB (a seek on a plain file; a ``.gz`` is decompressed up to that point only when it is
small): a 1 GB log pays a few MB. From stdin, only the last record's own text and the last line of the
log (kept by the scanner) can prove a gap.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from logpost import storage
from logpost.model import Event, Evidence, Line, RunLog
from logpost.parsers.normalise import UTF16_PROBE, is_utf16, split_line

# Where a line's own timestamp sits: at its start, or after a short level / logger prefix
# ("[INFO|trainer.py:2078] 2024-06-01 16:22:16,125 >>" puts it at column 23). A date further right is
# part of the message ("... since 2022-04-29T20:28:38"), not the time the line was written.
MAX_STAMP_COLUMN = 48
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), 1)}
_STAMP = re.compile(
    # 2022-05-01 03:56:11 · 2024-06-01 16:22:16,125 · [2024-12-20 19:59:05,921] · 2024-06-01T16:22:16.5 · 2024/06/01
    r"(?P<lead>^|[\[\s(|:])(?P<y>\d{4})(?P<ds>[-/])(?P<mo>\d{2})[-/](?P<d>\d{2})(?P<sep>[ T])"
    r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:(?P<fs>[.,])\d{1,9})?"
    # glog as torch and NCCL print it: I1015 12:34:56.789012 · [I1015 12:34:56.789563910 ProcessGroupNCCL.cpp:...]
    r"|(?P<glead>^|[\[\s:])[IWEF](?P<gmo>\d{2})(?P<gd>\d{2}) (?P<gh>\d{2}):(?P<gmi>\d{2}):(?P<gs>\d{2})\.\d{3,9}\b"
    # LLaMA-Factory and the HF example scripts (datefmt %m/%d/%Y): 05/28/2024 10:20:35 - INFO - llamafactory...
    r"|(?P<ulead>^|[\[\s])(?P<umo>\d{2})/(?P<ud>\d{2})/(?P<uy>\d{4}) (?P<uh>\d{2}):(?P<umi>\d{2}):(?P<us>\d{2})\b"
    # date(1) in job scripts: Sat Jun  1 16:22:16 UTC 2024
    r"|(?P<wd>\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)) (?P<cmo>[A-Z][a-z]{2}) {1,2}(?P<cd>\d{1,2}) "
    r"(?P<ch>\d{2}):(?P<cmi>\d{2}):(?P<cs>\d{2}) (?:[A-Z]{2,5} )?(?P<cy>\d{4})\b")
# A bar that moved is progress even when it carries no metric (an eval bar, a custom loop's bar).
_BAR = re.compile(r"\d+%\|.*?\|\s*\d+/\d+ \[|\|\s*\d+/\d+ \[\d")
# A new start after the last record: the log holds a second launch (a restart), not a hang.
RESTART = ("***** Running training *****", "Loading checkpoint shards", "initializing torch distributed",
           "Initializing torch distributed", "Starting elastic_operator",
           "Setting OMP_NUM_THREADS environment variable",  # torchrun, at every launch
           "Setting ds_accelerator to")  # DeepSpeed, at import
BEFORE_LINES = 200  # lines before the record searched for the clock it was written under
JITTER_S = 60.0  # threads and ranks interleave their lines: a clock may step back this much and still be one clock
# Events after the last record that end the job: its own finding says what happened.
_TERMINATING_KINDS = ("error", "traceback")
_EXTERNAL_STOP_SIGNALS = (15, -15, 143)  # SIGTERM from a scheduler or a time limit: what often ends a hang


@dataclass(frozen=True)
class Stamp:
    """A line's own timestamp, with the shape it was written in (loggers of one log differ)."""

    line: int
    text: str
    at: datetime
    form: str

    @property
    def shown(self) -> str:
        """The time as the summary prints it (glog writes no year, so none is shown)."""
        return self.at.strftime("%m-%d %H:%M:%S" if self.form.startswith("glog") else "%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Stall:
    """No progress for ``gap_s`` seconds after the record at ``step``, proven by ``start`` .. ``end``."""

    gap_s: float
    step: int | None
    record: Evidence  # the last training record
    anchor: Evidence  # the last sign of progress: that record, a later eval record or bar redraw
    start: Stamp
    end: Stamp
    period_s: float | None  # expected wall time between two records
    sec_per_step: float | None
    threshold_s: float
    iteration: bool  # Megatron counts iterations

    def evidence(self) -> list[Evidence]:
        out = [self.record] if self.record.line == self.anchor.line else [self.record, self.anchor]
        for s in (self.start, self.end):
            if s.line != self.anchor.line and all(e.line != s.line for e in out):
                out.append(Evidence(s.line, s.text[:500]))
        return out

    def facts(self) -> dict[str, Any]:
        minutes = int(self.gap_s // 60)
        hours, mins = divmod(minutes, 60)
        sec = None if self.sec_per_step is None else float(f"{self.sec_per_step:.3g}")
        return {"gap_hours": hours or None, "gap_minutes": mins, "gap_s": round(self.gap_s),
                "iteration" if self.iteration else "step": self.step,
                "sec_per_iteration" if self.iteration else "sec_per_step": sec,
                "since": self.start.shown, "until": self.end.shown,
                "start_line": self.start.line, "end_line": self.end.line}


def stamp(no: int, text: str) -> Stamp | None:
    """The timestamp a log line was written at, or None (a date inside the message does not count)."""
    m = _STAMP.search(text, 0, MAX_STAMP_COLUMN + 40)
    if m is None or m.start() > MAX_STAMP_COLUMN:
        return None
    g = m.groupdict()
    try:
        if g["y"]:
            at = datetime(int(g["y"]), int(g["mo"]), int(g["d"]), int(g["h"]), int(g["mi"]), int(g["s"]))
            form = f"iso{g['lead'] or '^'}{g['ds']}{g['sep']}{g['fs'] or ''}"
        elif g["umo"]:
            at = datetime(int(g["uy"]), int(g["umo"]), int(g["ud"]), int(g["uh"]), int(g["umi"]), int(g["us"]))
            form = f"us{g['ulead'] or '^'}"
        elif g["gmo"]:
            # glog prints no year: 2000 is a leap year, so Feb 29 parses; a log spanning New Year is rare
            at = datetime(2000, int(g["gmo"]), int(g["gd"]), int(g["gh"]), int(g["gmi"]), int(g["gs"]))
            form = f"glog{g['glead'] or '^'}"
        else:
            at = datetime(int(g["cy"]), _MONTHS[g["cmo"]], int(g["cd"]), int(g["ch"]), int(g["cmi"]), int(g["cs"]))
            form = "date"
    except (ValueError, KeyError):
        return None
    return Stamp(no, text.strip(), at, form)


def _read_tail(path: str, end: int, size: int) -> tuple[bytes, bool]:
    """Bytes ``end - size .. end`` of a file (``.gz`` decompressed) and whether they start mid-file."""
    start = max(0, end - size)
    with storage.open_binary(path) as raw:
        fh: Any = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        fh.seek(start)
        return fh.read(end - start), start > 0


def tail_lines(run: RunLog, params: dict[str, Any] | Any, since: int = 0) -> list[Line] | None:
    """The normalised lines of the last ``tail_kib`` KiB the parsers read (from line ``since`` on), with
    their line numbers; None when the source cannot be read again (stdin, a run directory, a large
    ``.gz``, a cut-short read)."""
    source, end = run.source, run.facts.bytes
    if end is None or run.facts.truncated or not storage.is_file(source):
        return None
    try:
        with storage.open_binary(source) as fh:
            head = fh.read(UTF16_PROBE)
    except OSError:
        return None
    if is_utf16(head):
        return None  # read as UTF-8 by the parsers: its byte offsets are not the file's
    gz = head[:2] == b"\x1f\x8b"
    if gz and end > params["gz_max_mib"] * (1 << 20):
        return None  # a .gz cannot seek: it would be decompressed from the start
    try:
        data, mid = _read_tail(source, end, int(params["tail_kib"]) * 1024)
    except (OSError, EOFError):
        return None
    # lines in the window (the first is cut by it when the window starts mid-file), and the number of the first
    total = data.count(b"\n") + (0 if data.endswith(b"\n") else 1) - (1 if mid else 0)
    first = run.lines - total + 1
    skip = max(0, since - first) + (1 if mid else 0)  # only what follows the record is split and normalised
    pos = 0
    for _ in range(skip):
        pos = data.find(b"\n", pos) + 1
        if pos == 0:
            return []
    parts = data[pos:].split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    out: list[Line] = []
    for i, part in enumerate(parts, start=first + skip - (1 if mid else 0)):
        out.extend(split_line(i, part))
    return out


def _fallback_lines(run: RunLog, anchor: Evidence) -> list[Line]:
    """From stdin: the last record's own text and the log's last line are all that is left."""
    last = run.facts.last_line_text
    lines = [Line(anchor.line or 0, anchor.text)]
    if last and run.lines > (anchor.line or 0):
        lines.append(Line(run.lines, last))
    return lines


def sec_per_step(run: RunLog, train: pd.DataFrame) -> tuple[float | None, int]:
    """Seconds per step from the frame (Megatron's per-iteration time), else the tqdm rate, else the
    timestamps of the records themselves; and the steps between two records (logging interval)."""
    steps = train["step"].dropna().tail(11)
    diffs = steps.diff().dropna()
    diffs = diffs[diffs > 0]
    stride = max(1, int(diffs.median())) if len(diffs) else 1  # one record: the interval is unknown
    tail = train.tail(10)
    for col, scale in (("iteration_time_s", 1.0), ("iteration_time_ms", 1e-3), ("step_time", 1.0)):
        if col in tail:
            v = pd.to_numeric(tail[col], errors="coerce").dropna()
            v = v[v > 0]
            if len(v):
                return float(v.median()) * scale, stride
    for e in reversed(run.events):
        if (e.data or {}).get("tag") == "progress" and e.data.get("sec_per_step"):
            return float(e.data["sec_per_step"]), stride
    stamped = []
    for idx, row in train.tail(21).iterrows():
        s = stamp(0, run.text(idx))
        if s is not None and pd.notna(row["step"]):
            stamped.append((float(row["step"]), s.at))
    rates = [(b[1] - a[1]).total_seconds() / (b[0] - a[0]) for a, b in zip(stamped, stamped[1:], strict=False)
             if b[0] > a[0] and b[1] >= a[1]]
    if rates:
        return sorted(rates)[len(rates) // 2], stride
    return None, stride


def _after(events: list[Event], line: int) -> list[Event]:
    """Events first seen after ``line``: a message repeated since before it (a recurring non-fatal
    error) did not stop the run then, and does not now."""
    return [e for e in events if e.line > line]


def _terminating(e: Event) -> bool:
    data = e.data or {}
    if e.kind not in _TERMINATING_KINDS or data.get("tag") == "slurm_cancelled":
        return False
    return not (data.get("tag") == "exit" and data.get("code") in _EXTERNAL_STOP_SIGNALS)


def _clock_gap(lines: list[Line], anchor: Evidence) -> tuple[float, Stamp, Stamp, Evidence] | None:
    """The longest wall time one clock of the log proves after ``anchor`` (moved on to any later bar
    redraw), with the stamps that prove it; None when nothing is proven or the log shows a restart.

    Each writer keeps its own clock (a stamp's ``form``), so a logger in UTC and a pulse in local time
    are never subtracted. A clock that runs backwards after the record (files of several ranks
    concatenated, a log appended to an older one) proves nothing and is dropped."""
    anchor_line = anchor.line or 0
    before: dict[str, Stamp] = {}  # the latest stamp at or before the anchor, per clock
    start: dict[str, Stamp] = {}  # the record's own stamp, else the first one after it
    end: dict[str, Stamp] = {}
    bad: set[str] = set()
    for ln in lines:
        text = ln.text
        if ln.no > anchor_line:
            if _BAR.search(text):  # a bar moved after the record: progress; measure from here
                anchor_line, anchor = ln.no, Evidence(ln.no, text.strip()[:500])
                before.update(end)
                start.clear()
                end.clear()
                continue
            if any(r in text for r in RESTART):
                return None  # a second launch: a restart, not a hang
        s = stamp(ln.no, text)
        if s is None:
            continue
        if ln.no < anchor_line:
            before[s.form] = s
            continue
        prev = end.get(s.form) or start.get(s.form) or before.get(s.form)
        if prev is not None and (s.at - prev.at).total_seconds() < -JITTER_S:
            bad.add(s.form)
        start.setdefault(s.form, s)
        if ln.no > anchor_line:
            end[s.form] = s
    gaps = [((end[f].at - start[f].at).total_seconds(), start[f], end[f]) for f in end
            if f in start and f not in bad]
    if not gaps:
        return None
    gap, first, last = max(gaps, key=lambda g: g[0])
    return gap, first, last, anchor


def find_stall(run: RunLog, params: Any) -> Stall | None:
    """The hang the log proves, or None. ``params``: ``hang_floor_minutes``, ``hang_record_periods``,
    ``hang_unknown_period_minutes``, ``tail_kib``, ``gz_max_mib`` (see NCCL_TIMEOUT.toml)."""
    frame = run.frame
    if run.facts.finished:
        return None
    train = run.facts.train
    if train.empty or train["line"].isna().all():
        return None  # nothing trained yet: a job still queued or loading is not a hang
    if any((e.data or {}).get("tag") == "nccl_timeout" for e in run.events):
        return None  # the watchdog spoke: the pattern finding says so
    rows = frame[frame["line"].notna()]
    last_idx = rows["line"].astype(float).idxmax()
    anchor_line = int(rows.loc[last_idx, "line"])
    train = train[train["line"].notna()].sort_values(["line"], kind="stable")
    step = train["step"].dropna()
    last_step = int(step.iloc[-1]) if len(step) else None
    last_train = train.index[-1]
    record = Evidence(int(train.loc[last_train, "line"]), run.text(last_train)[:500],
                      None if pd.isna(train.loc[last_train, "step"]) else int(train.loc[last_train, "step"]))
    progress = [e for e in run.events if (e.data or {}).get("tag") == "progress"]
    anchor = Evidence(anchor_line, run.text(last_idx)[:500],
                      None if pd.isna(rows.loc[last_idx, "step"]) else int(rows.loc[last_idx, "step"]))
    if progress and progress[-1].line > anchor_line:
        anchor_line = progress[-1].line
        anchor = Evidence(anchor_line, progress[-1].text[:500], progress[-1].data.get("step"))
        last_step = max(last_step or 0, int(progress[-1].data.get("step") or 0))
    if any(_terminating(e) for e in _after(run.events, anchor_line)):
        return None  # it crashed or was killed: that finding explains the end
    lines = tail_lines(run, params, since=max(1, anchor_line - BEFORE_LINES))
    if lines is None:
        if os.path.isdir(run.source):
            return None  # a run directory: line numbers belong to its files, whose tails are not read
        lines = _fallback_lines(run, anchor)
    found = _clock_gap(lines, anchor)
    if found is None:
        return None
    gap, first, last, anchor = found
    sec, stride = sec_per_step(run, train)
    period = sec * stride if sec else None
    floor = 60.0 * params["hang_floor_minutes"]
    threshold = max(floor, params["hang_record_periods"] * period) if period else \
        max(floor, 60.0 * params["hang_unknown_period_minutes"])
    if gap < threshold:
        return None
    return Stall(gap_s=gap, step=last_step, record=record, anchor=anchor, start=first, end=last, period_s=period,
                 sec_per_step=sec, threshold_s=threshold, iteration="megatron" in run.frameworks)
