"""MMEngine's training log, as XTuner (InternLM's fine-tuning toolkit) prints it::

    01/29 21:36:02 - mmengine - INFO - Iter(train) [ 20/720]  lr: 1.9000e-04  eta: 0:32:01  time: 2.8037  data_time: 0.0071  memory: 13969  loss: 2.6049  grad_norm: 0.9361
    10/30 22:19:57 - mmengine - INFO - Epoch(train) [1][240/735]  lr: 1.9813e-04  ...  loss: 2.5128  grad_norm: nan

``Iter(train) [i/N]`` is step i of N; ``Epoch(train) [e][i/n]`` is iteration i of the n in epoch e (step
(e-1)*n + i). Pairs are ``key: value`` separated by two spaces; ``lr`` is the learning rate, ``time``
the seconds per iteration, ``memory`` MB. ``(val)`` lines with a loss become eval rows.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from logpost.frame import to_number
from logpost.model import Line
from logpost.parsers.base import Builder, LineParser
from logpost.parsers.hf import metric_values

_HEAD = re.compile(r"\b(Iter|Epoch)\((train|val)\)\s*(?:\[\s*(\d+)\s*\])?\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]\s*(.*)$")
_PAIR = re.compile(r"([A-Za-z_][\w./]*):\s+([-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf))(?=\s|$)")
_KEYS = {"time": "iteration_time_s"}  # seconds per iteration, as Megatron's column


class MMEngineParser(LineParser):
    markers = ("Iter(train)", "Epoch(train)", "Iter(val)", "Epoch(val)")

    def feed(self, line: Line, out: Builder) -> None:
        if "(train)" not in line.text and "(val)" not in line.text or out.is_claimed(line):
            return
        m = _HEAD.search(line.text)
        if not m:
            return
        unit, phase, epoch, i, n = m.group(1), m.group(2), m.group(3), int(m.group(4)), int(m.group(5))
        pairs: dict[str, Any] = {sys.intern(_KEYS.get(k, k)): to_number(v) for k, v in _PAIR.findall(m.group(6))}
        if "loss" not in pairs:
            return
        out.saw("xtuner" if "xtuner" in line.text else "mmengine")
        if unit == "Iter":
            step = i
            out.meta.setdefault("header", {}).setdefault("total_steps", n)
        else:
            e = int(epoch) if epoch else 1
            step = (e - 1) * n + i
            pairs.setdefault("epoch", (e - 1) + i / n if n else float(e - 1))
        if phase == "val":
            pairs["eval_loss"] = pairs.pop("loss")
            out.record("eval", metric_values(pairs), line, step=step, step_source="logged")
            return
        out.record("train", metric_values(pairs), line, step=step, step_source="logged")
