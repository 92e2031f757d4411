"""Sources and the line normaliser every parser sits behind.

The scanner reads a source in binary blocks and hands out only the physical lines that contain
one of the parsers' literal markers (``bytes.find`` runs at memory speed; a Python loop over every
line does not). A parser that needs the lines after a marker (a traceback, a table) asks the
scanner to ``follow`` for N lines. Line numbers are physical 1-based line numbers, counted on
``\\n`` only, as ``grep -n`` and editors count them; the ``\\r``-separated parts of a line (tqdm
redraws) share their line's number.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import sys
import zlib
from bisect import bisect_right
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO

import numpy as np

from logpost import storage
from logpost.model import InputError, Line

try:  # compiled multi-literal search; see Matcher
    import hyperscan as hs
except ImportError:  # pragma: no cover - platforms without a wheel
    hs = None  # type: ignore[assignment]

BLOCK = 1 << 22  # 4 MiB: large enough that per-block Python overhead is negligible
MAX_LINE = 1 << 23  # a "line" longer than 8 MiB is cut into pieces (same line number)
MAX_TEXT = 1 << 16  # parsers see at most 64 KiB of one piece; no metric record is longer
HEAD = 1 << 25  # 32 MiB: Scanner.counters are counted here
MAX_MATCHES = 1 << 16  # marker matches per block (a real log: ~500-5,000); beyond (junk): one per line part

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>78]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Colour codes whose ESC byte was lost in a paste: "[39m" at the end (colorama's Fore.RESET) or start.
_BARE_SGR_END = re.compile(r"\[(?:\d{1,3}(?:;\d{1,3})*)?m\s*$")
_BARE_SGR_START = re.compile(r"^\[(?:\d{1,3}(?:;\d{1,3})*)?m(?=\S)")
# Prefixes that launchers put before every line; the rank they carry becomes Line.rank.
_RANK_PREFIX = re.compile(r"^(?:\d{2}:\d{2}:\d{2}(?:[.,]\d{1,6})? )?\[(?:rank|default|[A-Za-z_]{1,20}?)(\d{1,5})\]:\s?")
_SRUN_PREFIX = re.compile(r"^\s{0,3}(\d{1,5}): (?=\S)")
# a job wrapper's "(job, pid=12) " and Ray's actor prefixes "(pid=12) ", "(ActorModelRayActorBOX pid=12) ",
# "(RayTrainWorker pid=12, ip=10.0.0.1) " (OpenRLHF, verl, Ray Train)
_WRAPPER_PREFIX = re.compile(r"^\((?:[\w.@-]{1,64},? )?pid=\d+(?:, ip=[\d.]+)?\) ")
_HOST_PREFIX = re.compile(r"^([A-Za-z][\w-]{0,62}\d[\w-]{0,62}): (?=\S)")
_AXOLOTL_RANK = re.compile(r"\[RANK:(\d{1,5})\]")
# a tqdm bar with no newline glued before the real message: "  0%|   | 0/40 [00:00<?, ?it/s][2026-..."
_TQDM_HEAD = re.compile(r"^[^\[]*?\d{1,3}%\|[^|]*\|[^\[\]]*\[[^\]]*\]\s*(?=\S)")


def open_source(path: str) -> tuple[BinaryIO, str]:
    """Open a path, ``-`` (stdin), an object storage URL (``s3://...``, :mod:`logpost.storage`) or a
    ``.gz`` of these for binary reading; return (stream, name)."""
    if path == "-":
        return sys.stdin.buffer, "<stdin>"
    if storage.is_url(path):  # object storage (s3://...): a buffered stream of ranged reads
        raw = storage.open_url(path)
    else:
        raw = _open_file(path)
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw), path  # type: ignore[return-value]
    if is_utf16(raw.peek(UTF16_PROBE)[:UTF16_PROBE]):  # PowerShell 5's `>` writes UTF-16
        return io.BufferedReader(_Utf16(raw), BLOCK), path  # type: ignore[return-value]
    return raw, path


def _open_file(path: str) -> io.BufferedReader:
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a log file")
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror or exc})") from None


UTF16_PROBE = 4096  # bytes of a file's start that tell UTF-16 apart


def is_utf16(head: bytes) -> bool:
    """A BOM, then text whose units mostly have a zero high byte (log prefixes, digits, English are ASCII);
    two bytes that merely look like a BOM start junk, not UTF-16."""
    if head[:2] not in (b"\xff\xfe", b"\xfe\xff"):
        return False
    high = head[3::2] if head[:2] == b"\xff\xfe" else head[2::2]  # the high byte of each unit after the BOM
    return len(high) >= 2 and high.count(0) >= 0.3 * len(high)


class _Utf16(io.RawIOBase):
    """A UTF-16 file (byte order from its BOM) as a stream of UTF-8 bytes; undecodable units become U+FFFD."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-16")(errors="replace")
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self.pending:
            chunk = self.raw.read(BLOCK)
            self.pending = self.decoder.decode(chunk, final=not chunk).encode("utf-8", "surrogatepass")
            if not chunk:
                break
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def decode(raw: bytes) -> str:
    """Bytes of one line as text: UTF-8, else GB18030 (Chinese Windows consoles), else UTF-8 with
    replacement characters. Never raises."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
        if "\x00" not in text:
            return text
    except UnicodeDecodeError:
        pass
    return raw.decode("utf-8", errors="replace")


def clean(text: str) -> str:
    """Strip ANSI escapes and control characters (keeping tabs), and bare colour residues."""
    if not text.isprintable() and _CTRL.search(text):  # isprintable: no control character, in C
        text = _ANSI.sub("", text)
    if text.rstrip().endswith("m") and "[" in text[-16:]:
        text = _BARE_SGR_END.sub("", text)
    if text[:1] == "[" and text[1:2] in "0123456789;m" and text[1:2]:
        text = _BARE_SGR_START.sub("", text)
    return text


def lift_rank(text: str) -> tuple[str, int | None]:
    """Remove launcher prefixes (``[rank3]:``, ``[default0]:``, ``3: ``, ``host1: ``,
    ``(job, pid=12) ``) and return the text with the rank they named (or Axolotl's ``[RANK:n]``)."""
    rank: int | None = None
    for _ in range(4):
        c = text[:1]
        m = None
        if c == "[" or c.isdigit() and text[2:3] == ":":  # "[rank4]:", "18:11:06.680 [rank4]:" (a time first)
            m = _RANK_PREFIX.match(text)
            if m:
                rank = int(m.group(1))
                text = text[m.end():]
                continue
        elif c == "(":
            m = _WRAPPER_PREFIX.match(text)
        elif c.isalpha():
            m = _HOST_PREFIX.match(text)
        if m and not m.group(0).rstrip(": ").endswith(("Error", "Exception", "Warning")):
            text = text[m.end():]
            continue
        if c == " " or c.isdigit():
            m = _SRUN_PREFIX.match(text)
            if m:
                rank = int(m.group(1))
                text = text[m.end():]
                continue
        break
    if rank is None and "[RANK:" in text:
        m = _AXOLOTL_RANK.search(text)
        if m:
            rank = int(m.group(1))
    return text, rank


def split_line(no: int, raw: bytes) -> list[Line]:
    """A physical line as normalised pieces: split on ``\\r``, decoded, cleaned, rank lifted, and a
    tqdm bar glued before a message (no newline between them) cut off."""
    out = []
    for part in raw.split(b"\r") if b"\r" in raw else (raw,):
        if not part.strip():
            continue
        text = clean(decode(part[:MAX_TEXT]))
        text, rank = lift_rank(text)
        if "%|" in text:
            m = _TQDM_HEAD.match(text)
            if m:
                if "loss=" in m.group(0):  # a custom loop's bar carries its metrics in the postfix
                    out.append(Line(no, m.group(0).rstrip(), rank))
                text, rank2 = lift_rank(text[m.end():])
                rank = rank if rank2 is None else rank2
        if text.strip():
            out.append(Line(no, text, rank))
    return out


def part_at(buf: bytes | bytearray, i: int, start: int, end: int) -> bytes:
    """The ``\\r``-separated part holding offset ``i`` of the line ``buf[start:end]``."""
    s = max(start, buf.rfind(b"\r", start, i) + 1)
    e = buf.find(b"\r", i, end)
    return bytes(buf[s: end if e == -1 else e])


class Matcher:
    """Where a set of literal markers occurs in a buffer, as the starts of the ``sep``-separated pieces
    (lines) holding one, in order.

    All markers are searched in one pass by Hyperscan (a compiled multi-literal automaton, ~1 GB/s on
    one core whatever the number of markers). Without it (a platform with no wheel) each marker costs a
    ``bytes.find`` pass (~1.5-3 GB/s each): the same lines, slower.
    """

    def __init__(self, markers: tuple[bytes, ...]):
        self.markers = tuple(sorted(set(m for m in markers if m)))
        self._db = None
        if hs is not None and self.markers and not any(b"\0" in m for m in self.markers):  # C strings
            self._db = hs.Database(mode=hs.HS_MODE_BLOCK)
            self._db.compile(expressions=list(self.markers), ids=list(range(len(self.markers))),
                             elements=len(self.markers), flags=[0] * len(self.markers), literal=True)

    def ends(self, data: bytes | bytearray | memoryview) -> list[int]:
        """End offsets of the marker occurrences in ``data`` (unordered, possibly repeated); past
        :data:`MAX_MATCHES` (junk dense with markers) only the first of each line or ``\\r`` part."""
        if self._db is not None:
            out: list[int] = []
            add = out.append

            def on_match(_id: int, _from: int, to: int, _flags: int, _ctx: object) -> bool:
                add(to)
                return len(out) >= MAX_MATCHES  # True stops the scan

            try:
                self._db.scan(data, match_event_handler=on_match)  # type: ignore[type-var]
                return out
            except hs.ScanTerminated:
                pass
        if not isinstance(data, bytes):
            data = bytes(data)
        hits = []
        find = data.find
        for m in self.markers:
            i = find(m)
            while i != -1:
                hits.append(i + len(m))
                nl, cr = find(b"\n", i), find(b"\r", i)
                e = min(nl, cr) if nl != -1 and cr != -1 else max(nl, cr)
                if e == -1:
                    break
                i = find(m, e)
        return hits

    def starts(self, data: bytes | bytearray, sep: bytes = b"\n", ends: list[int] | None = None) -> list[int]:
        """Starts of the lines holding a marker (from ``ends`` when the matches are already known)."""
        rfind = data.rfind
        return sorted({rfind(sep, 0, e - 1) + 1 for e in (self.ends(data) if ends is None else ends)})


class Scanner:
    """Yields ``(line_number, raw_bytes)`` for the physical lines that contain a marker.

    Set :attr:`follow` to N from the consumer to receive the next N lines unconditionally.
    ``counters`` are counted (not handed out) in the first :data:`HEAD` bytes. Memory is one block
    plus one over-long line at most. :meth:`look_back` finds earlier lines holding a marker (the last
    tqdm bar before a metric dict) without making every such line a candidate.
    """

    def __init__(self, stream: BinaryIO, markers: tuple[bytes, ...], block: int = BLOCK, *,
                 remember: tuple[bytes, ...] = (), counters: tuple[bytes, ...] = ()):
        self.stream = stream
        self.matcher = Matcher(markers)
        self.block = block
        self.follow = 0
        self.lines = 0  # physical lines seen so far (complete after iteration)
        self.bytes = 0
        self.truncated = False
        self.last_text = b""  # last non-blank physical line, for "how did the log end"
        self.remember = remember
        self.counters = counters
        self.counts: dict[bytes, int] = dict.fromkeys(counters, 0)  # occurrences in the first HEAD bytes
        self._prev: dict[bytes, list[bytes]] = {m: [] for m in remember}  # last lines holding m, earlier blocks
        self.last_line: dict[bytes, tuple[int, bytes]] = {}  # the source's last line holding m: (number, raw)
        self._cur: bytes | bytearray = b""
        self._ends: list[int] = []  # end offsets of the marker matches in the current block, sorted
        self.pos = 0  # offset in the current block of the line being handed out
        self._mask: np.ndarray | None = None  # where the block's newlines are (see _block)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        # One buffer for the whole source: a block is read after the carried partial line, and the
        # lines are searched in place (a fresh 4 MiB object per block costs page faults, ~0.5 s/GiB).
        buf = bytearray(self.block + MAX_LINE)
        view = memoryview(buf)
        have = 0  # bytes carried over from the last read: a line not yet ended
        base = 1
        while True:
            got = self._read(view, have)
            end = have + got
            if got:
                self.bytes += got
                cut = buf.rfind(b"\n", have, end)  # (the carried part holds none)
                if cut == -1:
                    if end < MAX_LINE:
                        have = end
                        continue
                    n = end
                else:
                    n = cut + 1
            elif have:
                n = end
            else:
                break
            if self.bytes - (end - n) - n < HEAD:
                for m in self.counters:
                    self.counts[m] += buf.count(m, 0, n)
            self._cur = buf
            base = yield from self._block(buf, n, base)
            self._remember_tail(buf, n)
            for m in self.remember:
                self._prev[m] = self._last_lines(buf, m, n, 8) + self._prev[m][:8]
                i = buf.rfind(m, 0, n)
                if i != -1:  # the last line holding m, with its number (base is the next block's first line)
                    s = buf.rfind(b"\n", 0, i) + 1
                    e = buf.find(b"\n", i, n)
                    self.last_line[m] = (base - buf.count(b"\n", s, n), bytes(view[s: e if e != -1 else n][:MAX_TEXT]))
            have = end - n
            buf[:have] = buf[n:end]
            if not got:
                break
        self._cur = b""
        view.release()
        # newlines counted, plus a last line that has none
        self.lines = base - 1 + (0 if self._ended_with_newline else 1)

    _ended_with_newline = True

    def _read(self, view: memoryview, at: int) -> int:
        """Read up to one block into ``view[at:]``; a .gz cut short (copied while being written) gives
        what decompresses."""
        if self.truncated:
            return 0
        readinto = getattr(self.stream, "readinto1", None) or getattr(self.stream, "readinto", None)
        n = 0
        try:
            while n < self.block:
                if readinto is not None:
                    got = readinto(view[at + n: at + self.block])
                else:  # a stream without readinto (a test double)
                    piece = self.stream.read(self.block - n)
                    got = len(piece)
                    view[at + n: at + n + got] = piece
                if not got:
                    break
                n += got
        except EOFError:
            self.truncated = True
        except (OSError, zlib.error) as exc:
            raise InputError(f"read error: {exc}") from None
        return n

    def _remember_tail(self, block: bytearray, end: int) -> None:
        self._ended_with_newline = block.endswith(b"\n", 0, end)
        while end > 0:
            start = block.rfind(b"\n", 0, end - 1) + 1
            piece = bytes(block[start:end]).strip(b" \t\r\n\x0b\x0c\0")  # (a crashed file system pads with NULs)
            if piece:
                self.last_text = piece[-4096:]
                return
            end = start
            if start == 0:
                return

    @staticmethod
    def _last_lines(block: bytearray, marker: bytes, end: int, limit: int) -> list[bytes]:
        out: list[bytes] = []
        while len(out) < limit:
            i = block.rfind(marker, 0, end)
            if i == -1:
                break
            s = block.rfind(b"\n", 0, i) + 1
            e = block.find(b"\n", i, end)
            out.append(bytes(block[s: e if e != -1 else end]))
            end = s
        return out

    def look_back(self, marker: bytes, limit: int = 8) -> Iterator[bytes]:
        """The last ``limit`` physical lines holding ``marker`` before the current position, nearest
        first (lines from earlier blocks only for markers given in ``remember``); lazily."""
        block, end, n = self._cur, self.pos, 0
        while n < limit:
            i = block.rfind(marker, 0, end)
            if i == -1:
                break
            s = block.rfind(b"\n", 0, i) + 1
            e = block.find(b"\n", i, end)
            yield bytes(block[s: e if e != -1 else end])
            n += 1
            end = s
        yield from self._prev.get(marker, [])[: limit - n]

    def last_part(self, marker: bytes) -> bytes | None:
        """The ``\\r`` part holding the last ``marker`` before the current position, in this block: what
        the first line of :meth:`look_back` gives, cut to its part holding its last marker."""
        block, end = self._cur, self.pos
        i = block.rfind(marker, 0, end)
        if i == -1:
            return None
        e = block.find(b"\n", i, end)
        return part_at(block, i, block.rfind(b"\n", 0, i) + 1, end if e == -1 else e)

    def marked_from(self, offset: int) -> bool:
        """True when no marker of the line being handed out ends before ``offset`` in it."""
        ends, i = self._ends, bisect_right(self._ends, self.pos)
        return i == len(ends) or ends[i] > self.pos + offset

    def marked_parts(self, raw: bytes) -> list[tuple[int, bytes]]:
        """The ``\\r``-separated parts of the line being handed out (``raw``) that hold a marker, with
        their offsets (a tqdm redraw line can hold thousands of bars and one metric dict); from the
        block's marker matches, without searching the line again."""
        ends, base = self._ends, self.pos
        lo, hi = bisect_right(ends, base), bisect_right(ends, base + len(raw))
        rfind, find = raw.rfind, raw.find
        starts = sorted({rfind(b"\r", 0, e - base - 1) + 1 for e in ends[lo:hi]})
        return [(s, raw[s: e if (e := find(b"\r", s)) != -1 else len(raw)]) for s in starts]

    @staticmethod
    def all_parts(raw: bytes) -> list[tuple[int, bytes]]:
        """The ``\\r``-separated parts of a line with their offsets (what :func:`split_line` splits)."""
        out, start = [], 0
        for part in raw.split(b"\r"):
            out.append((start, part))
            start += len(part) + 1
        return out

    def _block(self, block: bytearray, n: int, base: int) -> Generator[tuple[int, bytes], None, int]:
        """The candidate lines of ``block[:n]`` (whole lines), numbered from ``base``."""
        view = memoryview(block)
        self._ends = sorted(self.matcher.ends(view[:n]))
        cands = self.matcher.starts(block, ends=self._ends)
        if base == 1 and (not cands or cands[0] != 0):
            cands.insert(0, 0)  # the first line of a source: where pastes are cut (a dict without "{")
        # every candidate's number at once: the newlines before it (numpy, ~4 GB/s; into one reused mask, as a
        # fresh 4 MiB array per block costs page faults)
        if self._mask is None or len(self._mask) < n:
            self._mask = np.empty(len(block), dtype=bool)
        mask = self._mask[:n]
        np.equal(np.frombuffer(block, dtype=np.uint8, count=n), 10, out=mask)
        newlines = np.flatnonzero(mask)
        numbers = (np.searchsorted(newlines, cands) + base).tolist()
        ci, pos, no = 0, 0, base - 1
        find = block.find
        while True:
            if self.follow > 0 and pos < n:
                s = pos  # the line after the one handed out last
                no += 1
                self.follow -= 1
            else:
                while ci < len(cands) and cands[ci] < pos:
                    ci += 1
                if ci >= len(cands):
                    break
                s, no = cands[ci], numbers[ci]
                ci += 1
            e = find(b"\n", s, n)
            if e == -1:
                e = n
            self.pos = s
            yield no, view[s:e].tobytes()
            pos = e + 1
        return base + len(newlines)


def read_text_head(stream: BinaryIO, size: int = 4096) -> bytes:
    """Peek at the start of a stream without consuming it where possible."""
    if hasattr(stream, "peek"):
        return stream.peek(size)[:size]  # type: ignore[attr-defined]
    return b""


def buffered(stream: BinaryIO) -> BinaryIO:
    """Wrap a stream so it can be peeked (stdin, gzip)."""
    if hasattr(stream, "peek"):
        return stream
    return io.BufferedReader(stream)  # type: ignore[arg-type,type-var]
