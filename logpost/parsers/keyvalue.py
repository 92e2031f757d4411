"""Metric lines in formats nobody wrote a parser for: ``key: value``, ``key=value`` and ``key:value`` pairs.

Many trainers print one line of pairs per logging step, with whatever separators (``" - "``, ``" | "``,
commas, spaces), for example::

    (main_task pid=2741) step:3 - train/loss:nan - train/grad_norm:0.0 - train/lr:1e-06        (verl)
    Epoch 1 | Step 120/2000 | loss: 1.8342 | lr: 2.0e-05 | grad_norm: 0.913                  (custom loop)
    iter 300: loss 2.41, time 81.2ms, mfu 12.3%                                                (nanoGPT)

This reader knows no format: it recognises loss, grad norm, learning rate, step and epoch by their names,
with their common aliases (``gnorm``, ``lr``, ``global_step``, ``iter`` ...) and namespaces (``train/``,
``actor/``, ``training/``; ``eval/``, ``val/`` make an eval loss), and takes a line as a train record when
it holds a loss and a step, or a loss and a grad norm or learning rate. Lines another parser made a record
or an event of are left alone; it runs after the framework parsers.
"""

from __future__ import annotations

import math
import re
from typing import Any

from logpost.frame import to_number
from logpost.model import Line
from logpost.parsers.base import Builder, LineParser

_NUM = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|nan|NaN|inf|Inf|-inf)"
# a key (words joined by _ . / -, up to three words with single spaces) and its value after ":" or "="
_PAIR = re.compile(r"(?<![\w./-])([A-Za-z][\w./-]*(?: [A-Za-z][\w./-]*){0,3})\s?[:=]\s*(" + _NUM +
                   r")(?:%|ms|s\b)?(?=$|[\s,;|)\]}])")
# nanoGPT's "iter 300: loss 2.41" and "step 120/2000": a step without a separator, or with its total
_STEP = re.compile(r"(?<![\w/])(?:global[_ ]step|step|iter(?:ation)?|it)\s*[:=]?\s*(\d+)(?:\s*/\s*(\d+))?\b", re.I)
_BARE_LOSS = re.compile(r"(?<![\w/])loss\s+(" + _NUM + r")(?=$|[\s,;|])")

LOSS = frozenset({"loss", "train_loss", "training_loss", "lm_loss", "lm loss", "total_loss", "avg_loss", "loss_avg",
                  "mean_loss", "tr_loss", "pg_loss", "policy_loss", "sft_loss"})
GRAD = frozenset({"grad_norm", "grad norm", "gnorm", "grad_norm_total", "gradient_norm", "grad-norm", "total_norm",
                  "global_grad_norm", "grad_l2_norm", "norm"})
LR = frozenset({"lr", "learning_rate", "learning rate", "learning-rate", "lr_0", "lr-0"})
STEP = frozenset({"step", "global_step", "global step", "iter", "iteration", "it", "steps", "train_step"})
EPOCH = frozenset({"epoch", "ep"})
TRAIN_NS = frozenset({"train", "training", "trainer", "actor", "optim", "optimizer", "metrics", "policy", "model"})
EVAL_NS = frozenset({"eval", "val", "valid", "validation", "test", "dev"})
EVAL_LOSS = frozenset({"eval_loss", "val_loss", "valid_loss", "validation_loss", "validation loss", "test_loss",
                       "dev_loss", "val loss", "eval loss"})
_MARK = ("loss", "Loss")


def _name(key: str) -> tuple[str, bool]:
    """``train/grad_norm`` -> (``grad_norm``, False); ``val/loss`` -> (``loss``, True): a key's name without
    its namespace, and whether the namespace is an evaluation one. A namespace neither train nor eval
    (``critic/loss``, ``reward/mean``) keeps the whole key, so it names no known column."""
    key = key.strip().lower()
    if "/" in key:
        ns, _, name = key.rpartition("/")
        ns = ns.split("/")[-1]
        if ns in EVAL_NS:
            return name, True
        if ns in TRAIN_NS:
            return name, False
        return key, False
    return key, False


def read_pairs(text: str) -> tuple[dict[str, Any], int | None, str] | None:
    """A metric line's values by column (``loss``, ``grad_norm``, ``learning_rate``, ``epoch``,
    ``eval_loss``), its step and the record kind; None when the line is not one."""
    values: dict[str, Any] = {}
    step: int | None = None
    total: int | None = None
    for key, raw in _PAIR.findall(text):
        name, is_eval = _name(key)
        v = to_number(raw)
        if not isinstance(v, int | float):
            continue
        if name in STEP and step is None:
            if not (math.isfinite(v) and v == int(v) and 0 <= v < 1e12):
                return None  # a step that is no step (3.5, inf, 1e300): not a metric line we can place
            step = int(v)
        elif is_eval and name in LOSS | {"loss"} or name in EVAL_LOSS:
            values.setdefault("eval_loss", float(v))
        elif name in LOSS:
            values.setdefault("loss", float(v))
        elif name in GRAD:
            values.setdefault("grad_norm", float(v))
        elif name in LR:
            values.setdefault("learning_rate", float(v))
        elif name in EPOCH:
            values.setdefault("epoch", float(v))
    if "loss" not in values and "eval_loss" not in values:
        m = _BARE_LOSS.search(text)
        v = to_number(m.group(1)) if m else None
        if isinstance(v, int | float):
            values["loss"] = float(v)
    if step is None:
        m = _STEP.search(text)
        if m:
            step = int(m.group(1))
            total = int(m.group(2)) if m.group(2) else None
    if "loss" in values:
        # a loss alone is any number called loss: ask for a step, or a second training metric
        if step is None and "grad_norm" not in values and "learning_rate" not in values:
            return None
        kind = "train"
    elif "eval_loss" in values:
        kind = "eval"
    else:
        return None
    if total is not None:
        values["total_steps"] = total
    return values, step, kind


class KeyValueParser(LineParser):
    markers = _MARK

    def feed(self, line: Line, out: Builder) -> None:
        text = line.text
        if "oss" not in text or out.is_claimed(line) or "{'" in text or '{"' in text or "Traceback" in text:
            return
        read = read_pairs(text)
        if read is None:
            return
        values, step, kind = read
        out.saw("custom")
        if kind == "train" and "total_steps" in values:
            out.meta.setdefault("header", {}).setdefault("total_steps", int(values["total_steps"]))
        values.pop("total_steps", None)
        out.record(kind, values, line, step=step, **({"step_source": "logged"} if step is not None else {}))
