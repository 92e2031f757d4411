"""Benchmark `logpost scan` over a generated history of 1,000 runs built from the real corpus.

The tree (under /tmp, rebuilt each time) mixes what a cluster keeps: Slurm folders of single-file
captures (some gzipped), run folders with a console capture (and sometimes Axolotl's debug.log),
Hugging Face output_dirs with trainer_state.json and checkpoints, LLaMA-Factory folders with
trainer_log.jsonl. File modification times are spread over 18 months.

Measured end to end through the CLI (a fresh process each time, as a user runs it):
full scan with --jobs 1, full scan with --jobs 2 (fresh catalogs), and a re-scan of the unchanged tree.
Prints the figures; it is not a timed test. Usage: python3 benchmarks/bench_scan.py [--runs N] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fixtures" / "corpus"
START = 1_748_736_000  # 2025-06-01 UTC
SPAN = 540 * 86_400  # 18 months


def corpus_files() -> dict[str, list[Path]]:
    files = [p for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.name != "labels.jsonl"]
    return {
        "capture": [p for p in files if not p.name.endswith((".json", ".jsonl"))],
        "state": [p for p in files if p.name.endswith("trainer_state.json")],
        "jsonl": [p for p in files if p.name.endswith(".jsonl")],
    }


def put(src: Path, dst: Path, gz: bool = False) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with open(src, "rb") as fi, gzip.GzipFile(dst.with_name(dst.name + ".gz"), "wb", mtime=0) as fo:
            fo.write(fi.read())
    else:
        shutil.copyfile(src, dst)


def build_tree(top: Path, runs: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    src = corpus_files()
    tree = top / "runs"
    slurm_folder, in_folder = 0, 0
    for i in range(runs):
        kind = rng.choices(["slurm", "capture", "hf", "llamafactory"], weights=[40, 35, 15, 10])[0]
        team = tree / f"team-{i % 7}"
        if kind == "slurm":
            if in_folder == 0:
                slurm_folder += 1
            in_folder = (in_folder + 1) % 20
            put(rng.choice(src["capture"]), tree / "slurm" / f"logs-{slurm_folder:03d}" / f"slurm-{100000 + i}.out",
                gz=rng.random() < 0.2)
        elif kind == "capture":
            run = team / f"run-{i:04d}"
            put(rng.choice(src["capture"]), run / "train.log", gz=rng.random() < 0.15)
            if rng.random() < 0.3:
                put(rng.choice(src["capture"]), run / "debug.log")
            (run / "config.yaml").write_text(f"base_model: model-{i % 5}\n")
        elif kind == "hf":
            run = team / f"hf-{i:04d}"
            state = rng.choice(src["state"])
            put(state, run / "trainer_state.json")
            for step in (100, 200):
                put(state, run / f"checkpoint-{step}" / "trainer_state.json")
            capture = Path(str(state).replace(".trainer_state.json", ".log"))
            if capture.is_file():  # the console log of the same generated run
                put(capture, run / "stdout.log")
        else:
            run = team / f"lf-{i:04d}"
            put(rng.choice(src["jsonl"]), run / "trainer_log.jsonl")
            put(CORPUS / "full" / "aa-n__Qwen3_Lora__running_log.txt", run / "running_log.txt")
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            t = START + rng.randrange(SPAN)
            os.utime(path, (t, t))
    return tree


def cli(*args: str) -> tuple[float, str]:
    """Run one `logpost scan` process; return its wall time and stdout."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "logpost", "scan", *args], cwd=ROOT, capture_output=True,
                          text=True)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"logpost scan failed ({proc.returncode}): {proc.stderr}")
    return took, proc.stdout


def analysis_seconds(db: Path) -> tuple[float, int]:
    """Sum of the per-run analysis times the workers recorded in the catalog, and the run count."""
    with sqlite3.connect(db) as con:
        total, n = con.execute("SELECT sum(seconds), count(*) FROM runs").fetchone()
    return float(total or 0), int(n)


def _spin(n: int) -> float:
    start = time.perf_counter()
    s = 0
    for i in range(n):
        s += i * i
    return time.perf_counter() - start


