"""Cited lines with a few lines of context, re-read from the source file by line number.

The parsers keep only what they need, so the appendix goes back to the file. It streams: blocks
are read and their newlines counted with ``bytes.count`` (GB/s), and only blocks that hold a
wanted line are split, so a cited line near the end of a 1 GB log costs one fast pass and a
few kilobytes of memory. Line numbers are physical ``\\n`` lines, 1-based, as in the evidence.
stdin cannot be re-read: callers get ``None`` and show the evidence text alone.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from logpost import storage
from logpost.model import InputError
from logpost.parsers.normalise import clean, decode, open_source

BLOCK = 1 << 20
MAX_LINE_CHARS = 400  # a tqdm line redrawn with \r can hold thousands of characters
MAX_LINE_BYTES = 64 * 1024  # keep at most this much of one physical line while reading


@dataclass(frozen=True)
class ExcerptLine:
    no: int
    text: str
    cited: bool


@dataclass(frozen=True)
class Excerpt:
    """A run of consecutive lines around one or more cited lines."""

    first: int
    last: int
    lines: tuple[ExcerptLine, ...]
    cited: tuple[int, ...]
    refs: tuple[str, ...] = ()  # ids of the findings citing these lines (filled by the report context)


def readable(source: str) -> bool:
    """Whether ``source`` is a file we can go back to (not stdin, still there)."""
    return source not in ("-", "<stdin>") and storage.is_file(source)


def _open(path: str) -> BinaryIO:
    """The file as the parsers read it (``.gz`` decompressed, UTF-16 as UTF-8), so line numbers agree."""
    try:
        return open_source(path)[0]
    except InputError as exc:
        raise OSError(str(exc)) from None


def read_lines(path: str, wanted: Iterable[int]) -> dict[int, bytes]:
    """The raw bytes (without ``\\n``) of the wanted 1-based physical lines, in one streaming pass.

    Raises:
        OSError: the file cannot be read (a truncated or corrupt ``.gz`` included).
    """
    try:
        return _read_lines(path, wanted)
    except (EOFError, zlib.error) as exc:  # gzip's own errors that are not OSErrors
        raise OSError(f"{path}: {exc}") from None


def _read_lines(path: str, wanted: Iterable[int]) -> dict[int, bytes]:
    want = sorted({n for n in wanted if n >= 1})
    out: dict[int, bytes] = {}
    if not want:
        return out
    last_wanted = want[-1]
    wanted_set = set(want)
    no = 1  # number of the line the next byte belongs to
    partial = bytearray()  # the current line's bytes when it is wanted and spans blocks
    with _open(path) as fh:
        while no <= last_wanted:
            block = fh.read(BLOCK)
            if not block:
                break
            nl = block.count(b"\n")
            # Lines touched by this block: no .. no + nl (the last one may continue).
            if not _touches(want, no, no + nl):
                no += nl
                continue
            parts = block.split(b"\n")
            for i, part in enumerate(parts):
                n = no + i
                if n in wanted_set and len(partial) < MAX_LINE_BYTES:
                    partial += part[: MAX_LINE_BYTES - len(partial)]
                if i < len(parts) - 1:  # the line ends in this block
                    if n in wanted_set:
                        out[n] = bytes(partial)
                    partial.clear()
            no += nl
        if no in wanted_set and no not in out and partial:
            out[no] = bytes(partial)  # last line without a trailing newline
    return out


def _touches(want: list[int], lo: int, hi: int) -> bool:
    i = bisect.bisect_left(want, lo)
    return i < len(want) and want[i] <= hi


def display(raw: bytes) -> str:
    """One physical line as a reader should see it: decoded, ANSI stripped, \\r redraws shown as ⏎."""
    text = decode(raw)
    parts = [clean(p).rstrip() for p in text.split("\r")]
    parts = [p for p in parts if p.strip()] or [""]
    shown = " ⏎ ".join(parts) if len(parts) <= 3 else f"… ⏎ {parts[-2]} ⏎ {parts[-1]}"
    if len(shown) > MAX_LINE_CHARS:
        shown = shown[: MAX_LINE_CHARS - 1] + "…"
    return shown.expandtabs(4)


def excerpts(path: str, cited: Iterable[int], context: int = 2) -> tuple[Excerpt, ...]:
    """Blocks of ``context`` lines around each cited line, merged where they touch.

    Raises:
        OSError: the file cannot be read.
    """
    cited_set = sorted({n for n in cited if n >= 1})
    if not cited_set:
        return ()
    wanted = {n for c in cited_set for n in range(max(1, c - context), c + context + 1)}
    raw = read_lines(path, wanted)
    blocks: list[list[int]] = []
    for c in cited_set:
        lo, hi = max(1, c - context), c + context
        if blocks and lo <= blocks[-1][1] + 1:
            blocks[-1][1] = max(blocks[-1][1], hi)
            blocks[-1].append(c)
        else:
            blocks.append([lo, hi, c])
    out = []
    for lo, hi, *cs in blocks:
        lines = tuple(ExcerptLine(n, display(raw[n]), n in cs) for n in range(lo, hi + 1) if n in raw)
        if lines:
            out.append(Excerpt(lines[0].no, lines[-1].no, lines, tuple(cs)))
    return tuple(out)


def head(path: str, n: int = 200) -> list[str]:
    """The first ``n`` physical lines, decoded (for the start date of the run)."""
    raw = read_lines(path, range(1, n + 1))
    return [decode(raw[k]) for k in sorted(raw)]
