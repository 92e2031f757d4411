"""Benchmark: the HTML/PDF postmortem of a 60,000-step run, timed apart from parsing.

Builds a realistic HF Trainer (transformers 5.x) console log: the ``***** Running training *****``
header, a tqdm redraw and a metric dict per step (logging_steps=1), an eval dict every 2,000 steps,
and a fp16-style blow-up (grad_norm nan, then loss nan) from step 41,000, so the report has
findings, evidence, charts with marks and an appendix to re-read. Prints the figures; not a test.

    python3 benchmarks/bench_report.py [--steps 60000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_log(path: str, steps: int, blowup: int) -> None:
    rnd = random.Random(0)
    per_epoch = steps // 3
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[transformers] ***** Running training *****\n"
                 "[transformers]   Num examples = 480,000\n[transformers]   Num Epochs = 3\n"
                 f"[transformers]   Num update steps per epoch = {per_epoch}\n"
                 "[transformers]   Instantaneous batch size per device = 8\n"
                 "[transformers]   Total train batch size (w. parallel, distributed & accumulation) = 8\n"
                 "[transformers]   Gradient Accumulation steps = 1\n"
                 f"[transformers]   Total optimization steps = {steps}\n"
                 "[transformers]   Number of trainable parameters = 41,943,040\n\n")
        warm = steps // 50
        for s in range(1, steps + 1):
            lr = 2e-5 * (s / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm))))
            loss = 2.2 * math.exp(-s / (steps / 4)) + 0.9 + rnd.gauss(0, 0.05)
            grad = 1.2 + rnd.gauss(0, 0.2) + (30 if rnd.random() < 0.001 else 0)
            epoch = s / per_epoch
            pct = s * 100 // steps
            fh.write(f"\r{pct:3d}%|#         | {s}/{steps} [01:00<10:00,  4.10it/s]\n")
            if s >= blowup + 40:
                rec = f"{{'loss': 'nan', 'grad_norm': 'nan', 'learning_rate': '{lr:.4g}', 'epoch': '{epoch:.5g}'}}"
            elif s >= blowup:
                rec = f"{{'loss': '{loss:.4g}', 'grad_norm': 'nan', 'learning_rate': '{lr:.4g}', 'epoch': '{epoch:.5g}'}}"
            else:
                rec = (f"{{'loss': '{loss:.4g}', 'grad_norm': '{grad:.4g}', 'learning_rate': '{lr:.4g}', "
                       f"'epoch': '{epoch:.5g}'}}")
            fh.write(rec + "\n")
            if s % 2000 == 0:
                ev = "nan" if s >= blowup else f"{loss + 0.08:.4g}"
                fh.write(f"{{'eval_loss': '{ev}', 'eval_runtime': '12.5', 'eval_samples_per_second': '80', "
                         f"'eval_steps_per_second': '10', 'epoch': '{epoch:.5g}'}}\n")
        fh.write("Training completed. Do not forget to share your model on huggingface.co/models =)\n")


def timed(fn, repeat: int) -> tuple[float, float, float, object]:  # type: ignore[no-untyped-def]
    """Wall time of the first call, then the best wall and CPU time of the others.

    CPU time is printed too because a shared machine inflates wall time.
    """
    first = time.perf_counter()
    out = fn()
    cold = time.perf_counter() - first
    best, best_cpu = cold, math.inf
    for _ in range(max(1, repeat - 1)):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return cold, best, best_cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="write the log and the reports into this folder")
    args = ap.parse_args()

    from logpost.analyze import analyze
    from logpost.report.render import render_html, render_markdown, render_pdf

    folder = args.keep or tempfile.mkdtemp(prefix="logpost-bench-")
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, f"hf_{args.steps}_steps.log")
    build_log(log, args.steps, blowup=int(args.steps * 0.68))
    size = os.path.getsize(log)

    t, c = time.perf_counter(), time.process_time()
    pm = analyze(log)
    parse, parse_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"log: {args.steps:,} steps, {size / 1e6:.1f} MB, {pm.run.lines:,} lines, {len(pm.run.frame):,} records")
    print(f"analyze (parse + signatures): {parse:.2f} s wall, {parse_cpu:.2f} s CPU; "
          f"findings: {[f.id for f in pm.findings]}")

    for name, fn in (("markdown", lambda: render_markdown(pm, "both")),
                     ("html", lambda: render_html(pm, "both")),
                     ("pdf zh", lambda: render_pdf(pm, "zh")),
                     ("pdf both", lambda: render_pdf(pm, "both"))):
        cold, best, cpu, out = timed(fn, args.repeat)
        size_out = len(out.encode() if isinstance(out, str) else out)  # type: ignore[union-attr]
        print(f"{name:<9} first call {cold:.2f} s (imports, font registration), then best of "
              f"{max(1, args.repeat - 1)}: {best:.2f} s wall, {cpu:.2f} s CPU, {size_out / 1e3:.0f} kB")
        if args.keep:
            ext = {"markdown": "md", "html": "html"}.get(name, "pdf")
            mode = "wb" if isinstance(out, bytes) else "w"
            with open(os.path.join(folder, f"report.{name.replace(' ', '_')}.{ext}"), mode) as fh:
                fh.write(out)  # type: ignore[arg-type]
    print(f"files in {folder}" if args.keep else "")


if __name__ == "__main__":
    main()
