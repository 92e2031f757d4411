"""From a source (path, ``-``, ``.gz``, run directory) to a :class:`~logpost.model.RunLog`.

A real log mixes Axolotl, HF, DeepSpeed, torchrun and tracebacks, so the line parsers form a stack
that all see every candidate line; none owns the file. A run directory merges its console captures,
``trainer_state.json``, ``trainer_log.jsonl`` and ``debug.log`` into one frame (see :func:`parse_dir`).
"""

from __future__ import annotations

import collections
import gzip
import io
import os
import re
import sys
import threading
import zlib
from typing import Any

import pandas as pd

from logpost.frame import assign_steps, build_frame, frame_from_columns
from logpost.model import InputError, Line, RunLog
from logpost.parsers.axolotl import AxolotlParser
from logpost.parsers.base import Builder, LineParser, Records
from logpost.parsers.deepspeed import DeepSpeedParser
from logpost.parsers.events import EventParser
from logpost.parsers.hf import HFParser
from logpost.parsers.jsonfiles import looks_like_state, parse_jsonl_line, parse_trainer_state
from logpost.parsers.keyvalue import KeyValueParser
from logpost.parsers.mmengine import MMEngineParser
from logpost.parsers.normalise import MAX_TEXT, Scanner, buffered, open_source, read_text_head, split_line
from logpost.parsers.readable import check_head, check_read, cut_at, gzip_error
from logpost.parsers.torchdist import TorchDistParser

MAX_JSON = 1 << 30  # a trainer_state.json is read whole; refuse anything absurd
FAST = True  # the parsers' fast lanes (LineParser.fast); off only to check they change nothing

# Frameworks that wrap others win the name: Axolotl and LLaMA-Factory print HF Trainer dicts.
_WRAPPERS = ("axolotl", "llamafactory", "swift")


class JsonlParser(LineParser):
    markers = ('{"',)

    def feed(self, line: Line, out: Builder) -> None:
        if line.text.lstrip().startswith('{"') and not out.is_claimed(line):
            parse_jsonl_line(line, out)


def line_parsers() -> list[LineParser]:
    """The stack, in feeding order: framework parsers first, the generic event parser last (it skips
    lines a framework parser already made an event of)."""
    return [HFParser(), AxolotlParser(), JsonlParser(), DeepSpeedParser(), MMEngineParser(), KeyValueParser(),
            TorchDistParser(), EventParser()]


def parse(path: str) -> RunLog:
    """Read one log source (or a run directory) completely and return its RunLog.

    Raises:
        InputError: the source is missing, unreadable or not a log.
    """
    if path != "-" and os.path.isdir(path):
        return parse_dir(path)
    return finish(read(path), None)


def read(path: str) -> Builder:
    """Parse one file (or ``-``) into a Builder, before steps are derived.

    Raises:
        InputError: the source cannot be read as a log (see :mod:`logpost.parsers.readable`).
    """
    stream, name = open_source(path)
    if name == "<stdin>" and sys.stdin.isatty():  # typed or pasted: one Ctrl-D ends it (a read per block would
        stream = io.BytesIO(stream.read())  # wait for one more at the terminal)
    gz = isinstance(stream, gzip.GzipFile)
    out = Builder(name)
    try:
        stream = buffered(stream)
        try:
            head = read_text_head(stream)
        except EOFError:  # a .gz cut short within its first block
            head = b""
            out.meta["truncated"] = True
        check_head(head, name)
        if looks_like_state(head):
            out = _read_state(_read_whole(stream, MAX_JSON), name)
        else:
            out.lines = _scan(stream, out)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        if gz:
            raise gzip_error(name, exc) from None
        raise InputError(f"{name}: read error ({getattr(exc, 'strerror', None) or exc})") from None
    except InputError as exc:
        msg = str(exc)
        if gz and msg.startswith("read error"):  # the scanner met corrupt compressed data
            raise gzip_error(name, exc) from None
        raise InputError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    cut = bool(out.meta.get("truncated"))
    check_read(name, int(out.meta.get("bytes") or 0), "last_line_text" not in out.meta or bool(out.meta["last_line_text"]),
               gz, cut)
    if cut:
        out.meta["truncated"] = cut_at(name, out.lines, int(out.meta.get("bytes") or 0), gz)
    return out


