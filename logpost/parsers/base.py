"""What every line parser writes into: the RunLog builder, and the parser protocol."""

from __future__ import annotations

import copy
import functools
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

import numpy as np

from logpost.model import Event, Line

MAX_STEP = 1 << 53  # steps are Int64 in the frame; no run has more (a float still holds them exactly)
_FLOAT, _INT = {float}, {int}
MAX_EVENTS = 5000  # distinct event messages kept; beyond that they are only counted


class LineParser:
    """A line parser of the stack.

    The scanner hands out the physical lines holding any parser's ``markers`` (literal text, all searched
    in one compiled pass: see :class:`~logpost.parsers.normalise.Matcher`) and the lines some parser asked
    to :meth:`Builder.follow`. Every parser sees every such line and must cheaply ignore the rest.
    A marker should be rare in ordinary log lines: every line holding one costs ~10-50 us of parsing.
    """

    markers: tuple[str, ...] = ()
    remember: tuple[str, ...] = ()  # markers :meth:`Builder.look_back` may search for across blocks
    counters: tuple[str, ...] = ()  # texts counted (not handed out) in the first 32 MiB: Builder.counts
    # The fast lane: a pattern for this parser's most common lines, matched (``fullmatch``) against the
    # raw bytes of a line, or of its last ``\r`` part when every marker of the line is in it. Its group
    # ``text`` must be exactly the text the normaliser would give (``split_line``: so ASCII, no control
    # character, no launcher prefix, a glued tqdm bar outside the group), and the parsers before this one
    # in the stack must ignore such a line whenever they are :meth:`idle`. While every parser is idle,
    # the stack then only feeds this parser, and the parsers after it when it did not claim the line:
    # the same result without the generic path (tests/test_fast_lane.py compares both).
    fast: re.Pattern[bytes] | None = None

    def feed(self, line: Line, out: Builder) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def fast_feed(self, line: Line, match: re.Match[bytes], out: Builder) -> bool:
        """Feed a line of the fast lane (``match``: the ``fast`` pattern's): :meth:`feed`, unless the parser
        has a shorter way to the same result. True when the line is claimed (the later parsers skip it)."""
        self.feed(line, out)
        return out.is_claimed(line)

    def idle(self) -> bool:
        """False while the parser holds state a coming line may continue (an open table, a traceback):
        lines then take the generic path."""
        return True

    def finish(self, out: Builder) -> None:
        """Called once at the end of the source."""


_FOLD_DIGITS = re.compile(r"\d+")


@functools.lru_cache(maxsize=4096)  # per-rank warnings repeat verbatim
def _fold(text: str) -> str:
    """An event text with its digits folded: what tells repeated events apart."""
    return _FOLD_DIGITS.sub("#", text)
# Fields that tell apart events whose texts differ only in digits (timestamps, pids fold; scales do not).
FOLD_FIELDS = {
    "overflow": ("attempted_scale", "next_scale", "hysteresis"),
    "exit": ("code", "local_rank", "pid", "launcher"),
    "nccl_timeout": ("seq", "op", "timeout_ms"),
    "nccl_error": ("kind",),
    "cuda_oom": ("requested_bytes", "free_bytes"),
}


# A record: a dict, or a row (its key sequence, its values) that no parser changes after it is made
Record = dict[str, Any] | tuple[tuple[str, ...], list[Any]]


def _items(rec: Record) -> Any:
    return zip(rec[0], rec[1], strict=True) if isinstance(rec, tuple) else rec.items()


