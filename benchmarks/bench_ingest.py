"""Ingestion benchmark: MB/s, records/s and peak RSS of ``logpost analyze`` next to ``grep -E -c``.

Generates two realistic large logs and measures both in one run:

* the *sparse* shape (one metric record per ~9.7 KB): HF metric dicts glued to tqdm redraws every 10
  steps, INFO lines of HF, Axolotl and DeepSpeed, DeepSpeed step / timer / OVERFLOW lines, NCCL INFO and
  WARN lines, Python warnings repeated per rank, and a rank-prefixed CUDA OOM traceback at the end;
* the *dense* shape (one metric record per ~250 B): ``logging_steps: 1`` as real runs print it, each
  metric dict glued to the tqdm redraws before it (``\r<bar>\r<bar>\r<spaces>\r{...}``), in turn
  transformers 4.x bare floats with a DeepSpeed step line per step, transformers 5.x quoted strings, and
  Axolotl's keys (``ppl``, ``memory/max_active (GiB)``, ``tokens/...``); an eval every 2,000 steps.

For each log, one after the other:

* ``grep -E -c`` with 10 patterns over the same file (the floor we compare against);
* ``python3 -m logpost analyze FILE -f json`` in a child process.

Each is timed on a warm page cache (the file is read once first), with logpost's bytecode compiled
(as an installed package has it), and its peak RSS is taken from ``wait4``. Figures are printed as a Markdown table, ready for docs/benchmarks.md.

Usage::

    python3 benchmarks/bench_ingest.py                 # 1 GiB sparse and 400 MB dense log in /tmp
    python3 benchmarks/bench_ingest.py --size-mb 200 --dense-mb 50 --keep /tmp/big.log --keep-dense /tmp/dense.log
    python3 benchmarks/bench_ingest.py --keep /tmp/big.log --keep-dense /tmp/dense.log --reuse --repeat 3
    python3 benchmarks/bench_ingest.py --only dense ...  # one shape
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


def _tqdm(n: int, total: int, sec: int, rng: random.Random) -> str:
    """tqdm's default bar as a file capture shows it: ``  2%|▎         | 1/40 [00:01<00:13,  2.93it/s]``."""
    frac = n / total
    full = int(frac * 10)
    bar = "█" * full + (" ▏▎▍▌▋▊▉"[int(frac * 80) % 8] if full < 10 else "")
    left = (total - n) * 3 // 2
    return (f"{int(frac * 100):3d}%|{bar:<10}| {n}/{total} [{sec // 3600:d}:{sec // 60 % 60:02d}:{sec % 60:02d}<"
            f"{left // 3600:d}:{left // 60 % 60:02d}:{left % 60:02d}, {rng.uniform(1.2, 1.8):.2f}s/it]")


DENSE_SEGMENT = 1000  # steps of one dict format before the next (hf4 + DeepSpeed, hf5 + DeepSpeed, Axolotl)