def _read_state(data: bytes, name: str) -> Builder:
    """A trainer_state.json read whole (or a log that merely starts like one: then its lines)."""
    out = Builder(name)
    try:
        parse_trainer_state(data, out)
        out.lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        out.meta["bytes"] = len(data)
    except InputError:
        if name.endswith(".json"):
            raise
        out = Builder(name)
        out.lines = _scan(io.BytesIO(data), out)
    return out


def _read_whole(stream: Any, limit: int) -> bytes:
    """``stream.read(limit)`` without reserving ``limit`` bytes up front (``read(n)`` allocates n: 1 GiB of
    address space for a small trainer_state.json, which a scan worker's memory ceiling counts)."""
    chunks, n = [], 0
    while n < limit:
        chunk = stream.read(min(1 << 24, limit - n))
        if not chunk:
            break
        chunks.append(chunk)
        n += len(chunk)
    return b"".join(chunks)


def _scan(stream: Any, out: Builder, parsers: list[LineParser] | None = None) -> int:
    parsers = line_parsers() if parsers is None else parsers
    markers = tuple(m.encode() for p in parsers for m in p.markers)
    remember = tuple(m.encode() for p in parsers for m in p.remember)
    counters = tuple(m.encode() for p in parsers for m in p.counters)
    scanner = Scanner(stream, markers, remember=remember, counters=counters)
    out.scanner = scanner
    feeds = [p.feed for p in parsers]
    lanes = [(p.fast, p.fast_feed, feeds[i + 1:]) for i, p in enumerate(parsers) if p.fast is not None] if FAST else []
    waits = [p.idle for p in parsers if type(p).idle is not LineParser.idle]
    for no, raw in scanner:
        if out._follow:
            out.tick()
        start = scanner.pos
        if lanes and _lane(no, raw, lanes, waits, scanner, out):
            continue
        # a tqdm redraw line: only its parts holding a marker (a bar is found with look_back when needed); a
        # followed line: every part, each at its own offset (a dict's bar is then found before it, in the line)
        pieces = ((scanner.all_parts(raw) if scanner.follow else scanner.marked_parts(raw)) if b"\r" in raw
                  else None) or ((0, raw),)
        for offset, piece in pieces:
            for line in split_line(no, piece):
                scanner.pos = start + offset
                for feed in feeds:
                    feed(line, out)
    _wrap_up(scanner, parsers, out)
    return scanner.lines


def _wrap_up(scanner: Scanner, parsers: list[LineParser], out: Builder) -> None:
    """The end of a source: the parsers' ``finish`` and what the scanner saw."""
    out.counts = {m.decode(): n for m, n in scanner.counts.items()}
    for parser in parsers:
        parser.finish(out)
    out.meta["last_line_text"] = scanner.last_text.decode("utf-8", "replace").strip()[-500:]
    out.meta["bytes"] = scanner.bytes
    if scanner.truncated:
        out.meta["truncated"] = True


# Parts before a line's last ``\r`` that no parser acts on: blank, or a bare tqdm bar (digits, its own
# characters, a rate). A followed line hands every part to the parsers; while they are idle, these are ignored.
_INERT = re.compile(rb"(?:(?:[ \t]*|[ \d]{0,2}\d%\|[ #\d]*(?:\xe2\x96[\x88-\x8f][ #\d]*)*\|[ \d/]*"
                    rb"\[[\d:<?, .]*(?:s/it|it/s)?\][ \t]*)\r)*")


