"""Whether a source can be read as a log at all, in one place: an empty file or stdin, binary data,
a ``.gz`` that is not gzip (or is corrupt), and a file cut short (a ``.gz`` or a ``trainer_state.json``
copied while it was being written).

Unreadable input raises :class:`~logpost.model.InputError` (exit 2, one line); a file cut short is read
as far as it goes and ``meta["truncated"]`` says where it ends, so a report blames the file, not the run.
"""

from __future__ import annotations

import re
from typing import Any

from logpost.model import InputError

HEAD = 4096  # bytes of a source's start that are judged
# Bytes that never occur in a text log (NUL aside: a file system can pad a log with NUL runs after a crash);
# tab, newline, CR, form feed, backspace and ESC (ANSI colours) do.
_CONTROL = re.compile(rb"[\x01-\x07\x0e-\x1a\x1c-\x1f\x7f]")
# In random or compressed bytes ~11% are such bytes; in a text log, none. 5% leaves room for a few
# stray control characters in a real log (a terminal's bell, a pasted escape sequence that lost its ESC).
BINARY_SHARE = 0.05


def check_head(head: bytes, name: str) -> None:
    """Raise InputError when the first bytes of a source show it is not a text log."""
    text = head.replace(b"\0", b"")
    if text and len(_CONTROL.findall(text)) > BINARY_SHARE * len(text):
        raise InputError(f"{name}: binary data, not a log")


def check_read(name: str, nbytes: int, text_seen: bool, gz: bool, cut: bool) -> None:
    """Raise InputError when a source read to its end gave nothing to read: no bytes (an empty file,
    an empty stdin, a .gz whose data is not gzip) or no text (NUL bytes, blank lines)."""
    if gz and cut and not nbytes:
        raise InputError(f"{name}: not a valid gzip file")
    if not nbytes:
        raise InputError(f"{name}: empty input (nothing was piped in)" if name == "<stdin>" else f"{name}: empty file")
    if not text_seen:
        raise InputError(f"{name}: no text in it (only NUL bytes or blank lines), not a log")


def gzip_error(name: str, exc: BaseException) -> InputError:
    """A gzip stream that cannot be decompressed (bad header, corrupt data, CRC error), as one line."""
    detail = str(exc).strip() or type(exc).__name__
    if "Not a gzipped file" in detail or "Unknown compression method" in detail:
        return InputError(f"{name}: not a valid gzip file")
    return InputError(f"{name}: not a valid gzip file (corrupt data: {detail})")


def cut_at(name: str, line: int, nbytes: int, gz: bool) -> dict[str, Any]:
    """What ``meta["truncated"]`` holds for a file cut short: which file, its last line and byte (of the
    decompressed text for a .gz)."""
    return {"file": name, "line": line, "byte": nbytes, "gz": gz}