def machine_scaling(n: int = 20_000_000) -> float:
    """How much faster two processes finish two equal pure-Python loops than one process finishes
    one after the other: 2.0 on two idle cores; less when the cores are shared or are SMT siblings."""
    from concurrent.futures import ProcessPoolExecutor

    one = _spin(n) * 2
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_spin, [1000, 1000]))  # start the workers first
        start = time.perf_counter()
        list(pool.map(_spin, [n, n]))
        two = time.perf_counter() - start
    return one / two


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--keep", action="store_true", help="keep the generated tree and catalogs")
    ap.add_argument("--repeat", type=int, default=1, help="alternate the full scans N times, keep the best")
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="logpost-bench-scan-"))
    try:
        t0 = time.perf_counter()
        tree = build_tree(top, args.runs)
        files = sum(1 for p in tree.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        print(f"tree: {tree} ({files} files, {size / 1e6:.1f} MB, built in {time.perf_counter() - t0:.1f} s)")
        print(f"cores available: {len(os.sched_getaffinity(0))}")
        print(f"load average before: {load()}; this machine runs two CPU-bound processes"
              f" {machine_scaling():.2f}x faster than one (2.00x on two idle cores)")
        j1 = j2 = float("inf")
        w1 = w2 = 0.0
        n = 1
        for _ in range(args.repeat):  # alternate, so a busy spell on a shared machine hits both
            for db in ("j1.sqlite", "j2.sqlite"):
                for suffix in ("", "-wal", "-shm"):
                    (top / (db + suffix)).unlink(missing_ok=True)
            t, out = cli(str(tree), "--db", str(top / "j1.sqlite"), "-j", "1", "-f", "json")
            if t < j1:
                j1, (w1, n) = t, analysis_seconds(top / "j1.sqlite")
            rows = json.loads(out)
            t, out2 = cli(str(tree), "--db", str(top / "j2.sqlite"), "-j", "2", "-f", "json")
            if t < j2:
                j2, (w2, _) = t, analysis_seconds(top / "j2.sqlite")
            assert json.loads(out2) == rows, "--jobs 1 and --jobs 2 disagree"
        re2, out3 = cli(str(tree), "--db", str(top / "j2.sqlite"), "-j", "2", "-f", "json")
        assert json.loads(out3) == rows, "the re-scan disagrees with the scan"
        q, _ = cli("--db", str(top / "j2.sqlite"), "--signature", "ZERO_LOSS", "-f", "csv")
        verdicts: dict[str, int] = {}
        for r in rows:
            key = r["verdict"] if r["status"] == "ok" else "error"
            verdicts[key] = verdicts.get(key, 0) + 1
        print(f"runs found: {len(rows)}  verdicts: {json.dumps(verdicts, sort_keys=True)}")
        print(f"full scan --jobs 1:        {j1:6.2f} s  ({len(rows) / j1:.0f} runs/s)")
        print(f"full scan --jobs 2:        {j2:6.2f} s  ({len(rows) / j2:.0f} runs/s)  speed-up {j1 / j2:.2f}x"
              f"  [target >= 1.7x: {'ok' if j1 / j2 >= 1.7 else 'MISSED'}]")
        # The same runs were analysed twice: if a run takes longer inside a --jobs 2 worker than in
        # the --jobs 1 process, the two workers did not have two cores to themselves (a shared machine).
        print(f"  mean analysis time per run (best attempts): --jobs 1 {1000 * w1 / n:.1f} ms, --jobs 2 {1000 * w2 / n:.1f} ms;"
              f" workers busy {w2 / j2:.2f} of 2 (load average now {load()})")
        print(f"  speed-up if the two workers had run at --jobs 1 pace: {j1 / (j2 - (w2 - w1) / 2):.2f}x")
        print(f"re-scan, unchanged tree:   {re2:6.2f} s  [target <= 2 s: {'ok' if re2 <= 2 else 'MISSED'}]")
        print(f"query --signature (no scan): {q:4.2f} s")
        print("(each figure is one `python3 -m logpost scan ...` process, start-up and imports included)")
    finally:
        if args.keep:
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
