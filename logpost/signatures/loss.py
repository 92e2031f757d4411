"""Loss-family detectors: ZERO_LOSS, NAN_LOSS, LOSS_SPIKE, DIVERGENCE, NO_LEARNING, OVERFITTING."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from logpost.frame import logged_nonfinite
from logpost.model import Evidence, RunLog, Severity
from logpost.signatures.base import (
    LR_BEFORE_STEP,
    Hit,
    detector,
    find_events,
    is_rl,
    ordered_train,
    row_evidence,
)
from logpost.signatures.base import first_value as _first
from logpost.signatures.base import note as _note

# Frameworks that log through HF Trainer (its logging_nan_inf_filter applies)
HF_FAMILY = frozenset({"hf", "axolotl", "llamafactory", "swift"})


@detector("ZERO_LOSS")
def zero_loss(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    frame = ordered_train(run)
    evidence: list[Evidence] = []
    facts: dict[str, Any] = {}
    direct = 0.0
    sup = run.facts.supervised_tokens
    if sup == 0:
        ev = run.facts.evidence("total_supervised_tokens")
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
    tiny = grad.abs() <= params["zero_grad_max"]
    grad_ok = tiny | (grad.isna() & ~grad_nan)
    pinned = _pinned_norm(loss, grad)
    # loss exactly 0, or nan with grad_norm ~0: the mean over zero supervised tokens (0/0); or loss 0 under a
    # grad_norm pinned at one non-zero value (the DeepSpeed sqrt(3) / clipped 1.0 cases)
    zero = ((loss == 0) & (grad_ok | pinned)) | (loss_nan & tiny)
    n_zero = int(zero.sum())
    # a short paste: a loss that was non-zero and then is exactly 0 with grad_norm ~0 needs fewer records
    drop = bool(n_zero and (loss[~zero].dropna() > 0).any() and grad[zero].notna().all()
                and int(zero.to_numpy().argmax()) > 0)
    need = params["min_zero_records_after_loss"] if drop else params["min_zero_records"]
    series_hit = False
    # a log that ended short of its records speaks with what it has; a live one (watch, the callback) waits for them
    if n_zero >= (need if run.meta.get("live") else min(need, len(frame))) and n_zero > 0:
        k = int(zero.to_numpy().argmax())
        tail = zero.iloc[k:]
        lr_zero = lr[zero]
        lr_moves = bool((lr_zero > 0).any()) or lr_zero.isna().all()
        if not lr_moves and never_stepped(run):
            lr_moves, facts["skipped"] = True, True
        converged = False
        if k > 0 and grad[zero].isna().all():
            prev = loss.iloc[k - 1]
            # a loss that shrank to 0.0x before printing 0.0 converged (or overfit); 4.x rounds to 4 decimals
            converged = bool(math.isfinite(prev) and prev < params["converged_below"])
        series_hit = tail.mean() >= params["min_zero_share"] and lr_moves and not converged
    # Axolotl's chat_template debug trace: every trained turn without boundaries, none with them
    masked_turns = [e for e in run.events if e.data.get("tag") == "masked_labels" and "start=-1" in e.text]
    n_masked = sum(e.count for e in masked_turns)
    predicted = (not series_hit and not direct and not frame["loss"].notna().any()
                 and n_masked >= params["min_masked_turns"]
                 and not any(e.data.get("tag") == "turn_indices" for e in run.events))
    if not series_hit and not direct and not predicted:
        return []
    if predicted:
        evidence.append(Evidence(masked_turns[0].line, masked_turns[0].text[:500]))
        direct = params["predicted_confidence"]

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
        "n_zero": n_zero if series_hit else None,
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
    few = series_hit and not direct and n_zero < params["min_zero_records_confident"]
    if few:  # confidence scaled to the evidence: a short paste shows only a few records
        confidence = min(confidence, params["few_records_confidence"])
    if series_hit and bool(pinned[zero].all()) and not bool(tiny[zero].any()):
        facts["pinned"] = float(grad[zero].iloc[0])
    evidence.sort(key=lambda e: e.line if e.line is not None else 0)
    hit = Hit(evidence=evidence, confidence=confidence, first_step=_first(first, "step"),
              first_line=_first(first, "line") if series_hit else (evidence[0].line if evidence else None),
              facts=facts)
    if facts.get("pinned") is not None:
        hit.variant = "pinned_grad_norm"
    if few:
        _note(hit, f"Low confidence: only {n_zero} record(s) show it; a longer stretch of the log would confirm it.",
              f"置信度较低：只有 {n_zero} 条记录能看到这个现象，需要更长一段日志来确认。")
    if series_hit and not grad_present:
        _note(hit, "grad_norm is not logged, so the zero gradient is inferred from the loss alone.",
              "日志里没有 grad_norm，梯度为零是仅凭 loss 推断的。")
    if predicted:
        _note(hit, f"No training metrics in this log yet: predicted from the preprocessing trace ({n_masked} turns, "
              "none with a boundary), training on this data logs loss 0 and grad_norm 0 from the first step.",
              f"这份日志里还没有训练指标：这是根据预处理调试输出推断的（{n_masked} 个轮次，没有一个找到边界），"
              "用这份数据训练，会从第一步起 loss 和 grad_norm 都为 0。")
    if sup == 0:
        _note(hit, "Axolotl counted total_supervised_tokens: 0 before training: no label is != -100.",
              "Axolotl 在训练前统计到 total_supervised_tokens: 0，即没有任何 label != -100。")
    if facts.get("skipped"):
        hit.confidence = min(hit.confidence, params["skipped_confidence"])
        _note(hit, "The optimizer never stepped (learning rate 0, DeepSpeed skipped the steps): the 0 is what "
              "HF logs for skipped steps, so see FP16_OVERFLOW before suspecting the labels.",
              "优化器一步都没走（learning rate 为 0，DeepSpeed 跳过了这些 step）：这里的 0 是 HF 对被跳过的 "
              "step 记录的 loss，先看 FP16_OVERFLOW，再怀疑 label。")
    if facts.get("trainable_tokens_zero"):
        _note(hit, "Every metric line reports tokens/trainable: 0.",
              "每一条指标都显示 tokens/trainable: 0。")
    return [hit]


def _pinned_norm(loss: pd.Series, grad: pd.Series) -> pd.Series:
    """Records with loss 0 whose non-zero grad_norm equals, to the last digit, the one of a neighbouring
    record with loss 0: a gradient that is not computed from the loss (sqrt(3) = 1.7320508..., 1.0)."""
    z = (loss == 0) & grad.notna() & (grad != 0)
    g = grad.to_numpy(dtype="float64", na_value=np.nan)
    zz = z.to_numpy()
    same_prev = np.zeros(len(g), dtype=bool)
    same_prev[1:] = zz[1:] & zz[:-1] & (g[1:] == g[:-1])
    same_next = np.zeros(len(g), dtype=bool)
    same_next[:-1] = same_prev[1:]
    return pd.Series(same_prev | same_next, index=loss.index)


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
    # ... unless the run logged finite non-zero losses before it: a loss that was real and turns nan blew up
    # (verl logs "train/loss:nan - train/grad_norm:0.0" on the step its update is dropped)
    real = ((frame["kind"] == "train") & (frame["loss"] > 0) & ~loss_bad).fillna(False).to_numpy(dtype=bool)
    if real.any() and bool(empty_labels.any()):
        empty_labels = empty_labels & ~pd.Series(np.cumsum(real) > 0, index=frame.index)
    # Megatron counts them itself: "number of nan iterations: N" per logging interval
    nan_iters = (frame["nan_iterations"] > 0) if "nan_iterations" in frame else pd.Series(False, index=frame.index)
    bad = ((loss_bad & ~empty_labels) | grad_bad | eval_bad | nan_iters)
    if int(bad.sum()) < params["min_records"] or _skipped_by_scaler(frame, bad, grad_bad, loss_bad, params):
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
        "what": [c for c, m in (("loss", loss_bad & ~empty_labels), ("grad_norm", grad_bad),
                                          ("eval_loss", eval_bad), ("nan iterations", nan_iters)) if m.any()],
        "masked": len(masked),
        "lr_at_first": None if pd.isna(rows.iloc[0]["learning_rate"]) else float(rows.iloc[0]["learning_rate"]),
    }
    hit = Hit(evidence=evidence, confidence=params["confidence_eval_only"] if only_eval else params["confidence"],
              first_step=_first(rows, "step"), first_line=_first(rows, "line"), facts=facts)
    train_norms = frame.loc[(frame["kind"] == "train") & (frame["grad_norm"].notna() | grad_bad)]
    every_skipped = (len(train_norms) >= params["skip_every_min_records"] and not bool(loss_bad.any())
                     and bool(np.isposinf(train_norms["grad_norm"].to_numpy(dtype="float64")).all())
                     and bool((train_norms["loss"] > 0).all()))
    if every_skipped:
        hit.variant = "all_skipped"
        # bf16 has no loss scaler: an inf gradient reaches the weights and the next losses are nan. A loss that
        # stays finite under grad_norm inf on every record is fp16's scaler skipping every update.
        _note(hit, f"grad_norm is inf on all {len(train_norms)} records while the loss stays finite and non-zero: under "
              "fp16 mixed precision the loss scaler skipped every one of these steps, so the weights never changed "
              "(a flat loss confirms it).",
              f"全部 {len(train_norms)} 条记录的 grad_norm 都是 inf，而 loss 一直是有限的非零值：在 fp16 混合精度下，"
              "loss scaler 把这些 step 全部跳过了，权重根本没有更新（loss 基本不动就是佐证）。")
    elif len(masked) and HF_FAMILY & set(run.frameworks):
        _note(hit, f"On {len(masked)} record(s) grad_norm is nan while loss looks finite: HF's logging_nan_inf_filter "
              "hides non-finite losses from the logged average, so the printed loss (often 0.0) is not the truth.",
              f"有 {len(masked)} 条记录 grad_norm 为 nan 而 loss 看似正常：HF 的 logging_nan_inf_filter 会把 "
              "nan/inf 的 loss 从平均值里滤掉，所以打印出来的 loss（常常是 0.0）并不可信。")
    if only_eval:
        _note(hit, "Only the evaluation loss is non-finite; the training loss stays finite.",
              "只有 eval loss 出现非有限值，训练 loss 仍是有限的。")
    return [hit]


def _skipped_by_scaler(frame: pd.DataFrame, bad: pd.Series, grad_bad: pd.Series, loss_bad: pd.Series,
                       params: Mapping[str, Any]) -> bool:
    """Every non-finite value is a grad_norm that fp16 dynamic loss scaling (torch GradScaler) skipped:
    HF logs the overflowed step's grad_norm as inf/nan, the loss on it is finite and non-zero, and the
    following records log a finite grad_norm again. A nan that reached the weights would make every
    later grad_norm nan, so a run that recovers on its own skipped the update, it did not blow up."""
    train = frame["kind"] == "train"
    skip = grad_bad & train & ~loss_bad & (frame["loss"] > 0)
    if not skip.any() or bool((bad & ~skip).any()):
        return False
    norms = frame.loc[train & (frame["grad_norm"].notna() | grad_bad), "grad_norm"].to_numpy(dtype="float64")
    finite = np.isfinite(norms)
    n_skip = int((~finite).sum())
    after = len(finite) - 1 - int(np.flatnonzero(~finite)[-1])  # finite records after the last skipped one
    return after >= params["skip_recovered_records"] and \
        n_skip <= max(params["skip_max_records"], params["skip_max_share"] * len(finite))


def never_stepped(run: RunLog) -> bool:
    """HF under DeepSpeed warns "tried to get lr value before scheduler/optimizer started stepping"
    while every step is skipped; DeepSpeed's own step lines say skipped ~= step."""
    if find_events(run, ("lr_before_step",), LR_BEFORE_STEP):
        return True
    opt = run.frame[run.frame["kind"] == "optimizer"].dropna(subset=["step", "skipped_steps"])
    return bool(len(opt) and (opt["skipped_steps"] >= 0.9 * opt["step"].astype(float)).iloc[-1]
                and opt["step"].iloc[-1] >= 10)