def _lane(no: int, raw: bytes, lanes: list[Any], waits: list[Any], scanner: Scanner, out: Builder) -> bool:
    """Feed a line through the first parser's fast lane that takes it (see ``LineParser.fast``): the
    whole line, or its last ``\\r`` part when the earlier parts hold no marker (and, in a line handed out by
    a follow window, which the parsers read whole, are blank or bare bars). False when none does, or some
    parser is not idle."""
    cut = raw.rfind(b"\r") + 1
    if cut and (not scanner.marked_from(cut) or scanner.follow and not _INERT.fullmatch(raw, 0, cut)) \
            or len(raw) - cut > MAX_TEXT:
        return False  # (the normaliser cuts a longer part)
    for wait in waits:
        if not wait():
            return False
    for pattern, feed, after in lanes:
        m = pattern.fullmatch(raw, cut)
        if m is not None:
            scanner.pos += cut
            line = Line(no, m.group("text").decode("ascii"), None)
            if not feed(line, m, out):
                for later in after:
                    later(line, out)
            return True
    return False


def finish(out: Builder, lines: int | None) -> RunLog:
    """Derive steps, build the frame and fix the framework order."""
    if lines is None:
        lines = out.lines
    header = out.meta.get("header", {})
    completed = bool(out.meta.get("completed"))
    total = header.get("total_steps") or out.meta.get("max_steps")
    # Steps are derived on the record columns; the frame is then built column by column from them, so the
    # peak stays near the size of the records themselves.
    n = len(out.records)
    columns = out.records.columns(skip=("table",))
    out.records = Records()
    if n:
        method = assign_steps(columns, header.get("steps_per_epoch"), int(total) if total else None, completed)
    else:
        method = "logged"
    columns.pop("_progress", None)
    texts_col = columns.pop("_text", None)
    texts: list[str] = [t if isinstance(t, str) else "" for t in texts_col] if texts_col is not None else [""] * n
    del texts_col
    frame = frame_from_columns(columns, n)
    del columns
    frame["source"] = pd.Series([out.source] * len(frame), dtype="string")
    ranked = sorted(out.frameworks.items(), key=lambda kv: (kv[0] not in _WRAPPERS, -kv[1], kv[0]))
    if out.events_dropped:
        out.meta["events_dropped"] = out.events_dropped
    return RunLog(source=out.source, frame=frame, events=out.events(), meta=out.meta,
                  frameworks=tuple(k for k, _ in ranked), lines=lines, step_method=method, texts=texts)


# ------------------------------------------------------------------------------------ a growing source