def generate_dense(path: str, size: int, seed: int = 0) -> dict[str, int]:
    """Write a ``logging_steps: 1`` log of about ``size`` bytes (one metric record per ~250 B); return what
    it holds. Per step, as the bytes reach a file when stdout and stderr are captured together: tqdm redraws
    the bar (``\r``), DeepSpeed's logger writes its step line right after the bar (no newline between them),
    and ``tqdm.write`` clears the bar with spaces and prints the metric dict."""
    rng = random.Random(seed)
    total = 2_000_000
    counts = {"dicts": 0, "ds_steps": 0, "evals": 0}
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("\n".join([
            "[2024-05-01 00:00:02,100] [INFO] [logging.py:96:log_dist] [Rank 0] DeepSpeed info: version=0.14.0, "
            "git-hash=unknown, git-branch=unknown",
            "[2024-05-01 00:00:09,000] [INFO] [logging.py:96:log_dist] [Rank 0] Creating torch.bfloat16 ZeRO stage 2 "
            "optimizer",
            "[INFO|trainer.py:2078] 2024-05-01 00:00:10,125 >> ***** Running training *****",
            "[INFO|trainer.py:2079] 2024-05-01 00:00:10,125 >>   Num examples = 16,000,000",
            "[INFO|trainer.py:2080] 2024-05-01 00:00:10,125 >>   Num Epochs = 1",
            "[INFO|trainer.py:2081] 2024-05-01 00:00:10,125 >>   Instantaneous batch size per device = 1",
            f"[INFO|trainer.py:2086] 2024-05-01 00:00:10,125 >>   Total optimization steps = {total:,}",
            "[INFO|trainer.py:2087] 2024-05-01 00:00:10,129 >>   Number of trainable parameters = 20,971,520",
            "",
        ]))
        written = fh.tell()
        step = 0
        sec = 10
        prev = _tqdm(0, total, 0, rng)
        out: list[str] = []
        while written < size and step < total:
            step += 1
            sec += 1 + step % 2
            bar = _tqdm(step, total, sec, rng)
            seg = step // DENSE_SEGMENT % 3
            loss = 2.0 * (1 + 1 / (1 + step / 1000)) + rng.gauss(0, 0.05)
            lr = 2e-5 * min(1.0, step / 2000) * (1 - step / total)
            epoch = step / total
            gnorm = rng.uniform(0.2, 2)
            if seg < 2:  # a DeepSpeed run: its step line glued to the bar it interrupts
                out.append(f"\r{prev}[{_ts(sec)}] [INFO] [logging.py:96:log_dist] [Rank 0] step={step}, skipped=0, "
                           f"lr=[{lr!r}], mom=[(0.9, 0.999)]\n")
                counts["ds_steps"] += 1
                prev = ""
            if seg == 0:  # transformers 4.x: bare floats
                rec = f"{{'loss': {loss:.4f}, 'grad_norm': {gnorm!r}, 'learning_rate': {lr!r}, 'epoch': {epoch:.2f}}}"
            elif seg == 1:  # transformers 5.x: every float a quoted .4g string
                rec = f"{{'loss': '{loss:.4g}', 'grad_norm': '{gnorm:.4g}', 'learning_rate': '{lr:.4g}', 'epoch': '{epoch:.4g}'}}"
            else:  # Axolotl's keys (transformers 5)
                rec = (f"{{'loss': '{loss:.4g}', 'grad_norm': '{gnorm:.4g}', 'learning_rate': '{lr:.4g}', "
                       f"'ppl': '{2.718281828 ** loss:.4g}', 'memory/max_active (GiB)': '21.94', "
                       f"'memory/max_allocated (GiB)': '21.94', 'memory/device_reserved (GiB)': '25.03', "
                       f"'tokens/train_per_sec_per_gpu': '{rng.uniform(2000, 3000):.4g}', 'tokens/trainable': "
                       f"{rng.randrange(1000, 4000)}, 'tokens/total': 4096, 'epoch': '{epoch:.4g}'}}")
            out.append(("\r" + prev if prev else "") + f"\r{bar}\r{' ' * len(bar)}\r{rec}\n")
            counts["dicts"] += 1
            prev = bar
            if step % 2000 == 0:  # an eval: its own bar (leave=False), then the eval dict
                out.append("".join(f"\r{k * 5:3d}%|{'█' * (k // 2):<10}| {k}/20 [00:{k:02d}<00:{20 - k:02d}, "
                                   f"{rng.uniform(9, 12):.2f}it/s]" for k in range(21))
                           + f"\r{' ' * 50}\r{{'eval_loss': {loss + 0.1:.4f}, 'eval_runtime': 24.1, "
                           f"'eval_samples_per_second': 41.5, 'eval_steps_per_second': 10.4, 'epoch': {epoch:.2f}}}\n")
                counts["evals"] += 1
            if len(out) >= 4096:
                text = "".join(out)
                fh.write(text)
                written += len(text.encode("utf-8"))
                out.clear()
        fh.write("".join(out) + "\n")
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


SHAPES = {"sparse": generate, "dense": generate_dense}
RSS_BASE, RSS_PER_RECORD = 250e6, 64  # the memory target: 250 MB + 64 B per metric record (frame row)