def finite_losses(run: RunLog) -> pd.DataFrame:
    """Training records with a finite loss, in step order."""
    frame = ordered_train(run)
    bad = logged_nonfinite(frame, "loss")
    finite = pd.Series(np.isfinite(frame["loss"].to_numpy(dtype="float64", na_value=np.nan)), index=frame.index)
    return frame[frame["loss"].notna() & ~bad & finite]


@detector("LOSS_SPIKE")
def loss_spike(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """A record whose loss jumps far above the median of the records before it, and the next
    record is back near that median: an isolated spike that recovered."""
    rows = finite_losses(run)
    loss = rows["loss"].to_numpy()
    # median and median absolute deviation of the `window` records before each one
    roll = pd.Series(loss).rolling(params["window"], min_periods=1)
    prior = roll.median().shift(1).to_numpy()
    spikes = []
    at = np.arange(params["min_prior"], max(params["min_prior"], len(loss) - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        high = (prior[at] > 0) & (loss[at] / prior[at] >= params["factor"])  # the cheap half of the test, in numpy
    for i in at[high].tolist():
        base = float(prior[i])
        jump = loss[i] / base
        if jump >= params["factor"] and loss[i] - base >= params["min_delta"] \
                and loss[i + 1] <= params["recover_factor"] * base:
            window = loss[max(0, i - params["window"]):i]
            mad = float(np.median(np.abs(window - base)))
            if mad > 0 and (loss[i] - base) / mad < params["min_mads"]:
                continue  # within this run's own noise
            spikes.append((i, base, jump))
    jump = interval_jump(run, params) if not spikes else None
    if jump is not None and jump[3]:
        i = jump[1]
        spikes = [(i, jump[2], float(loss[i]) / jump[2])]
    # a "spike" on more than a few percent of the records is the run's noise, not an event
    if not spikes or len(spikes) > max(1, params["max_share"] * len(loss)):
        return []
    idx = [rows.index[i] for i, _, _ in spikes]
    first_i, base, jump = spikes[0]
    evidence = row_evidence(run, rows.iloc[max(0, first_i - 1):first_i + 2])
    for i, _, _ in spikes[1:params["evidence_spikes"]]:
        evidence += row_evidence(run, rows.iloc[i:i + 1])
    facts = {"n_spikes": len(spikes), "base": round(base, 4), "peak": float(loss[first_i]), "ratio": round(jump, 1),
             "n_rows": len(rows)}
    first = rows.loc[idx]
    return [Hit(evidence=evidence, confidence=params["confidence"], first_step=_first(first, "step"),
                first_line=_first(first, "line"), facts=facts)]


# Trainers whose logged loss is a mean over the whole logging interval (tens of iterations), not one batch
INTERVAL_MEAN = frozenset({"megatron"})


def interval_jump(run: RunLog, params: Mapping[str, Any]) -> tuple[pd.DataFrame, int, float, bool] | None:
    """Megatron's ``lm loss`` is averaged over each logging interval, so a rise of ``jump_factor`` between
    two logged iterations is no batch noise: the first such record (its position in ``rows``), the level
    before it (median of up to 3 records) and whether the next record came back (``jump_recover``)."""
    if not INTERVAL_MEAN & set(run.frameworks) or is_rl(run.frame):
        return None
    rows = finite_losses(run)
    loss = rows["loss"].to_numpy(dtype="float64")
    for i in range(1, len(loss)):
        base = float(np.median(loss[max(0, i - 3):i]))
        if base > 0 and loss[i] >= params["jump_factor"] * base and loss[i] - base >= params["jump_min_delta"]:
            recovered = i + 1 < len(loss) and bool(loss[i + 1:].min() <= params["jump_recover"] * base)
            return rows, i, base, recovered
    return None


@detector("DIVERGENCE")
def divergence(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """The loss ends far above where it started and above its best, and stays there; or an
    interval-averaged loss (Megatron) jumps and does not come back (variant ``jump``)."""
    if is_rl(run.frame):
        return []  # RL losses hover around 0 and move with the policy, not with the fit
    rows = finite_losses(run)
    n = len(rows)
    jump = interval_jump(run, params)
    if jump is not None and not jump[3] and n < params["min_records"] * 2:
        rows, i, base, _ = jump
        end = float(rows["loss"].iloc[-1])
        hit = Hit(evidence=row_evidence(run, rows.iloc[max(0, i - 1):]), confidence=params["jump_confidence"],
                  first_step=_first(rows.iloc[i:], "step"), first_line=_first(rows.iloc[i:], "line"),
                  facts={"start": round(base, 4), "end": round(end, 4), "best": round(base, 4), "n_rows": n,
                         "ratio": round(end / base, 2)}, variant="jump")
        _note(hit, f"Low confidence: {n} logged iteration(s), and the log ends {n - 1 - i} record(s) after the jump.",
              f"置信度较低：只记录了 {n} 次迭代，跳升之后日志只剩 {n - 1 - i} 条记录。")
        return [hit]
    if n < params["min_records"]:
        return []
    loss = rows["loss"]
    k = params["head_records"]
    start = float(loss.iloc[:k].median())
    end = float(loss.iloc[-max(2, n // 4):].median())
    smooth = loss.rolling(k, min_periods=1).median()
    best = float(smooth.min())
    rose = end >= params["factor"] * start and end >= params["factor"] * best and end - start >= params["min_delta"]
    # a rebound: the run learned (its best well after the start), then climbed far above that best and stayed
    rebound = (not rose and end >= params["rebound_factor"] * best and end - best >= params["rebound_delta"]
               and int(smooth.to_numpy().argmin()) >= k)
    if not (rose or rebound):
        return []
    above = loss > (params["factor"] * start if rose else params["rebound_factor"] * best)
    low = 0 if rose else int(loss.to_numpy().argmin())  # a rebound is measured from the best record on
    first_pos = low + int(above.to_numpy()[low:].argmax())
    # it has not recovered: the last record is still above the threshold
    if not bool(above.iloc[-1]):
        return []
    picks = sorted({0, low, first_pos, min(first_pos + 1, n - 1), n - 1})  # start, best, the climb, the end
    evidence = row_evidence(run, rows.iloc[picks])
    facts = {"start": round(start, 4), "end": round(end, 4), "best": round(best, 4), "n_rows": n,
             "ratio": round(end / (start if rose else best), 1) if (start if rose else best) > 0 else None}
    first = rows.iloc[first_pos:first_pos + 1]
    return [Hit(evidence=evidence, confidence=params["confidence"], first_step=_first(first, "step"),
                first_line=_first(first, "line"), facts=facts, variant=None if rose else "rebound")]


@detector("OVERFITTING")
def overfitting(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """Eval loss rises for several evaluations after its best while the training loss keeps falling."""
    frame = run.frame.sort_values(["step", "line"], kind="stable", na_position="last")
    ev = frame[(frame["kind"] == "eval") & frame["eval_loss"].notna() & ~logged_nonfinite(frame, "eval_loss")]
    if ev.empty:
        return _memorisation(run, params)
    if len(ev) < params["min_evals"]:
        return []
    vals = ev["eval_loss"].to_numpy()
    b = int(vals.argmin())
    after = len(vals) - 1 - b
    if after < params["min_evals_after_best"] or vals[-1] < vals[b] * (1 + params["min_rise"]):
        return []
    train = finite_losses(run)
    best_step = ev.iloc[b]["step"]
    if pd.isna(best_step) or train.empty:
        return []
    before = train[train["step"] <= best_step]["loss"]
    later = train[train["step"] > best_step]["loss"]
    if before.empty or later.empty or not later.tail(max(1, len(later) // 4)).median() < before.tail(3).median():
        return []
    evidence = row_evidence(run, ev.iloc[b:b + 1]) + row_evidence(run, ev.iloc[-1:]) + row_evidence(run, train.tail(1))
    facts = {"best_eval": float(vals[b]), "best_step": int(best_step), "last_eval": float(vals[-1]),
             "rise": round(100 * (vals[-1] / vals[b] - 1), 1), "train_last": float(train["loss"].iloc[-1])}
    first = ev.iloc[b + 1:b + 2]
    return [Hit(evidence=evidence, confidence=params["confidence"], first_step=_first(first, "step"),
                first_line=_first(first, "line"), facts=facts)]


def _memorisation(run: RunLog, params: Mapping[str, Any]) -> list[Hit]:
    """No eval loss at all, many epochs, and a training loss near 0 (variant ``memorisation``): the model
    has learned its small training set by heart, and nothing in the log can say how it generalises."""
    train = finite_losses(run)
    if len(train) < 3 or "epoch" not in train or not train["epoch"].notna().any():
        return []
    epochs = float(train["epoch"].max())
    last = float(train["loss"].iloc[-1])
    if epochs < params["memorise_min_epochs"] or not 0 < last <= params["memorise_loss"]:
        return []
    hit = Hit(evidence=row_evidence(run, train.head(1)) + row_evidence(run, train.tail(1)),
              confidence=params["memorise_confidence"], first_step=_first(train.tail(1), "step"),
              first_line=_first(train.tail(1), "line"), severity=Severity.WARNING, variant="memorisation",
              facts={"epochs": round(epochs, 1), "train_last": last, "train_first": float(train["loss"].iloc[0])})
    return [hit]


@detector("NO_LEARNING")
def no_learning(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """No gradient reaches the weights: grad_norm exactly 0 while the loss is not, an RL batch with
    no reward variance, zero trainable parameters, or a loss that stays flat after warmup."""
    frame = ordered_train(run)
    hits: list[Hit] = []
    trainable = run.facts.trainable_params
    if trainable == 0:
        ev = run.facts.evidence("peft_trainable_params") or run.facts.evidence("header")
        hit = Hit(evidence=[ev] if ev else [], confidence=params["direct_confidence"],
                  first_line=ev.line if ev else None, facts={"mode": "params"})
        _note(hit, "The log reports 0 trainable parameters.", "日志显示可训练参数为 0。")
        hits.append(hit)
    grad = frame["grad_norm"]
    if grad.notna().sum() >= 1 and (grad.dropna() == 0).all():
        loss = frame["loss"]
        rl = is_rl(run.frame)
        zero_std = ("frac_reward_zero_std" in frame and frame["frac_reward_zero_std"].notna().any()
                    and bool((frame["frac_reward_zero_std"].dropna() == 1).all())) or \
            ("reward_std" in frame and frame["reward_std"].notna().any() and bool((frame["reward_std"].dropna() == 0).all()))
        # loss 0 with grad 0 outside RL is ZERO_LOSS's case (nothing supervised); here the loss is real
        if (loss.dropna() > 0).any() or (rl and zero_std):
            rows = frame[grad == 0]
            hit = Hit(evidence=row_evidence(run, rows.head(params["evidence_rows"])),
                      confidence=params["grad_confidence"], first_step=_first(rows, "step"),
                      first_line=_first(rows, "line"), facts={"mode": "grad", "n_zero": len(rows)})
            _note(hit, f"grad_norm is exactly 0 on all {len(rows)} record(s) that log it.",
                  f"所有记录了 grad_norm 的 {len(rows)} 条记录里 grad_norm 都恰好为 0。")
            if rl and zero_std:
                _note(hit, "Every GRPO group got the same reward (reward_std 0 / frac_reward_zero_std 1), so every "
                      "advantage is 0 and there is no gradient.",
                      "每个 GRPO 组内的 reward 都一样（reward_std 为 0 / frac_reward_zero_std 为 1），advantage 全是 0，"
                      "自然没有梯度。")
            hits.append(hit)
    flat = _flat_after_warmup(run, params)
    if flat is not None:
        hits.append(flat)
    if not hits:
        return []
    hit = hits[0]
    if len(hits) > 1:
        hit.severity = None  # a direct marker with the flat series: the entry's severity
    for other in hits[1:]:
        hit.evidence.extend(other.evidence)
        hit.confidence = max(hit.confidence, other.confidence)
        for lang in hit.notes:
            hit.notes[lang].extend(other.notes[lang])
        if hit.first_line is None:
            hit.first_line, hit.first_step = other.first_line, other.first_step
    return [hit]


def _flat_after_warmup(run: RunLog, params: Mapping[str, Any]) -> Hit | None:
    rows = finite_losses(run)
    lr = rows["learning_rate"]
    if len(rows) < params["flat_min_records"] or lr.notna().sum() < len(rows) // 2 or is_rl(run.frame):
        return None
    if not (lr.dropna() > 0).any():
        return None
    peak = int(lr.fillna(-1).to_numpy().argmax())
    # still warming up (the peak is in the last fifth): a flat loss at a tiny lr is expected
    if peak >= 0.8 * len(rows):
        return None
    tail = rows.iloc[peak:]
    if len(tail) < params["flat_min_records"]:
        return None
    q = max(3, len(tail) // 4)
    head_m, tail_m = float(tail["loss"].iloc[:q].median()), float(tail["loss"].iloc[-q:].median())
    if head_m <= 0 or abs(tail_m - head_m) / head_m > params["flat_rel_change"]:
        return None
    # inferred from the series alone (a slow continued-pretraining run is flat too): a warning
    hit = Hit(evidence=row_evidence(run, tail.iloc[:1]) + row_evidence(run, tail.iloc[-1:]),
              confidence=params["flat_confidence"], first_step=_first(tail, "step"), first_line=_first(tail, "line"),
              facts={"mode": "flat"}, severity=Severity.WARNING)
    _note(hit, f"After the learning rate peaked the loss stays flat ({head_m:.4g} -> {tail_m:.4g} over {len(tail)} records).",
          f"learning rate 到峰值之后 loss 基本不动（{len(tail)} 条记录里从 {head_m:.4g} 到 {tail_m:.4g}）。")
    return hit