class _Pipe(io.RawIOBase):
    """Bytes handed over from :meth:`Incremental.feed` to the scanner's thread. A read waits for bytes,
    except right after one that gave some: then it gives 0, so the scanner parses what it has (a read
    loop ends at 0) instead of waiting for a full block; after :meth:`close`, 0 is the end."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.cond = threading.Condition()
        self.ended = False
        self.waiting = False  # the reader waits for bytes with none pending: all it was given is parsed
        self.gave = False

    def readable(self) -> bool:
        return True

    def put(self, data: bytes) -> None:
        with self.cond:
            self.chunks.append(data)
            self.cond.notify_all()

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def readinto(self, buf: Any) -> int:
        with self.cond:
            if not self.chunks:
                if self.gave or self.ended:
                    self.gave = False
                    return 0
                self.waiting = True
                self.cond.notify_all()
                while not self.chunks and not self.ended:
                    self.cond.wait()
                self.waiting = False
                if not self.chunks:
                    return 0
            n = 0
            while self.chunks and n < len(buf):
                chunk = self.chunks.popleft()
                take = min(len(chunk), len(buf) - n)
                buf[n: n + take] = chunk[:take]
                if take < len(chunk):
                    self.chunks.appendleft(chunk[take:])
                n += take
            self.gave = True
            return n

    def wait_parsed(self, alive: Any) -> None:
        """Until the reader has parsed every byte put (or ``alive()`` is false)."""
        with self.cond:
            while (self.chunks or not self.waiting) and alive():
                self.cond.wait(0.05)


class Incremental:
    """One source parsed as it grows (``logpost watch``, the trainer callback): :meth:`feed` appended bytes,
    :meth:`snapshot` a RunLog of the complete lines so far, :meth:`close` at the end of the source.

    Every byte is read once: the scanner and the parsers keep their state between feeds, in a thread of their
    own that waits for the next bytes. A snapshot finishes copies of the builder and parsers (an open
    traceback is closed in the copy, as at the end of a log). The RunLog :meth:`close` returns is the one
    :func:`parse` gives for the whole text. A trainer_state.json (rewritten, never appended) is kept whole
    and read again at each snapshot. Not thread-safe: feed, snapshot and close from one thread.
    """

    def __init__(self, source: str = "<live>"):
        self.source = source
        self.out = Builder(source)
        self.parsers = line_parsers()
        self.lines = 0  # newlines fed
        self.bytes = 0
        self._head: list[bytes] | None = []  # bytes kept until the head tells a trainer_state.json apart
        self._state: bytearray | None = None
        self._pipe = _Pipe()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.closed: RunLog | None = None

    def feed(self, data: bytes) -> None:
        """Parse ``data``, the bytes appended to the source (a line may be cut anywhere)."""
        if self.closed is not None:
            raise ValueError("feed after close")
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        if self._state is not None:
            self._state += data
        elif self._head is not None:
            self._head.append(data)
            if self.bytes >= 4096:
                self._start()
        else:
            self._pipe.put(data)

    def _start(self) -> None:
        head, self._head = b"".join(self._head or ()), None
        if looks_like_state(head[:4096]):
            self._state = bytearray(head)
            return
        self._thread = threading.Thread(target=self._run, name=f"logpost-parse {self.source}", daemon=True)
        self._thread.start()
        if head:
            self._pipe.put(head)

    def _run(self) -> None:
        try:
            self.out.lines = _scan(self._pipe, self.out, self.parsers)
        except BaseException as exc:  # handed to the feeding thread
            self._error = exc

    def _wait(self) -> None:
        thread = self._thread
        if thread is not None:
            self._pipe.wait_parsed(thread.is_alive)
        if self._error is not None:
            raise self._error

    def snapshot(self) -> RunLog:
        """The RunLog of the source so far: every complete line parsed, then finished as at its end."""
        if self.closed is not None:
            return self.closed
        self._wait()
        if self._state is not None or self._head is not None:  # a state file, or too short yet to tell: read whole
            data = bytes(self._state) if self._state is not None else b"".join(self._head or ())
            try:
                if self._state is not None or looks_like_state(data):
                    return finish(_read_state(data, self.source), None)
                out = Builder(self.source)
                _scan(io.BytesIO(data[: data.rfind(b"\n") + 1]), out)  # the complete lines
                return finish(out, self.lines)
            except InputError:  # not one complete entry yet
                return finish(Builder(self.source), 0)
        out, parsers = self.out.fork(self.parsers)
        if out.scanner is not None:
            _wrap_up(out.scanner, parsers, out)
        return finish(out, self.lines)

    def close(self) -> RunLog:
        """The end of the source: the last line (without its newline) too, and the final RunLog."""
        if self.closed is not None:
            return self.closed
        if self._head is not None:
            self._start()
        if self._state is not None:
            self.closed = finish(_read_state(bytes(self._state), self.source), None)
            return self.closed
        thread = self._thread
        assert thread is not None
        self._pipe.end()
        thread.join()
        if self._error is not None:
            raise self._error
        self.closed = finish(self.out, self.out.lines)
        return self.closed


# ------------------------------------------------------------------------------------ run directories

# Which files of a run directory are logs, most trusted first: logged steps beat derived ones.
_STATE = "trainer_state.json"
_LOG_SUFFIXES = (".log", ".out", ".err", ".txt", ".jsonl", ".log.gz", ".out.gz", ".err.gz", ".txt.gz")
_SKIP_NAMES = ("requirements.txt", "license.txt", "merges.txt", "vocab.txt", "readme.txt", "added_tokens.txt")
MAX_DIR_FILES = 64


def run_files(path: str) -> list[str]:
    """The log files of a run directory: ``trainer_state.json`` (the top-level one, else the latest
    checkpoint's), then JSONL metric logs, then console captures and ``debug.log``."""
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot list directory ({exc.strerror or exc})") from None
    state = None
    if _STATE in names:
        state = os.path.join(path, _STATE)
    else:
        ckpts = [n for n in names if n.startswith("checkpoint-") and n[11:].isdigit()
                 and os.path.isfile(os.path.join(path, n, _STATE))]
        if ckpts:
            state = os.path.join(path, max(ckpts, key=lambda n: int(n[11:])), _STATE)
    jsonl: list[str] = []
    console: list[str] = []
    for n in names:
        full = os.path.join(path, n)
        if not os.path.isfile(full) or n.lower() in _SKIP_NAMES or not n.lower().endswith(_LOG_SUFFIXES):
            continue
        (jsonl if ".jsonl" in n.lower() else console).append(full)
    files = ([state] if state else []) + jsonl + console
    return files[:MAX_DIR_FILES]


def parse_dir(path: str) -> RunLog:
    """Merge a run directory's logs into one RunLog without counting a step twice.

    Records are taken from the most trusted source that has them: a ``(kind, step)`` already given by
    ``trainer_state.json`` (logged steps) is dropped from a JSONL log, and both drop the console
    capture's record of the same step (derived steps); a console without any step-carrying source
    keeps all its records. Events of every file are kept, each with ``data["source"]``.
    """
    files = run_files(path)
    if not files:
        raise InputError(f"{path}: directory holds no logs (*.log, *.out, *.err, *.txt, *.jsonl, trainer_state.json)")
    runs = []
    for f in files:
        b = read(f)
        b.source_tag = True
        for e in b._events.values():
            e["data"]["source"] = b.source
        runs.append(finish(b, None))
    seen: set[tuple[str, int]] = set()
    kept = []
    texts: list[str] = []
    for run in runs:
        frame = run.frame
        run_texts = run.texts or [""] * len(frame)
        keys = list(zip(frame["kind"].fillna(""), frame["step"], strict=False))
        mask = [not (pd.notna(s) and (k, int(s)) in seen) for k, s in keys]
        part = frame[mask]
        kept.append(part)
        texts += [t for t, keep in zip(run_texts, mask, strict=False) if keep]
        seen |= {(k, int(s)) for k, s in keys if pd.notna(s)}
    frame = pd.concat([k for k in kept if len(k)], ignore_index=True) if any(len(k) for k in kept) else runs[0].frame
    frame = build_frame(frame.to_dict("records")) if len(frame) else frame
    meta: dict[str, Any] = {}
    lines: dict[str, Any] = {}
    line_files: dict[str, str] = {}  # which file each of the "_lines" a setting was printed on belongs to
    for run in runs:
        for k, v in run.meta.items():
            meta.setdefault(k, v)
        for k, v in run.meta.get("_lines", {}).items():
            if k not in lines:
                lines[k], line_files[k] = v, run.source
    if lines:
        meta["_lines"], meta["_line_files"] = lines, line_files
    meta["sources"] = [r.source for r in runs]
    counts: dict[str, int] = {}
    for run in runs:
        for i, fw in enumerate(run.frameworks):
            counts[fw] = counts.get(fw, 0) + len(run.frameworks) - i
    ranked = sorted(counts.items(), key=lambda kv: (kv[0] not in _WRAPPERS, -kv[1], kv[0]))
    method = next((r.step_method for r in runs if (r.frame["kind"] == "train").any()), runs[0].step_method)
    return RunLog(source=path, frame=frame, events=[e for r in runs for e in r.events], meta=meta,
                  frameworks=tuple(k for k, _ in ranked), lines=sum(r.lines for r in runs), step_method=method,
                  texts=texts)