def _measure(shape: str, path: str, repeat: int) -> list[tuple[str, float, float, float, int | None, int]]:
    """grep and logpost on one log: (tool, wall s, CPU s, peak RSS MB, frame rows, exit) each."""
    grep = ["grep", "-a", "-E", "-c", "|".join(GREP_PATTERNS), path]
    ours = [sys.executable, "-m", "logpost", "analyze", path, "-f", "json", "--fail-on", "critical"]
    rows = []
    for name, cmd in ((f"grep -E -c (10 patterns), {shape}", grep), (f"logpost analyze, {shape}", ours)):
        secs, cpu, rss, code, out = min((_run(cmd) for _ in range(max(1, repeat))), key=lambda r: r[1])
        records = None
        if cmd is ours and code in (0, 1):
            metrics = json.loads(out)["metrics"]
            records = int(metrics["rows"])
            print(f"logpost, {shape}: {records} frame rows, steps {metrics['first_step']}..{metrics['last_step']}",
                  file=sys.stderr)
        rows.append((name, secs, cpu, rss / 1e6, records, code))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="size of the sparse log (MiB)")
    ap.add_argument("--dense-mb", type=int, default=400, help="size of the dense log (MiB)")
    ap.add_argument("--keep", help="write the generated sparse log here and keep it")
    ap.add_argument("--keep-dense", help="write the generated dense log here and keep it")
    ap.add_argument("--reuse", action="store_true", help="reuse --keep / --keep-dense if they exist")
    ap.add_argument("--only", choices=tuple(SHAPES), help="measure one shape")
    ap.add_argument("--repeat", type=int, default=1, help="run each tool N times, report the run with least CPU")
    args = ap.parse_args()
    tmp = tempfile.gettempdir()
    paths = {"sparse": args.keep or os.path.join(tmp, f"logpost-bench-{args.size_mb}mb.log"),
             "dense": args.keep_dense or os.path.join(tmp, f"logpost-bench-dense-{args.dense_mb}mb.log")}
    sizes = {"sparse": args.size_mb, "dense": args.dense_mb}
    shapes = [args.only] if args.only else list(SHAPES)
    for shape in shapes:
        path = paths[shape]
        if not (args.reuse and os.path.exists(path)):
            t0 = time.perf_counter()
            counts = SHAPES[shape](path, sizes[shape] * 1024 * 1024)
            print(f"generated {path} in {time.perf_counter() - t0:.1f}s: {counts}", file=sys.stderr)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Measure the program, not the compiler: pip compiles a package's bytecode when it installs it, but an
    # editable install under PYTHONDONTWRITEBYTECODE (set on these machines) recompiles every module on every
    # run (~0.2 s). Compile logpost's modules once, where they are imported from.
    spec = importlib.util.find_spec("logpost")
    for where in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(where, quiet=1)
    env_cwd = os.getcwd()
    os.chdir(root)
    table = []
    try:
        for shape in shapes:
            path = paths[shape]
            with open(path, "rb") as fh:  # warm the page cache so both runs read from memory
                while fh.read(1 << 24):
                    pass
            table += [(shape, os.path.getsize(path), row) for row in _measure(shape, path, args.repeat)]
    finally:
        os.chdir(env_cwd)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}; "
          + ", ".join(f"{shape} log {os.path.getsize(paths[shape]) / 1e6:.0f} MB" for shape in shapes))
    print("| tool | wall s | CPU s | MB/s (CPU) | records | records/s (CPU) | peak RSS (MB) | RSS target (MB) | exit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for _, size, (name, secs, cpu, rss, records, code) in table:
        cpu = max(cpu, 1e-9)
        per_s = f"{records / cpu:,.0f}" if records is not None else ""
        budget = f"{(RSS_BASE + RSS_PER_RECORD * records) / 1e6:.0f}" if records is not None else ""
        print(f"| {name} | {secs:.2f} | {cpu:.2f} | {size / cpu / 1e6:.0f} | {records if records is not None else ''} | "
              f"{per_s} | {rss:.0f} | {budget} | {code} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
