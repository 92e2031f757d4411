"""Ingestion benchmark: MB/s and peak RSS of ``logpost analyze`` next to ``grep -E -c``.

Generates a realistic large log (HF metric dicts glued to tqdm redraws, INFO lines of HF, Axolotl
and DeepSpeed, DeepSpeed step / timer / OVERFLOW lines, NCCL INFO and WARN lines, Python warnings
repeated per rank, and a rank-prefixed CUDA OOM traceback at the end), then runs, in one go:

* ``grep -E -c`` with 10 patterns over the same file (the floor we compare against);
* ``python3 -m logpost analyze FILE -f json`` in a child process.

Each is timed on a warm page cache (the file is read once first), with logpost's bytecode compiled
(as an installed package has it), and its peak RSS is taken from ``wait4``. Figures are printed as a Markdown table, ready for docs/benchmarks.md.

Usage::

    python3 benchmarks/bench_ingest.py                 # 1 GiB log in /tmp
    python3 benchmarks/bench_ingest.py --size-mb 200 --keep /tmp/big.log
    python3 benchmarks/bench_ingest.py --keep /tmp/big.log --reuse --repeat 3   # best of 3 (shared machine)
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time

GREP_PATTERNS = [
    r"Traceback \(most recent call last\)", r"Error", r"WARN", r"OVERFLOW!", r"skipped=",
    r"\{'loss'", r"exitcode", r"Killed", r"out of memory", r"NCCL WARN",
]

BAR = "█▏▎▍▌▋▊▉"


def _bar(step: int, total: int, rng: random.Random) -> str:
    frac = step / total
    done = int(frac * 40)
    return (f"{int(frac * 100):3d}%|{'█' * done}{BAR[rng.randrange(8)] if done < 40 else ''}"
            f"{' ' * (39 - done)}| {step}/{total} [{step // 3600:d}:{step // 60 % 60:02d}:{step % 60:02d}<"
            f"{(total - step) // 3600:d}:{(total - step) // 60 % 60:02d}:{(total - step) % 60:02d}, "
            f"{rng.uniform(0.8, 1.4):.2f}s/it]")


def _ts(sec: int) -> str:
    return f"2024-05-{1 + sec // 86400 % 28:02d} {sec // 3600 % 24:02d}:{sec // 60 % 60:02d}:{sec % 60:02d},{sec * 7 % 1000:03d}"


def generate(path: str, size: int, seed: int = 0) -> dict[str, int]:
    """Write a log of about ``size`` bytes; return what it holds (for checking the parse)."""
    rng = random.Random(seed)
    total = 10 ** 7
    step = 0
    counts = {"dicts": 0, "ds_steps": 0, "overflows": 0}
    scale = 65536
    skipped = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        head = [
            "[2024-05-01 00:00:01,000] [INFO] [real_accelerator.py:203:get_accelerator] Setting ds_accelerator to cuda (auto detect)",
            "[2024-05-01 00:00:02,000] [INFO] [comm.py:637:init_distributed] cdb=None",
            "[2024-05-01 00:00:02,100] [INFO] [logging.py:96:log_dist] [Rank 0] DeepSpeed info: version=0.14.0, git-hash=unknown, git-branch=unknown",
        ]
        for r in range(8):
            for k in range(40):
                head.append(f"gpu-node-{r // 8}:{4000 + r}:{4100 + r} [{r}] NCCL INFO Channel {k:02d}/0 : {r}[{r}] -> "
                            f"{(r + 1) % 8}[{(r + 1) % 8}] via P2P/IPC/read")
        head += [
            "[2024-05-01 00:00:09,000] [INFO] [stage_1_and_2.py:148:__init__] Reduce bucket size 500000000",
            "[2024-05-01 00:00:09,000] [INFO] [logging.py:96:log_dist] [Rank 0] Creating torch.float16 ZeRO stage 2 optimizer",
            "[INFO|trainer.py:2078] 2024-05-01 00:00:10,125 >> ***** Running training *****",
            "[INFO|trainer.py:2079] 2024-05-01 00:00:10,125 >>   Num examples = 80,000,000",
            "[INFO|trainer.py:2080] 2024-05-01 00:00:10,125 >>   Num Epochs = 1",
            "[INFO|trainer.py:2081] 2024-05-01 00:00:10,125 >>   Instantaneous batch size per device = 1",
            "[INFO|trainer.py:2086] 2024-05-01 00:00:10,125 >>   Total optimization steps = 10,000,000",
            "[INFO|trainer.py:2087] 2024-05-01 00:00:10,129 >>   Number of trainable parameters = 20,971,520",
        ]
        fh.write("\n".join(head) + "\n")
        written = fh.tell()
        rank_warn = ("/opt/conda/lib/python3.10/site-packages/torch/utils/checkpoint.py:90: UserWarning: None of the "
                     "inputs have requires_grad=True. Gradients will be None\n  warnings.warn(\n")
        while written < size:
            # training: 10 optimizer steps, one tqdm redraw each (tqdm redraws on update), then the
            # metric dict glued to the last redraw; DeepSpeed prints step/timer lines every 20 steps
            parts = []
            for _ in range(10):
                step += 1
                parts.append("\r" + _bar(step, total, rng))
            sec = step
            chunk = []
            if rng.random() < 0.01 and scale > 1:
                chunk.append(f"[{_ts(sec)}] [INFO] [loss_scaler.py:183:update_scale] [deepspeed] OVERFLOW! Rank 0 "
                             f"Skipping step. Attempted loss scale: {scale}, reducing to {scale // 2}")
                scale //= 2
                skipped += 1
                counts["overflows"] += 1
            loss = 2.0 * (1 + 1 / (1 + step / 1000)) + rng.gauss(0, 0.05)
            lr = 2e-5 * min(1.0, step / 2000)
            chunk.append("".join(parts) + f"{{'loss': {loss:.4f}, 'grad_norm': {rng.uniform(0.2, 2):.16f}, "
                         f"'learning_rate': {lr!r}, 'epoch': {step / total:.2f}}}")
            counts["dicts"] += 1
            if step % 20 == 0:
                chunk.append(f"[{_ts(sec)}] [INFO] [logging.py:96:log_dist] [Rank 0] step={step}, skipped={skipped}, "
                             f"lr=[{lr!r}], mom=[(0.9, 0.999)]")
                counts["ds_steps"] += 1
                chunk.append(f"[{_ts(sec)}] [INFO] [timer.py:260:stop] epoch=0/micro_step={step}/global_step={step}, "
                             f"RunningAvgSamplesPerSec={rng.uniform(10, 12):.15f}, CurrSamplesPerSec="
                             f"{rng.uniform(9, 13):.15f}, MemAllocated=14.2GB, MaxMemAllocated=21.93GB")
            # what else fills a large log, ~20 KB per logging interval: dataset map / eval progress bars
            # redrawn many times on one line, NCCL INFO lines, INFO lines, per-rank warnings
            r = rng.random()
            if r < 0.35:
                n = 100000
                chunk.append("".join(f"\rMap (num_proc=8): {k * 100 // 120:3d}%|{'█' * (k // 6):<20}| "
                                     f"{k * n // 120}/{n} [00:{k // 10:02d}<00:{(120 - k) // 10:02d}, "
                                     f"{rng.uniform(9000, 14000):.2f} examples/s]" for k in range(120)))
            elif r < 0.65:
                node = rng.randrange(4)
                chunk += [f"gpu-node-{node}:{4000 + k % 8}:{4100 + k % 8} [{k % 8}] NCCL INFO Channel {k:02d}/0 : "
                          f"{k % 8}[{k % 8}] -> {(k + 1) % 8}[{(k + 1) % 8}] via P2P/IPC/read" for k in range(200)]
            elif r < 0.85:
                for k in range(60):
                    chunk.append(f"[{_ts(sec)}] [INFO] [axolotl.callbacks.on_step_end:128] [PID:4465] [RANK:{k % 8}] "
                                 f"cuda memory usage while training: 21.937GB (+3.042GB cache, +1.045GB misc)")
                    chunk.append(f"[INFO|trainer.py:3984] {_ts(sec)} >> Saving model checkpoint to "
                                 f"output/checkpoint-{step}/shard-{k}")
            elif r < 0.95:
                chunk.append("".join(f"\r{k * 100 // 250:3d}%|{'█' * (k // 25):<10}| {k}/250 [00:{k // 10:02d}<00:"
                                     f"{(250 - k) // 10:02d}, {rng.uniform(9, 12):.2f}it/s]" for k in range(250)))
                chunk.append(f"{{'eval_loss': {loss + 0.1:.4f}, 'eval_runtime': 24.1, 'eval_samples_per_second': 41.5, "
                             f"'eval_steps_per_second': 10.4, 'epoch': {step / total:.2f}}}")
            else:
                chunk.append(rank_warn * 8 + f"gpu-node-0:{4000 + rng.randrange(8)}:4188 [3] NCCL WARN "
                             f"Cuda failure 'out of memory'")
            chunk.append("")
            text = "\n".join(chunk)
            fh.write(text)
            written += len(text.encode("utf-8"))
        tail = ["[rank3]: Traceback (most recent call last):",
                '[rank3]:   File "/workspace/train.py", line 88, in <module>',
                "[rank3]:     trainer.train()",
                '[rank3]:   File "/opt/conda/lib/python3.10/site-packages/torch/nn/modules/module.py", line 1501, in _call_impl',
                "[rank3]:     return forward_call(*args, **kwargs)",
                "[rank3]: torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 3 has a "
                "total capacity of 79.15 GiB of which 1.59 GiB is free.",
                "[2024-05-02 10:00:00,000] [INFO] [launch.py:315:sigkill_handler] Killing subprocess 4003",
                "[2024-05-02 10:00:01,000] [ERROR] [launch.py:321:sigkill_handler] ['/usr/bin/python3', '-u', "
                "'train.py', '--local_rank=3'] exits with return code = 1", ""]
        fh.write("\n".join(tail))
    counts["steps"] = step
    return counts


def _run(cmd: list[str]) -> tuple[float, float, int, int, bytes]:
    """Wall seconds, CPU seconds (user + system), peak RSS (bytes) and exit code of a child, and its
    stdout. CPU time is the one-core figure when other work shares the machine."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024,
            proc.returncode, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--keep", help="write the generated log here and keep it")
    ap.add_argument("--reuse", action="store_true", help="reuse --keep if it exists")
    ap.add_argument("--repeat", type=int, default=1, help="run each tool N times, report the run with least CPU")
    args = ap.parse_args()
    path = args.keep or os.path.join(tempfile.gettempdir(), f"logpost-bench-{args.size_mb}mb.log")
    if not (args.reuse and os.path.exists(path)):
        t0 = time.perf_counter()
        counts = generate(path, args.size_mb * 1024 * 1024)
        print(f"generated {path} in {time.perf_counter() - t0:.1f}s: {counts}", file=sys.stderr)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:  # warm the page cache so both runs read from memory
        while fh.read(1 << 24):
            pass
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Measure the program, not the compiler: pip compiles a package's bytecode when it installs it, but an
    # editable install under PYTHONDONTWRITEBYTECODE (set on these machines) recompiles every module on every
    # run (~0.2 s). Compile logpost's modules once, where they are imported from.
    spec = importlib.util.find_spec("logpost")
    for where in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(where, quiet=1)
    grep = ["grep", "-a", "-E", "-c", "|".join(GREP_PATTERNS), path]
    ours = [sys.executable, "-m", "logpost", "analyze", path, "-f", "json", "--fail-on", "critical"]
    env_cwd = os.getcwd()
    os.chdir(root)
    try:
        rows = []
        for name, cmd in (("grep -E -c (10 patterns)", grep), ("logpost analyze", ours)):
            secs, cpu, rss, code, out = min((_run(cmd) for _ in range(max(1, args.repeat))), key=lambda r: r[1])
            rows.append((name, secs, cpu, rss / 1e6, code))
            if name == "logpost analyze" and code in (0, 1):
                metrics = json.loads(out)["metrics"]
                print(f"logpost: {metrics['rows']} frame rows, steps {metrics['first_step']}..{metrics['last_step']}",
                      file=sys.stderr)
    finally:
        os.chdir(env_cwd)
    print(f"file: {size / 1e6:.0f} MB, Python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| tool | wall s | CPU s | MB/s (wall) | MB/s (CPU) | peak RSS (MB) | exit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, secs, cpu, rss, code in rows:
        print(f"| {name} | {secs:.2f} | {cpu:.2f} | {size / secs / 1e6:.0f} | {size / max(cpu, 1e-9) / 1e6:.0f} | "
              f"{rss:.0f} | {code} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
