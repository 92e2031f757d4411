"""Benchmark: what the three live ways in cost. Prints the figures; not a test.

1. The trainer callback: the time of one ``on_log`` call on the training thread (the dict is queued; the
   diagnosis runs in the callback's thread), over ``--records`` realistic metric dicts, and how long the
   callback's thread takes to diagnose a run of that size.
2. The live engine: one diagnosis (snapshot + catalogue) of runs of 100 to 10,000 logged records, what
   ``watch`` and the callback spend each time new lines come.
3. ``logpost watch`` (a process of its own, as a user runs it) on a real log appended line by line: the time
   from the third zero-loss record to its exit with ``--exit-on critical``, and from the last line of a healthy
   log to its exit.

    python3 benchmarks/bench_live.py [--records 5000] [--repeat 3] [--skip-callback]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from types import SimpleNamespace
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ZERO = os.path.join(ROOT, "fixtures/corpus/generated/hf_all_labels_masked_b.log")
HEALTHY = os.path.join(ROOT, "fixtures/corpus/generated/hf_healthy.log")


def records(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(0)
    out = []
    for s in range(1, n + 1):
        lr = 2e-5 * min(1.0, s / 100) * 0.5 * (1 + math.cos(math.pi * s / n))
        out.append({"loss": 2.2 * math.exp(-s / (n / 4)) + 0.9 + rnd.gauss(0, 0.05),
                    "grad_norm": 1.2 + rnd.gauss(0, 0.2), "learning_rate": lr, "epoch": s / n})
    return out


def bench_callback(n: int) -> None:
    from logpost.integrations.transformers import LogpostCallback

    cb = LogpostCallback(report_dir=None, preflight_batches=0, out=open(os.devnull, "w"))  # noqa: SIM115
    args = SimpleNamespace(device="cpu")
    state = SimpleNamespace(is_world_process_zero=True, global_step=0)
    control = SimpleNamespace(should_training_stop=False)
    cb.on_train_begin(args, state, control)
    times = []
    start = time.perf_counter()
    for s, logs in enumerate(records(n), start=1):
        state.global_step = s
        t = time.perf_counter_ns()
        cb.on_log(args, state, control, logs=logs)
        cb.on_step_end(args, state, control)
        times.append((time.perf_counter_ns() - t) / 1e3)
        time.sleep(0.0005)  # a (very fast) training step between two log calls
    fed = time.perf_counter() - start
    t = time.perf_counter()
    cb.on_train_end(args, state, control)
    drain = time.perf_counter() - t
    times.sort()
    print(f"callback: {n} on_log calls (+ on_step_end) on the training thread: mean {statistics.mean(times):.1f} us, "
          f"median {times[len(times) // 2]:.1f} us, p99 {times[int(len(times) * 0.99)]:.1f} us, max {times[-1]:.0f} us")
    print(f"callback: its thread diagnosed while the {n} calls came ({fed:.1f} s), and {drain:.2f} s more at "
          "train end (the last diagnosis, the final postmortem)")


def bench_engine(sizes: list[int], repeat: int) -> None:
    from logpost.live import Live

    for n in sizes:
        live = Live("<bench>", framework="hf")
        for s, logs in enumerate(records(n), start=1):
            live.feed_metrics(logs, s)
        best = min(_timed(live.postmortem) for _ in range(repeat))
        live.close()
        print(f"engine: one diagnosis of a run of {n:,} records: {best * 1e3:.0f} ms (best of {repeat})")


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _watch_once(source: str, args: list[str], pause: float) -> tuple[float, int, str]:
    """Seconds from the mark (third zero record, or the last line) to the watch process's exit."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-m", "logpost", "watch", "train.log", *args], cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        proc.stderr.readline()  # "waiting for train.log to appear": it is up
        mark: dict[str, float] = {}

        def write() -> None:
            zeros = 0
            with open(os.path.join(tmp, "train.log"), "ab") as fh:
                for line in open(source, "rb").read().splitlines(keepends=True):
                    if proc.poll() is not None:
                        return
                    fh.write(line)
                    fh.flush()
                    if b"{'loss': '0'," in line:
                        zeros += 1
                        if zeros == 3:
                            mark["t"] = time.monotonic()
                    time.sleep(pause)
            mark.setdefault("t", time.monotonic())

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        code = proc.wait(timeout=120)
        exited = time.monotonic()
        writer.join()
        return exited - mark["t"], code, proc.stderr.read()


def bench_watch(repeat: int) -> None:
    zero = [_watch_once(ZERO, ["--exit-on", "critical"], 0.2) for _ in range(repeat)]
    print("watch: exit 1 after the third zero-loss record (lines every 0.2 s): "
          + ", ".join(f"{t:.2f} s" for t, _, _ in zero) + f" (codes {sorted({c for _, c, _ in zero})})")
    healthy = [_watch_once(HEALTHY, [], 0.01) for _ in range(repeat)]
    print("watch: exit by itself after a healthy log's last line: "
          + ", ".join(f"{t:.2f} s" for t, _, _ in healthy) + f" (codes {sorted({c for _, c, _ in healthy})})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-callback", action="store_true", help="no transformers installed")
    a = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if not a.skip_callback:
        bench_callback(a.records)
    bench_engine([100, 1000, 10000], a.repeat)
    bench_watch(a.repeat)


if __name__ == "__main__":
    main()
