"""Write what logpost makes of every fixture file, to compare two checkouts (a dev tool, not shipped).

    python3 tools/snapshot.py OUTDIR [PATH ...]      # default: every file under fixtures/
    diff -r before/ after/                           # byte-identical outputs show no difference

Per input it writes the analyze JSON, the metrics frame (CSV with its declared dtypes), the events
and the run metadata; an input logpost refuses writes its one-line error instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from logpost.analyze import analyze
from logpost.frame import frame_bytes
from logpost.model import InputError
from logpost.report.render import render_json

ROOT = Path(__file__).resolve().parent.parent


def inputs(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    skip = {"labels.jsonl", "README.md"}
    return sorted(p for p in (ROOT / "fixtures").rglob("*") if p.is_file() and p.name not in skip)


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for path in inputs(argv[1:]):
        rel = os.path.relpath(path, ROOT) if path.is_absolute() else str(path)
        name = rel.replace(os.sep, "__")
        try:
            pm = analyze(str(path))
        except InputError as exc:
            (out / f"{name}.error").write_text(f"{exc}\n")
            continue
        (out / f"{name}.json").write_text(render_json(pm))
        (out / f"{name}.frame.csv").write_bytes(frame_bytes(pm.run.frame, ".csv"))
        (out / f"{name}.events.txt").write_text("".join(f"{e!r}\n" for e in pm.run.events))
        meta = {k: v for k, v in sorted(pm.run.meta.items())}
        (out / f"{name}.meta.txt").write_text(f"{meta!r}\n{pm.run.frameworks!r} {pm.run.lines} {pm.run.step_method}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
