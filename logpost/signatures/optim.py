"""Optimizer-family detectors: LR_ANOMALY, GRAD_EXPLOSION, FP16_OVERFLOW, GRAD_NORM_PINNED.

Each reads the structured events of the ingest contract (``Event.data["tag"]``: ``overflow``,
``loss_scale_min``, ``lr_before_step``) when present and falls back to a regex over the event text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import regex

from logpost.model import Evidence, RunLog, Severity
from logpost.signatures.base import (
    LR_BEFORE_STEP,
    Hit,
    detector,
    event_evidence,
    find_events,
    fmt_number,
    is_rl,
    ordered_train,
    row_evidence,
)
from logpost.signatures.base import first_value as _first
from logpost.signatures.base import note as _note

OVERFLOW = r"OVERFLOW! Rank \d+ Skipping step|fp16 dynamic loss scale overflow"
_SCALE = regex.compile(r"Attempted loss scale: (?P<attempted>\d+(?:\.\d+)?)(?:, reducing to (?P<next>\d+(?:\.\d+)?))?")
LOSS_SCALE_MIN = r"Current loss scale already at minimum"


def _finite(series: pd.Series) -> pd.Series:
    finite = np.isfinite(series.to_numpy(dtype="float64", na_value=np.nan))
    return series[series.notna() & pd.Series(finite, index=series.index)]


@detector("LR_ANOMALY")
def lr_anomaly(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """The learning rate stays 0 (the scheduler never stepped), or a finished run never left warmup."""
    frame = ordered_train(run)
    if not frame["learning_rate"].notna().any():  # DeepSpeed's own step lines: "step=..., lr=[...]"
        frame = run.frame[run.frame["kind"] == "optimizer"].sort_values(["step", "line"], kind="stable")
    lr = frame["learning_rate"]
    warns = find_events(run, ("lr_before_step",), LR_BEFORE_STEP)
    n_warn = sum(e.count for e in warns)
    logged = frame[lr.notna()]
    all_zero = len(logged) > 0 and bool((logged["learning_rate"] == 0).all())
    if all_zero and (len(logged) >= params["min_zero_records"] or n_warn):
        evidence = [event_evidence(e) for e in warns[:1]] + row_evidence(run, logged.head(params["evidence_rows"]))
        hit = Hit(evidence=evidence, confidence=params["zero_confidence"], first_step=_first(logged, "step"),
                  first_line=_first(logged, "line"), facts={"n_zero": len(logged), "n_warn": n_warn})
        _note(hit, f"The learning rate is 0 on all {len(logged)} logged record(s): no update changed the weights.",
              f"全部 {len(logged)} 条记录的 learning rate 都是 0：没有任何一次更新改变了权重。")
        if n_warn:
            _note(hit, f"HF warned {n_warn}x that the scheduler/optimizer had not started stepping "
                       "(DeepSpeed skipped every step).",
                  f"HF 报了 {n_warn} 次 scheduler/optimizer 还没开始 step 的警告（DeepSpeed 跳过了每一步）。")
        return [hit]
    if n_warn >= params["persistent_warnings"]:
        # benign for the first few steps while the fp16 loss scale calibrates; persistent means stuck
        hit = Hit(evidence=[event_evidence(e) for e in warns[:2]], confidence=params["warning_confidence"],
                  first_line=warns[0].line, facts={"n_zero": 0, "n_warn": n_warn})
        _note(hit, f"HF warned {n_warn}x that the scheduler/optimizer had not started stepping.",
              f"HF 报了 {n_warn} 次 scheduler/optimizer 还没开始 step 的警告。")
        return [hit]
    # warmup longer than the run: a finished run whose lr rose on every record up to the end
    vals = _finite(lr)
    finished = run.facts.finished
    if finished and len(vals) >= params["warmup_min_records"] and bool((vals.diff().dropna() > 0).all()):
        hit = Hit(evidence=row_evidence(run, logged.head(1)) + row_evidence(run, logged.tail(1)),
                  confidence=params["warmup_confidence"], first_step=_first(logged, "step"),
                  first_line=_first(logged, "line"), facts={"n_zero": 0, "n_warn": 0}, severity=Severity.WARNING)
        _note(hit, f"The learning rate rises on every one of {len(vals)} records until the run ends: warmup is longer "
                   "than the run, so it never trained at the intended rate.",
              f"learning rate 在全部 {len(vals)} 条记录里一直上升直到训练结束：warmup 比整个训练还长，"
              "从来没有在设定的 learning rate 上训练过。")
        return [hit]
    return []


@detector("GRAD_EXPLOSION")
def grad_explosion(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """grad_norm far above its own recent median (pre-clip values, so never compared with max_grad_norm)."""
    frame = ordered_train(run)
    rows = frame[np.isfinite(frame["grad_norm"].to_numpy(dtype="float64", na_value=np.nan))]
    rows = rows[rows["grad_norm"] > 0]
    n = len(rows)
    if n < params["min_records"]:
        return _lone_spike(run, frame, params)
    g = rows["grad_norm"].to_numpy()
    start = float(pd.Series(g[:3]).median())  # the first three records: before any blow-up
    end = float(pd.Series(g[-max(3, n // 4):]).median())
    prior = pd.Series(g).rolling(params["window"], min_periods=1).median().shift(1).to_numpy()
    at = np.arange(params["min_prior"], n)
    spikes = at[(prior[at] > 0) & (g[at] >= params["spike_factor"] * prior[at]) & (g[at] >= params["min_abs"])].tolist()
    sustained = start > 0 and end >= params["sustained_factor"] * start and end >= params["min_abs"]
    if not spikes and not sustained:
        return _lone_spike(run, frame, params)
    first_i = spikes[0] if spikes else int((g >= params["sustained_factor"] * start).argmax())
    peak_i = int(g.argmax())
    evidence = row_evidence(run, rows.iloc[max(0, first_i - 1):first_i + 1])
    if peak_i not in (first_i, first_i - 1):
        evidence += row_evidence(run, rows.iloc[peak_i:peak_i + 1])
    facts = {"start": round(start, 4), "peak": float(g[peak_i]), "ratio": round(float(g[peak_i]) / start, 1)
             if start > 0 else None, "n_spikes": len(spikes), "n_rows": n}
    # an error when the loss got worse too; a high grad_norm on a run whose loss still falls is a warning
    losses = _finite(frame["loss"])
    worse = len(losses) >= 3 and float(losses.iloc[-3:].median()) >= float(losses.iloc[:3].median())
    hit = Hit(evidence=evidence, confidence=params["confidence"], first_step=_first(rows.iloc[first_i:], "step"),
              first_line=_first(rows.iloc[first_i:], "line"), facts=facts,
              severity=None if sustained and worse else Severity.WARNING)
    if sustained:
        _note(hit, f"grad_norm stays high: its median over the last quarter is {end:.4g}, {end / start:.0f}x the start.",
              f"grad_norm 一直居高不下：最后四分之一的中位数是 {end:.4g}，是开始时的 {end / start:.0f} 倍。")
    return [hit]


def _lone_spike(run: RunLog, frame: pd.DataFrame, params: Mapping[str, Any]) -> list[Hit]:
    """One grad_norm ``lone_factor`` times the median of its neighbours (up to 3 records on each side,
    at least one on each): a warning, even in a short paste."""
    rows = frame[np.isfinite(frame["grad_norm"].to_numpy(dtype="float64", na_value=np.nan)) & (frame["grad_norm"] > 0)]
    g = rows["grad_norm"].to_numpy(dtype="float64")
    for i in range(1, len(g) - 1):
        near = np.concatenate([g[max(0, i - 3):i], g[i + 1:i + 4]])
        base = float(np.median(near))
        if base > 0 and g[i] >= params["lone_factor"] * base and g[i] >= params["lone_min_abs"]:
            hit = Hit(evidence=row_evidence(run, rows.iloc[i - 1:i + 2]), confidence=params["lone_confidence"],
                      first_step=_first(rows.iloc[i:], "step"), first_line=_first(rows.iloc[i:], "line"),
                      facts={"start": round(base, 4), "peak": float(g[i]), "ratio": round(float(g[i]) / base, 1),
                             "n_spikes": 1, "n_rows": len(g)}, severity=Severity.WARNING)
            _note(hit, f"One record only, {g[i] / base:.1f}x the median of its neighbours ({base:.4g}): "
                       "a low-confidence warning; watch whether it recurs.",
                  f"只有一条记录，是前后相邻记录中位数（{base:.4g}）的 {g[i] / base:.1f} 倍："
                  "置信度较低的警告，留意它会不会再次出现。")
            return [hit]
    return []


@detector("FP16_OVERFLOW")
def fp16_overflow(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """fp16 dynamic loss scaling gave up: the minimum-scale exception, a scale at or below
    ``low_scale``, overflow that does not stop after start-up, most steps skipped, or the optimizer
    never stepping. A start-up calibration burst from 2^16 (or 2^32) is normal and is not reported."""
    fatal = find_events(run, ("loss_scale_min",), LOSS_SCALE_MIN, kinds=("error", "traceback", "warning", "info"))
    overflow = find_events(run, ("overflow",), OVERFLOW, kinds=("error", "traceback", "warning", "info"))
    n_over = sum(e.count for e in overflow)
    scales = []
    for e in overflow:
        for key in ("attempted_scale", "next_scale"):
            v = e.data.get(key) if e.data else None
            if isinstance(v, int | float):
                scales.append(float(v))
        m = _SCALE.search(e.text)
        if m:
            scales += [float(v) for v in m.groupdict().values() if v is not None]
    col = _finite(run.frame["loss_scale"])
    # a constant scale is static scaling (Megatron prints "loss scale: 1.0" for bf16): not dynamic fp16
    if col.nunique() > 1:
        scales.append(float(col.min()))
    else:
        col = col.iloc[0:0]
    min_scale = min(scales) if scales else None
    opt = run.frame[run.frame["kind"] == "optimizer"].dropna(subset=["step", "skipped_steps"])
    opt = opt[opt["step"] >= params["skip_min_step"]]
    skip_share = float((opt["skipped_steps"] / opt["step"].astype(float)).iloc[-1]) if len(opt) else None
    mega = _megatron_skips(run.frame)
    if mega is not None and (skip_share is None or mega[0] > skip_share):
        skip_share, opt = mega
    lr_warn = find_events(run, ("lr_before_step",), LR_BEFORE_STEP)
    train = ordered_train(run)
    lr_zero = bool(train["learning_rate"].notna().any() and (train["learning_rate"].dropna() == 0).all())

    evidence: list[Evidence] = [event_evidence(e) for e in fatal[:1]]
    evidence += [event_evidence(e) for e in overflow[:3]]
    facts: dict[str, Any] = {"n_overflow": n_over or None, "min_scale": min_scale, "skip_share": None}
    confidence, severity = 0.0, None
    en: list[str] = []
    zh: list[str] = []
    if fatal:
        confidence = params["fatal_confidence"]
        en.append("DeepSpeed raised \"Current loss scale already at minimum\" and stopped the run.")
        zh.append("DeepSpeed 抛出了 “Current loss scale already at minimum”，训练被终止。")
    if min_scale is not None and min_scale <= params["low_scale"] and (n_over or len(col)):
        confidence = max(confidence, params["low_scale_confidence"])
        en.append(f"The loss scale fell to {min_scale:g} (start-up calibration stays in the thousands).")
        zh.append(f"loss scale 掉到了 {min_scale:g}（启动时的正常校准一般停在几千以上）。")
    steps = run.frame["step"].max()
    steps = float(steps) if pd.notna(steps) and steps > 0 else None
    # a long healthy fp16 run overflows now and then while the scale probes upward (step=13120,
    # skipped=223): the count alone means something only without scales, or against the steps
    if n_over > params["startup_overflows"] and (min_scale is None or (steps and n_over / steps >= params["max_skip_share"])):
        confidence = max(confidence, params["persistent_confidence"])
        en.append(f"{n_over} overflow messages: more than a start-up calibration burst.")
        zh.append(f"共 {n_over} 条 overflow 信息，远超启动时 loss scale 校准的那几次。")
    if skip_share is not None and skip_share >= params["max_skip_share"]:
        last = opt.iloc[-1]
        facts["skip_share"] = round(skip_share, 3)
        confidence = max(confidence, params["skipped_confidence"])
        evidence += row_evidence(run, opt.tail(1))
        if mega is not None and opt is mega[1]:
            en.append(f"Megatron skipped {fmt_number(float(last['skipped_steps']))} iterations in the interval ending at "
                      f"iteration {fmt_number(float(last['step']))} ({100 * skip_share:.0f}%).")
            zh.append(f"截至第 {fmt_number(float(last['step']))} 次迭代的这个区间里，Megatron 跳过了 {fmt_number(float(last['skipped_steps']))} 次迭代"
                      f"（{100 * skip_share:.0f}%）。")
        else:
            en.append(f"DeepSpeed skipped {fmt_number(float(last['skipped_steps']))} of {fmt_number(float(last['step']))} steps.")
            zh.append(f"DeepSpeed 在 {fmt_number(float(last['step']))} 步里跳过了 {fmt_number(float(last['skipped_steps']))} 步。")
    if lr_warn and (lr_zero or sum(e.count for e in lr_warn) >= params["persistent_lr_warnings"]):
        # the HF warning appears under DeepSpeed when its scheduler has not stepped: every step was skipped
        if not confidence:
            severity = Severity.WARNING
        confidence = max(confidence, params["inferred_confidence"])
        evidence += [event_evidence(e) for e in lr_warn[:1]]
        en.append("The optimizer never stepped (HF: \"tried to get lr value before scheduler/optimizer started "
                  "stepping\", learning rate 0): with DeepSpeed fp16 that is every step skipped for overflow.")
        zh.append("优化器一直没有 step（HF 提示 “tried to get lr value before scheduler/optimizer started stepping”，"
                  "learning rate 为 0）：在 DeepSpeed fp16 下这意味着每一步都因 overflow 被跳过。")
    if not confidence:
        return []
    first_line = min((e.line for e in evidence if e.line is not None), default=None)
    hit = Hit(evidence=sorted(evidence, key=lambda e: e.line or 0), confidence=confidence, first_line=first_line,
              facts=facts, severity=severity)
    hit.notes["en"].extend(en)
    hit.notes["zh"].extend(zh)
    return [hit]


def _megatron_skips(frame: pd.DataFrame) -> tuple[float, pd.DataFrame] | None:
    """Megatron prints "number of skipped iterations: N" per logging interval (not cumulative):
    the share of the last interval's iterations that were skipped, with that row."""
    if "skipped_iterations" not in frame:
        return None
    rows = frame[frame["skipped_iterations"].notna() & frame["step"].notna()].sort_values("step")
    if len(rows) < 2:
        return None
    steps = rows["step"].astype(float)
    interval = float(steps.diff().dropna().median())
    if not interval > 0:
        return None
    last = rows.tail(1)
    share = float(last["skipped_iterations"].iloc[0]) / interval
    out = last.assign(skipped_steps=last["skipped_iterations"], step=last["step"])
    return share, out


