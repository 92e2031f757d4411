"""``LogpostCallback``: logpost inside an HF Trainer (and TRL's trainers, which are Trainers).

```python
from logpost.integrations.transformers import LogpostCallback
trainer = Trainer(..., callbacks=[LogpostCallback(report_dir="postmortem/")])
```

**Pre-flight (on train begin).** The callback reads the first ``preflight_batches`` batches the trainer is about
to train on and counts the tokens whose label is not -100. It reads them through a plain ``DataLoader`` over the
trainer's own dataset, batch sampler and collator (no worker processes), with the random states of Python,
NumPy, torch (CPU and CUDA) and the samplers' generators saved before and restored after: the run then draws
the same batches in the same order as without the callback. None supervised: ZERO_LOSS (variant
``preflight``), the postmortem is written and :class:`~logpost.integrations.LogpostStop` is raised, before the
first optimizer step (``global_step`` 0). Under 1 % supervised: a warning, and the run goes on.

**During training.** Each ``on_log`` dict is put on a queue (tens of microseconds: ``benchmarks/bench_live.py``);
a thread of the callback feeds it to the incremental engine (:class:`logpost.live.Live`) and runs the
catalogue, then rests three times as long as that took (records that came meanwhile are diagnosed together),
so that it takes at most a quarter of the interpreter from the training thread. A finding at or above ``stop_on`` sets ``control.should_training_stop``: the Trainer leaves its loop
at the next step boundary and ends the run the normal way (``on_train_end``, its state, the last log line);
the callback then writes the postmortem and, with ``raise_on_stop`` (default), raises ``LogpostStop`` so that
the script does not go on to save or push the model as if it had trained.

Why the stop flag during training, an exception before it: the Trainer checks its stop flag only after an
optimizer step, so before step 1 only an exception stops it in time (and there is nothing to save yet);
during training the flag lets every rank leave the loop at the same step and the Trainer finish cleanly.

**Several processes.** Only the main process runs the engine, prints and writes the postmortem. The
pre-flight counts are summed over the ranks (``torch.distributed.all_reduce``), so every rank takes the same
decision; during training the main process's stop decision is shared with one ``all_reduce`` of one number at
each ``on_log`` (which every rank calls at the same step), so every rank stops at the same step boundary.
"""

from __future__ import annotations

import contextlib
import queue
import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from transformers import TrainerCallback

from logpost.integrations import LogpostStop
from logpost.live import Live, describe, write_postmortem
from logpost.model import Finding, Severity

PREFLIGHT_BATCHES = 8  # the batches counted before training (the ZERO_LOSS remediation says the same)
THROTTLE = 3.0  # the diagnosis thread rests 3x as long as a diagnosis took: at most 1/4 of the interpreter's time
MAX_REST = 5.0  # seconds: a finding waits at most this long (plus a diagnosis) to be looked for


