"""Which compiled library to extract the dense shape with: pyarrow.compute (RE2) against polars, beside
today's Python lane, on the dense benchmark log (``bench_ingest.py --keep-dense``).

The task measured is the dominant work of a ``logging_steps: 1`` log: every HF train dict (transformers 4.x
bare floats or 5.x quoted strings) glued to its tqdm redraws, read into typed columns (the bar's step and
the four metrics as float64). Each way reads the file in 4 MiB blocks of whole lines:

* ``python``: today's per-line way, a regex per line (``re`` fullmatch, the lane's shape template) and
  ``float`` per value, appended to ``array('d')`` columns;
* ``pyarrow``: the block's lines as one Arrow string array without a copy (offsets from numpy), the
  candidate lines kept by ``pc.match_substring``, the groups taken by ``pc.extract_regex`` (RE2) and cast
  to float64 by Arrow;
* ``polars``: the same Arrow array handed to polars (no copy), ``str.contains`` + ``str.extract_groups``,
  then ``cast(Float64)``.

It prints CPU seconds, MB/s and records/s of one core for each, and checks that all three read the same
numbers. Usage::

    python3 benchmarks/bench_extract.py /tmp/dense.log [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from array import array

import numpy as np

BLOCK = 1 << 22
# the dict after the bar redraws (transformers 4.x and 5.x): bar position, total, four metrics
PATTERN = (r"(?P<step>\d+)/(?P<total>\d+) \[[^\]]*\]\r *\r\{'loss': '?(?P<loss>[^,']*)'?, "
           r"'grad_norm': '?(?P<grad_norm>[^,']*)'?, 'learning_rate': '?(?P<learning_rate>[^,']*)'?, "
           r"'epoch': '?(?P<epoch>[^,']*)'?\}$")
FIELDS = ("step", "loss", "grad_norm", "learning_rate", "epoch")
LITERAL = "{'loss': "


def blocks(path: str):
    """Whole-line blocks of the file (bytes)."""
    with open(path, "rb") as fh:
        carry = b""
        while True:
            data = fh.read(BLOCK)
            if not data:
                if carry:
                    yield carry
                return
            data = carry + data
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                yield data[:cut - 1]


def by_python(path: str) -> dict[str, np.ndarray]:
    pat = re.compile(PATTERN.encode())
    cols = {f: array("d") for f in FIELDS}
    for block in blocks(path):
        i = block.find(LITERAL.encode())
        while i != -1:
            s = block.rfind(b"\n", 0, i) + 1
            e = block.find(b"\n", i)
            e = len(block) if e == -1 else e
            m = pat.search(block, s, e)
            if m is not None:
                for f in FIELDS:
                    cols[f].append(float(m.group(f)))
            i = block.find(LITERAL.encode(), e)
    return {f: np.frombuffer(c, dtype=np.float64) for f, c in cols.items()}


def _arrow_lines(block: bytes):
    """The block's lines as one Arrow string array over the block's own bytes (no copy): offsets at the
    newlines (each line keeps its "\\n"; the patterns allow it at the end)."""
    import pyarrow as pa

    nl = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    offsets = np.empty(len(nl) + 2, dtype=np.int32)  # blocks are far below 2 GiB: 32-bit offsets
    offsets[0] = 0
    offsets[1:-1] = nl + 1
    offsets[-1] = len(block)
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(block))


ARROW_PATTERN = PATTERN[:-1] + r"\n?$"


def by_pyarrow(path: str) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    parts: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    for block in blocks(path):
        lines = _arrow_lines(block)
        cand = lines.filter(pc.match_substring(lines, LITERAL))
        got = pc.extract_regex(cand, ARROW_PATTERN)
        ok = got.filter(got.is_valid())
        for f in FIELDS:
            parts[f].append(pc.cast(ok.field(f), pa.float64()).to_numpy(zero_copy_only=False))
    return {f: np.concatenate(v) if v else np.zeros(0) for f, v in parts.items()}


def by_polars(path: str) -> dict[str, np.ndarray]:
    import polars as pl

    parts: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    for block in blocks(path):
        lines = pl.Series("l", _arrow_lines(block))
        cand = lines.filter(lines.str.contains(LITERAL, literal=True))
        got = cand.str.extract_groups(ARROW_PATTERN).struct.unnest()
        got = got.filter(pl.col("step").is_not_null())
        for f in FIELDS:
            parts[f].append(got[f].cast(pl.Float64).to_numpy())
    return {f: np.concatenate(v) if v else np.zeros(0) for f, v in parts.items()}


WAYS = {"python": by_python, "pyarrow": by_pyarrow, "polars": by_polars}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log", help="the dense benchmark log (bench_ingest.py --keep-dense PATH)")
    ap.add_argument("--repeat", type=int, default=3, help="keep the least CPU of N runs")
    args = ap.parse_args()
    size = os.path.getsize(args.log)
    for _ in blocks(args.log):  # warm the page cache
        pass
    results = {}
    print(f"file: {size / 1e6:.0f} MB, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}")
    print("| way | CPU s | MB/s (CPU) | records | records/s (CPU) |")
    print("|---|---:|---:|---:|---:|")
    for name, way in WAYS.items():
        try:
            way(args.log) if name != "python" else None  # import and warm up the library
        except ImportError as exc:
            print(f"| {name} | not installed ({exc.name}) | | | |")
            continue
        best, cols = None, None
        for _ in range(max(1, args.repeat)):
            t0 = time.process_time()
            cols = way(args.log)
            cpu = time.process_time() - t0
            best = cpu if best is None else min(best, cpu)
        assert best is not None and cols is not None
        results[name] = cols
        n = len(cols["step"])
        print(f"| {name} | {best:.2f} | {size / best / 1e6:.0f} | {n} | {n / best:,.0f} |")
    ref = results.get("python")
    for name, cols in results.items():
        same = ref is not None and all(np.array_equal(cols[f], ref[f]) for f in FIELDS)
        print(f"{name}: same numbers as python: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