@detector("GRAD_NORM_PINNED")
def grad_norm_pinned(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """The same non-zero grad_norm, to the last digit, on many consecutive records (1.0, sqrt(3)):
    the optimizer sees a degenerate gradient, usually with loss 0 (DeepSpeed 0.12.4-0.12.6, ZeRO-2
    overlap_comm bugs)."""
    if is_rl(run.frame):
        return []
    frame = ordered_train(run)
    rows = frame[frame["grad_norm"].notna()]
    if len(rows) < params["min_records"]:
        return []
    g = rows["grad_norm"].to_numpy()
    best_len, best_end, run_len = 1, 0, 1
    for i in range(1, len(g)):
        run_len = run_len + 1 if g[i] == g[i - 1] else 1
        if run_len > best_len:
            best_len, best_end = run_len, i
    value = float(g[best_end])
    if value == 0 or not math.isfinite(value) or best_len < params["min_records"] \
            or best_len < params["min_share"] * len(g):
        return []
    pinned = rows.iloc[best_end - best_len + 1:best_end + 1]
    loss_zero = bool((pinned["loss"].dropna() == 0).all() and pinned["loss"].notna().any())
    sqrt3 = abs(value - math.sqrt(3)) < 1e-6
    # a constant norm with a loss that still moves can be a loop logging the clipped value (= max_grad_norm);
    # the failure is the pinned norm with the loss collapsed to 0, or the DeepSpeed sqrt(3) value itself
    if not (loss_zero or sqrt3):
        return []
    facts = {"value": value, "n_pinned": best_len, "n_rows": len(g), "loss_zero": loss_zero}
    hit = Hit(evidence=row_evidence(run, pinned.head(params["evidence_rows"])) + row_evidence(run, pinned.tail(1)),
              confidence=params["confidence_loss_zero"] if loss_zero else params["confidence"],
              first_step=_first(pinned, "step"), first_line=_first(pinned, "line"), facts=facts)
    if sqrt3:
        _note(hit, "The value is sqrt(3) = 1.7320508..., the signature of the DeepSpeed 0.12.4-0.12.6 gradient bug.",
              "这个值是 √3 = 1.7320508…，正是 DeepSpeed 0.12.4–0.12.6 梯度 bug 的特征值。")
    if loss_zero:
        _note(hit, "The loss is 0 on the same records.", "同一批记录的 loss 也都是 0。")
    return [hit]