class LogpostCallback(TrainerCallback):  # type: ignore[misc]
    """Stop a run whose data supervises nothing before its first step, and a run that shows a failure
    (a finding at or above ``stop_on``) at the next step boundary.

    Args:
        report_dir: where the postmortem (``postmortem.md``, ``.html``, ``.json``) is written when training
            ends or is stopped; None: none is written.
        stop_on: the severity that stops the run (``"critical"``, ``"error"``, ...; None: never stop).
        preflight_batches: batches counted on train begin (0: no pre-flight).
        raise_on_stop: raise :class:`~logpost.integrations.LogpostStop` at the end of a run the callback stopped.
        lang: the language of the postmortem (``en``, ``zh``, ``both``).
        out: where findings are printed (default stderr).
    """

    def __init__(self, report_dir: str | None = None, stop_on: str | Severity | None = "critical",
                 preflight_batches: int = PREFLIGHT_BATCHES, raise_on_stop: bool = True, lang: str = "both",
                 out: TextIO | None = None):
        self.report_dir = report_dir
        self.stop_on = Severity.parse(stop_on) if isinstance(stop_on, str) else stop_on
        self.preflight_batches = preflight_batches
        self.raise_on_stop = raise_on_stop
        self.lang = lang
        self.out = out
        self.live: Live | None = None
        self.queue: queue.SimpleQueue[tuple[dict[str, Any], int] | None] = queue.SimpleQueue()
        self.worker: threading.Thread | None = None
        self.stop = threading.Event()
        self.ending = threading.Event()
        self.stopped_by: Finding | None = None
        self.main = True
        self.report: str | None = None

    # ---------------------------------------------------------------- the Trainer's events
    def on_train_begin(self, args: Any, state: Any, control: Any, train_dataloader: Any = None, **kwargs: Any) -> None:
        self.main = bool(state.is_world_process_zero)
        self.live = Live("<trainer>", framework="hf") if self.main else None
        if self.preflight_batches > 0 and train_dataloader is not None:
            counts = count_supervised(train_dataloader, self.preflight_batches)
            if counts is not None:
                supervised, tokens, batches = _all_sum(counts, args.device)
                self._preflight(supervised, tokens, batches)
        if self.live is not None:
            self.worker = threading.Thread(target=self._work, name="logpost", daemon=True)
            self.worker.start()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.worker is not None and logs:
            self.queue.put((dict(logs), int(state.global_step)))
        if _distributed():  # every rank calls on_log at the same step: decide together
            stop = _all_max(int(self.stop.is_set()), args.device)
        else:
            stop = self.stop.is_set()
        if stop:
            control.should_training_stop = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not _distributed() and self.stop.is_set():
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.worker is not None:
            self.ending.set()
            self.queue.put(None)
            self.worker.join()
            self.worker = None
        if self.live is not None:
            pm = self.live.close()
            for f in pm.findings:
                if f.id not in self.live.reported:
                    self._print(f)
            self._write(pm)
        stopped = self.stopped_by if self.main else None
        if _distributed():
            stopped_any = _all_max(int(self.stop.is_set()), args.device)
        else:
            stopped_any = self.stop.is_set()
        if stopped_any and self.raise_on_stop:
            what = f"{stopped.id} ({stopped.title['en']})" if stopped else "a finding"
            raise LogpostStop(f"logpost stopped the run at step {state.global_step}: {what}"
                              + (f"; postmortem in {self.report}" if self.report else ""),
                              (stopped,) if stopped else (), self.report)

    # ---------------------------------------------------------------- inside
    def _preflight(self, supervised: int, tokens: int, batches: int) -> None:
        live = self.live if self.live is not None else Live("<trainer>", framework="hf")  # the same decision
        finding = live.preflight(supervised, tokens, batches)
        if finding is None:
            return
        if self.main:
            live.reported.add(finding.id)
            self._print(finding)
        if self.stop_on is not None and finding.severity >= self.stop_on:
            if self.main:
                self._write(live.postmortem())
            raise LogpostStop(f"logpost stopped the run before its first step: {finding.summary['en']}"
                              + (f" Postmortem: {self.report}" if self.report else ""), (finding,), self.report)

    def _work(self) -> None:
        live = self.live
        assert live is not None
        while True:
            item = self.queue.get()
            if item is None:
                return
            logs, step = item
            try:
                live.feed_metrics(logs, step)
                if not self.queue.empty():
                    continue  # more records waiting: one diagnosis for all of them
                start = time.perf_counter()
                for finding in live.new_findings():
                    self._print(finding)
                    if self.stop_on is not None and finding.severity >= self.stop_on and self.stopped_by is None:
                        self.stopped_by = finding
                        self.stop.set()
                # the diagnosis holds the GIL the training thread also needs: rest THROTTLE times as long as it
                # took (it then takes at most a quarter of the interpreter), sooner when training ends
                self.ending.wait(min(THROTTLE * (time.perf_counter() - start), MAX_REST))
            except Exception as exc:  # noqa: BLE001 - logpost must never break the training it watches
                print(f"logpost: the live diagnosis failed and is off for this run ({exc!r})",
                      file=self.out or sys.stderr, flush=True)
                while self.queue.get() is not None:
                    pass
                return

    def _print(self, finding: Finding) -> None:
        text = describe(finding, self.lang if self.lang in ("en", "zh") else "en")
        print(f"logpost: {text}", file=self.out or sys.stderr, flush=True)

    def _write(self, pm: Any) -> None:
        if self.report_dir and self.main:
            write_postmortem(pm, self.report_dir, self.lang)
            self.report = self.report_dir
            print(f"logpost: postmortem written to {self.report_dir}", file=self.out or sys.stderr, flush=True)


# -------------------------------------------------------------------------------- pre-flight count


def count_supervised(dataloader: Any, batches: int) -> tuple[int, int, int] | None:
    """(tokens with a label other than -100, tokens, batches read) in the first ``batches`` of ``dataloader``
    as the trainer will draw them, without changing its data order or any random state; None when the batches
    carry no ``labels``."""
    import torch
    from torch.utils.data import DataLoader

    base = getattr(dataloader, "base_dataloader", dataloader)  # accelerate's DataLoaderShard wraps a DataLoader
    if getattr(base, "batch_sampler", None) is not None:
        loader = DataLoader(base.dataset, batch_sampler=base.batch_sampler, collate_fn=base.collate_fn)
    else:
        loader = DataLoader(base.dataset, batch_size=getattr(base, "batch_size", None),
                            collate_fn=getattr(base, "collate_fn", None), drop_last=getattr(base, "drop_last", False))
    supervised = tokens = n = 0
    with _random_states_kept(base):
        for batch in loader:
            labels = batch.get("labels") if hasattr(batch, "get") else None
            if labels is None:
                return None
            labels = torch.as_tensor(labels)
            supervised += int((labels != -100).sum())
            mask = batch.get("attention_mask")
            mask = torch.as_tensor(mask) if mask is not None else None
            tokens += int(mask.sum()) if mask is not None and mask.shape == labels.shape else labels.numel()
            n += 1
            if n >= batches:
                break
    return (supervised, tokens, n) if n else None


@contextlib.contextmanager
def _random_states_kept(loader: Any) -> Iterator[None]:
    import numpy as np
    import torch

    gens: list[Any] = []
    for holder in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        for obj in (holder, getattr(holder, "sampler", None), getattr(holder, "batch_sampler", None),
                    getattr(getattr(holder, "batch_sampler", None), "sampler", None)):
            g = getattr(obj, "generator", None)
            if isinstance(g, torch.Generator) and all(g is not h for h in gens):
                gens.append(g)
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    saved = [g.get_state() for g in gens]
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        for g, s in zip(gens, saved, strict=True):
            g.set_state(s)


# -------------------------------------------------------------------------------- several processes


def _distributed() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)


def _all_sum(values: tuple[int, int, int], device: Any) -> tuple[int, int, int]:
    if not _distributed():
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.long, device=device)
    dist.all_reduce(t)
    a, b, c = (int(x) for x in t.tolist())
    return a, b, c


def _all_max(value: int, device: Any) -> bool:
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
