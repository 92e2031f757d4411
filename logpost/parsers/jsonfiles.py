"""JSON metric sources: HF ``trainer_state.json`` and JSON-lines metric logs (LLaMA-Factory
``trainer_log.jsonl`` and generic ``{"step": .., "loss": ..}`` lines)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from logpost.model import InputError, Line
from logpost.parsers.base import Builder
from logpost.parsers.hf import metric_values, record_kind

_STEP_LINE = re.compile(rb'^\s*"step":\s*\d+', re.M)
_STEP_KEYS = ("step", "global_step", "current_steps", "iteration")


def _compact(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, allow_nan=True)


def looks_like_state(head: bytes) -> bool:
    """A trainer_state.json, whole or an excerpt of its ``log_history`` (pasted from the file: it may
    start at the key, at the list, or at an entry)."""
    start = head.lstrip()[:1]
    if start == b"{" and (b'"log_history"' in head or head.lstrip().startswith(b'{\n  "best')):
        return True
    return start in (b"{", b"[", b'"') and (b'"log_history"' in head or _STEP_LINE.search(head) is not None
                                            and b'"loss"' in head and b"\n" in head.strip())


def recover_state(data: bytes) -> dict[str, Any] | None:
    """The complete ``log_history`` entries of a trainer_state.json cut short, or of an excerpt of its
    list (the entries that parse, from the first one), or None."""
    text = data.decode("utf-8", errors="replace")
    start = text.find('"log_history"')
    start = text.find("[", start) if start != -1 else text.find("{") - 1
    if start < -1:
        return None
    dec = json.JSONDecoder()
    entries: list[Any] = []
    pos = start + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            break
        try:
            obj, pos = dec.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break
        entries.append(obj)
    if not any(isinstance(e, dict) and ("step" in e or "loss" in e) for e in entries):
        return None
    return {"log_history": entries}


def parse_trainer_state(data: bytes, out: Builder) -> None:
    """Records from ``log_history``; each points at the line of its ``"step"`` key."""
    try:
        state = json.loads(data)  # Python's json reads the bare NaN/Infinity HF writes
    except (ValueError, RecursionError) as exc:
        state = recover_state(data)  # cut short (copied while being written): keep the complete entries
        if state is None:
            raise InputError(f"{out.source}: not valid JSON ({exc})") from None
        out.meta["truncated"] = True
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise InputError(f"{out.source}: JSON without a log_history list (not a trainer_state.json)")
    out.saw("hf", 2)
    step_lines = [data.count(b"\n", 0, m.start()) + 1 for m in _STEP_LINE.finditer(data)]
    if len(step_lines) != len(history):
        step_lines = []
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            continue
        kind = record_kind(entry)
        step = entry.get("step")
        line = Line(step_lines[i], "", None) if step_lines else None
        out.record(kind, metric_values(entry), line, step=int(step) if isinstance(step, int | float) and
                   not (isinstance(step, float) and math.isnan(step)) else None, text=_compact(entry))
    for key in ("max_steps", "logging_steps", "num_train_epochs", "train_batch_size", "global_step"):
        if key in state:
            out.meta.setdefault("header", {}).setdefault(
                {"max_steps": "total_steps", "num_train_epochs": "num_epochs"}.get(key, key), state[key])
    out.set_meta("completed", any("train_runtime" in e for e in history if isinstance(e, dict)) or None)


def parse_jsonl_line(line: Line, out: Builder) -> None:
    """One JSON object per line with a step key and metric keys."""
    text = line.text.strip()
    if not text.startswith("{"):
        return
    try:
        obj = json.loads(text)
    except ValueError:
        return
    if not isinstance(obj, dict):
        return
    step = next((obj[k] for k in _STEP_KEYS if isinstance(obj.get(k), int | float)), None)
    metrics = {k: v for k, v in obj.items() if isinstance(v, int | float | str) or v is None}
    if not ({"loss", "eval_loss", "learning_rate", "lr", "train_loss"} & metrics.keys()):
        if "total_steps" in obj and "current_steps" in obj:
            out.meta.setdefault("header", {}).setdefault("total_steps", obj["total_steps"])
            if obj["current_steps"] == obj["total_steps"]:  # LLaMA-Factory's last line has no loss
                out.set_meta("completed", True, line)
        return
    if "current_steps" in obj:
        out.saw("llamafactory", 2)
        if "total_steps" in obj:
            out.meta.setdefault("header", {})["total_steps"] = obj["total_steps"]
            if obj["current_steps"] == obj["total_steps"]:
                out.set_meta("completed", True, line)
    else:
        out.saw("jsonl")
    values = metric_values({k: v for k, v in metrics.items() if k not in ("total_steps",)})
    out.record(record_kind(obj), values, line, step=int(step) if step is not None else None, text=text[:2000])