class Records:
    """Metric records, kept compact: a record is a dict while parsers may still add to it (the last
    :attr:`TAIL`) or a row (see :meth:`Builder.row`); older ones are packed by batch and key sequence into
    typed columns (``array('d')`` for floats, ``array('q')`` for ints, lists otherwise). Memory grows
    with records only: ~0.25 KB each with its evidence text, against ~1 KB as dicts."""

    TAIL = 32
    BATCH = 1024

    def __init__(self) -> None:
        # batches: (each record's group, in order; the groups: (keys, {key: column}))
        self._batches: list[tuple[array, list[tuple[tuple[str, ...], dict[str, Any]]]]] = []
        self._tail: list[Record] = []
        self._n = 0
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}

    def append(self, rec: Record) -> None:
        self._tail.append(rec)
        self._n += 1
        if len(self._tail) >= self.BATCH + self.TAIL:
            self._pack(self._tail[: self.BATCH])
            del self._tail[: self.BATCH]

    def _pack(self, recs: list[Record]) -> None:
        # records are grouped by key sequence (gidx: each one's group); a group's rows keep their order
        groups: dict[tuple[str, ...], int] = {}
        seqs = [r[0] if isinstance(r, tuple) else tuple(r) for r in recs]
        gidx = array("H", [groups.setdefault(keys, len(groups)) for keys in seqs])
        codes = np.frombuffer(gidx, dtype=np.uint16)
        members = [list(map(recs.__getitem__, np.flatnonzero(codes == g).tolist())) for g in range(len(groups))]
        packed = []
        for keys, g in groups.items():
            keys = self._keys.setdefault(keys, keys)
            rows = members[g]
            # the group's records as columns (one tuple per key), transposed in C
            get = itemgetter(*keys) if len(keys) > 1 else lambda r, k=keys[0]: (r[k],)
            table = zip(*[r[1] if type(r) is tuple else get(r) for r in rows], strict=True)
            cols: dict[str, Any] = {}
            for k, values in zip(keys, table, strict=True):
                types = set(map(type, values))
                if types == _FLOAT:
                    cols[k] = array("d", values)
                elif types == _INT and -(1 << 62) < min(values) and max(values) < (1 << 62):
                    cols[k] = array("q", values)
                else:
                    cols[k] = list(values)
            packed.append((keys, cols))
        self._batches.append((gidx, packed))

    def __len__(self) -> int:
        return self._n

    def fork(self, tail: list[Record]) -> Records:
        """A copy that shares the packed batches (never changed) and holds ``tail`` as its open records."""
        other = Records()
        other._batches, other._tail, other._n, other._keys = list(self._batches), tail, self._n, self._keys
        return other

    def __bool__(self) -> bool:
        return self._n > 0

    def columns(self, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """Every key as a whole column: a float64 numpy array (NaN = not logged) when every value is a
        number, else an object array (None = not logged); built from the packed columns directly."""
        n = self._n
        kinds: dict[str, bool] = {}  # key -> all numeric so far
        for _, packed in self._batches:
            for _, cols in packed:
                for k, c in cols.items():
                    kinds[k] = kinds.get(k, True) and isinstance(c, array)
        for rec in self._tail:
            for k, v in _items(rec):
                kinds[k] = kinds.get(k, True) and type(v) in (float, int)
        out: dict[str, Any] = {}
        for k, numeric in kinds.items():
            if k not in skip:
                out[k] = np.full(n, np.nan) if numeric else np.full(n, None, dtype=object)
        row = 0
        for gidx, packed in self._batches:
            g_arr = np.frombuffer(gidx, dtype=np.uint16) if len(gidx) else np.zeros(0, np.uint16)
            for g, (_, cols) in enumerate(packed):
                rows = row + np.flatnonzero(g_arr == g)
                for k, c in cols.items():
                    if k in out:
                        dest = out[k]
                        if isinstance(c, array) and dest.dtype != object:
                            dest[rows] = np.frombuffer(c, dtype=np.float64 if c.typecode == "d" else np.int64)
                        else:
                            dest[rows] = list(c)
            row += len(gidx)
        for i, rec in enumerate(self._tail, start=row):
            for k, v in _items(rec):
                if k in out:
                    out[k][i] = v
        return out


class Builder:
    """Collects records (metric rows), events and run metadata while a source is read."""

    def __init__(self, source: str):
        self.source = source
        self.records = Records()
        self._events: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.events_dropped = 0
        self.meta: dict[str, Any] = {}
        self.frameworks: Counter[str] = Counter()
        self._follow: dict[int, int] = {}
        self.scanner: Any = None
        self.lines = 0
        self.counts: dict[str, int] = {}
        self.source_tag = False  # add data["source"] to events (a run directory merges several files)
        self.claimed: tuple[int, str] | None = None  # (line, text) of the last line that made an event

    def fork(self, parsers: list[LineParser]) -> tuple[Builder, list[LineParser]]:
        """A copy of the builder and of the parsers feeding it, to finish a snapshot of a source still being
        read (:class:`logpost.parsers.Incremental`) while the originals read on."""
        other = copy.copy(self)
        parsers, tail = copy.deepcopy((parsers, self.records._tail))  # one memo: a parser's open record stays its
        other.records = self.records.fork(tail)
        other._events = {k: {**v, "data": dict(v["data"])} for k, v in self._events.items()}
        other.meta = copy.deepcopy(self.meta)
        other.frameworks = Counter(self.frameworks)
        other._follow = dict(self._follow)
        other.counts = dict(self.counts)
        other.scanner = copy.copy(self.scanner)
        return other, parsers

    # ---------------------------------------------------------------- records
    def record(self, kind: str, values: dict[str, Any], line: Line | None, *,
               step: int | None = None, text: str | None = None, **extra: Any) -> dict[str, Any]:
        if line is not None:
            self.claimed = (line.no, line.text)  # a metric record is not also an error/warning event
        # Memory grows with records only: keep them small (no None values; the source is added to the
        # frame at the end), ~0.5 KB each.
        rec: dict[str, Any] = {k: v for k, v in values.items() if v is not None} if None in values.values() \
            else dict(values)
        try:  # the common case in C: all numbers, all finite (a sum overflowing to inf is checked below)
            finite = math.isfinite(sum(rec.values()))
        except TypeError:
            finite = False
        if not finite:
            bad = [k for k, v in rec.items() if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                rec["nonfinite"] = ",".join(sorted(bad))
        rec["kind"] = kind
        if step is not None and 0 <= step < MAX_STEP:  # a garbled or junk number is no step
            rec["step"] = step
        rec["line"] = line.no if line else extra.pop("line_no", None)
        if line is not None and line.rank is not None:
            rec["rank"] = line.rank
        rec["_text"] = (text if text is not None else (line.text.strip() if line else ""))[:500]
        rec.update(extra)
        self.records.append(rec)
        return rec

    def row(self, keys: tuple[str, ...], values: list[Any], line: Line) -> None:
        """A record as :meth:`record` makes it, given whole: ``keys`` in the order it would hold them (the
        metrics, ``kind``, ``line``, ``_text``, then extras), ``values`` finite numbers for the metrics and the
        rest as it would set them, and a ``line`` without rank. No dict is made (the fast lanes' records)."""
        self.claimed = (line.no, line.text)
        self.records.append((keys, values))

    # ---------------------------------------------------------------- events
    def event(self, kind: str, line: Line, text: str | None = None, /, **data: Any) -> None:
        """Record an event; the same message repeated (digits aside) is folded into one.

        Tagged events (``tag=...``) fold only with events of the same rank and the same
        :data:`FOLD_FIELDS` values, so e.g. OVERFLOW lines at different scales stay apart.
        """
        self.claimed = (line.no, line.text)
        text = (text if text is not None else line.text).strip()
        tag = data.get("tag")
        fields = tuple(repr(data.get(f)) for f in FOLD_FIELDS.get(tag, ())) if tag else ()
        key = (kind, _fold(text[:300]), tag, line.rank if tag else None, fields)
        acc = self._events.get(key)
        if acc is not None:
            acc["count"] += 1
            acc["last_line"] = max(acc["last_line"], line.no)
            if line.no < acc["line"]:  # a traceback is emitted at its end: an earlier one can come later
                acc.update(line=line.no, text=text[:2000], rank=line.rank, data={**acc["data"], **data})
            return
        if len(self._events) >= MAX_EVENTS:
            self.events_dropped += 1
            return
        if self.source_tag:
            data["source"] = self.source
        self._events[key] = {"kind": kind, "line": line.no, "text": text[:2000], "rank": line.rank,
                             "count": 1, "last_line": line.no, "data": data}

    def is_claimed(self, line: Line) -> bool:
        """True when another parser already made an event of this line."""
        return self.claimed == (line.no, line.text)

    def events(self) -> list[Event]:
        return [Event(**acc) for acc in self._events.values()]

    # ---------------------------------------------------------------- scanner control
    def follow(self, parser: LineParser, lines: int) -> None:
        """Ask for the next ``lines`` physical lines to reach ``parser`` whatever they contain."""
        self._follow[id(parser)] = lines
        if self.scanner is not None:
            self.scanner.follow = max(self.scanner.follow, lines)

    def stop_following(self, parser: LineParser) -> None:
        self._follow.pop(id(parser), None)

    def tick(self) -> None:
        """A new physical line starts: count down the follow windows (called before feeding it)."""
        if self._follow:
            for key, left in list(self._follow.items()):
                if left <= 0:
                    del self._follow[key]
                else:
                    self._follow[key] = left - 1

    def look_back(self, marker: str, limit: int = 8) -> Iterator[bytes]:
        """Raw physical lines before the current line part holding ``marker``, nearest first."""
        if self.scanner is not None:
            yield from self.scanner.look_back(marker.encode(), limit)

    def saw(self, framework: str, weight: int = 1) -> None:
        self.frameworks[framework] += weight

    def set_meta(self, key: str, value: Any, line: Line | None = None) -> None:
        """Keep the first value of a metadata key, with the line that said it."""
        if key not in self.meta:
            self.meta[key] = value
            if line is not None:
                self.meta.setdefault("_lines", {})[key] = (line.no, line.text.strip()[:500])
