"""Loss-family detectors: ZERO_LOSS and NAN_LOSS."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from logpost.frame import logged_nonfinite
from logpost.model import Evidence, RunLog
from logpost.signatures.registry import Hit, detector

# Keys only RL trainers log (TRL GRPO/PPO/RLOO): their loss is ~0 by construction (trl#3452).
RL_KEYS = ("reward", "reward_std", "kl", "frac_reward_zero_std", "completion_length", "completions/mean_length")


DPO_REWARDS = frozenset({"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"})


def is_rl(frame: pd.DataFrame) -> bool:
    """A GRPO/PPO-style log: it has reward or KL keys (DPO's rewards/* do not count)."""
    return any((c in RL_KEYS or (c.startswith("rewards/") and c not in DPO_REWARDS)) and frame[c].notna().any()
               for c in frame.columns)


def ordered_train(run: RunLog) -> pd.DataFrame:
    rows = run.train_rows()
    return rows.sort_values(["step", "line"], kind="stable", na_position="last")


def row_evidence(run: RunLog, rows: pd.DataFrame) -> list[Evidence]:
    texts = run.frame.attrs.get("texts", [])
    out = []
    for idx, row in rows.iterrows():
        text = texts[idx] if idx < len(texts) else ""
        line = None if pd.isna(row["line"]) else int(row["line"])
        step = None if pd.isna(row["step"]) else int(row["step"])
        out.append(Evidence(line, text[:500], step))
    return out


def meta_evidence(run: RunLog, key: str) -> Evidence | None:
    where = run.meta.get("_lines", {}).get(key)
    return Evidence(where[0], where[1]) if where else None


def _first(rows: pd.DataFrame, col: str) -> int | None:
    if rows.empty or pd.isna(rows.iloc[0][col]):
        return None
    return int(rows.iloc[0][col])


@detector("ZERO_LOSS")
def zero_loss(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    frame = ordered_train(run)
    evidence: list[Evidence] = []
    facts: dict[str, Any] = {}
    direct = 0.0
    sup = run.meta.get("total_supervised_tokens")
    if sup == 0:
        ev = meta_evidence(run, "total_supervised_tokens")
        if ev:
            evidence.append(ev)
        direct = params["direct_confidence"]
    if "tokens_trainable" in frame and frame["tokens_trainable"].notna().any() \
            and (frame["tokens_trainable"].dropna() == 0).all():
        facts["trainable_tokens_zero"] = int(frame["tokens_trainable"].notna().sum())
        direct = params["direct_confidence"]
    if is_rl(run.frame):
        return []

    loss, grad, lr = frame["loss"], frame["grad_norm"], frame["learning_rate"]
    grad_nan = logged_nonfinite(frame, "grad_norm")
    loss_nan = logged_nonfinite(frame, "loss")
    grad_ok = (grad == 0) | (grad.isna() & ~grad_nan)
    # loss exactly 0, or nan with grad_norm exactly 0: the mean over zero supervised tokens (0/0)
    zero = ((loss == 0) & grad_ok) | (loss_nan & (grad == 0))
    n_zero = int(zero.sum())
    series_hit = False
    if n_zero >= min(params["min_zero_records"], len(frame)) and n_zero > 0:
        k = int(zero.to_numpy().argmax())
        tail = zero.iloc[k:]
        lr_zero = lr[zero]
        lr_moves = bool((lr_zero > 0).any()) or lr_zero.isna().all()
        converged = False
        if k > 0 and grad[zero].isna().all():
            prev = loss.iloc[k - 1]
            # a loss that shrank to 0.0x before printing 0.0 converged (or overfit); 4.x rounds to 4 decimals
            converged = bool(math.isfinite(prev) and prev < params["converged_below"])
        series_hit = tail.mean() >= params["min_zero_share"] and lr_moves and not converged
    if not series_hit and not direct:
        return []

    zrows = frame[zero] if series_hit else frame.iloc[0:0]
    if series_hit:
        evidence[:0] = row_evidence(run, zrows.head(params["evidence_rows"]))
        if len(zrows) > params["evidence_rows"]:
            evidence.extend(row_evidence(run, zrows.tail(1)))
    elif not frame.empty:
        evidence.extend(row_evidence(run, frame.head(2)))
    lr_vals = zrows["learning_rate"].dropna() if series_hit else frame["learning_rate"].dropna()
    grad_present = bool(zrows["grad_norm"].notna().any()) if series_hit else False
    facts.update({
        "n_zero": n_zero if series_hit else 0,
        "n_rows": len(frame),
        "lr_first": float(lr_vals.iloc[0]) if len(lr_vals) else None,
        "lr_max": float(lr_vals.max()) if len(lr_vals) else None,
        "supervised": sup,
        "grad_logged": grad_present,
    })
    first = zrows if series_hit else frame
    confidence = max(direct, params["series_confidence"] if grad_present else params["series_confidence_no_grad"]) \
        if series_hit else direct
    if series_hit and direct:
        confidence = min(0.99, direct + 0.02)
    evidence.sort(key=lambda e: e.line if e.line is not None else 0)
    hit = Hit(evidence=evidence, confidence=confidence, first_step=_first(first, "step"),
              first_line=_first(first, "line") if series_hit else (evidence[0].line if evidence else None),
              facts=facts)
    if series_hit and not grad_present:
        hit.notes["en"].append("grad_norm is not logged, so the zero gradient is inferred from the loss alone.")
        hit.notes["zh"].append("日志里没有 grad_norm，梯度为零是仅凭 loss 推断的。")
    if sup == 0:
        hit.notes["en"].append("Axolotl counted total_supervised_tokens: 0 before training: no label is != -100.")
        hit.notes["zh"].append("Axolotl 在训练前统计到 total_supervised_tokens: 0，即没有任何 label != -100。")
    if facts.get("trainable_tokens_zero"):
        hit.notes["en"].append("Every metric line reports tokens/trainable: 0.")
        hit.notes["zh"].append("每一条指标都显示 tokens/trainable: 0。")
    return [hit]


@detector("NAN_LOSS")
def nan_loss(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    frame = run.frame.sort_values(["step", "line"], kind="stable", na_position="last")
    loss_bad = logged_nonfinite(frame, "loss")
    grad_bad = logged_nonfinite(frame, "grad_norm")
    eval_bad = logged_nonfinite(frame, "eval_loss")
    if not (frame["kind"] == "train").any():  # a summary's train_loss speaks only when nothing else does
        eval_bad |= logged_nonfinite(frame, "train_loss")
    # loss nan with grad_norm exactly 0 is 0/0 over zero supervised tokens: ZERO_LOSS, not a blow-up
    empty_labels = loss_bad & (frame["grad_norm"] == 0)
    bad = ((loss_bad & ~empty_labels) | grad_bad | eval_bad)
    if int(bad.sum()) < params["min_records"]:
        return []
    rows = frame[bad]
    first_idx = rows.index[0]
    pos = frame.index.get_loc(first_idx)
    before = frame.iloc[max(0, pos - 1):pos]
    before = before[before["kind"] == "train"]
    evidence = row_evidence(run, before) + row_evidence(run, rows.head(params["evidence_rows"]))
    masked = frame[grad_bad & frame["loss"].notna() & ~loss_bad & (frame["kind"] == "train")]
    only_eval = bool(not (loss_bad | grad_bad).any())
    facts = {
        "n_bad": int(bad.sum()),
        "n_rows": len(frame),
        "what": ", ".join(c for c, m in (("loss", loss_bad & ~empty_labels), ("grad_norm", grad_bad),
                                          ("eval_loss", eval_bad)) if m.any()),
        "masked": len(masked),
        "lr_at_first": None if pd.isna(rows.iloc[0]["learning_rate"]) else float(rows.iloc[0]["learning_rate"]),
    }
    hit = Hit(evidence=evidence, confidence=params["confidence_eval_only"] if only_eval else params["confidence"],
              first_step=_first(rows, "step"), first_line=_first(rows, "line"), facts=facts)
    if len(masked):
        hit.notes["en"].append(
            f"On {len(masked)} record(s) grad_norm is nan while loss looks finite: HF's logging_nan_inf_filter "
            "hides non-finite losses from the logged average, so the printed loss (often 0.0) is not the truth.")
        hit.notes["zh"].append(
            f"有 {len(masked)} 条记录 grad_norm 为 nan 而 loss 看似正常：HF 的 logging_nan_inf_filter 会把 "
            "nan/inf 的 loss 从平均值里滤掉，所以打印出来的 loss（常常是 0.0）并不可信。")
    if only_eval:
        hit.notes["en"].append("Only the evaluation loss is non-finite; the training loss stays finite.")
        hit.notes["zh"].append("只有 eval loss 出现非有限值，训练 loss 仍是有限的。")
    return [hit]
