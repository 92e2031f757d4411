"""Metric series as real pasted training logs print them (issue #4: the catalogue is scored on real logs
we do not have). Each case is built from lines in the format a public log shows, with made-up values,
and goes through the whole pipeline (``analyze`` on a file). The URL or source of the real log the
format and the failure mode come from is given per case.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from logpost.analyze import Options, analyze


class Case(NamedTuple):
    id: str
    source: str
    text: str
    expect: tuple[str, ...]  # signatures that must be found
    absent: tuple[str, ...]  # signatures that must not be found


def hf(rows: list[tuple[object, object, float]], epoch_step: float = 0.01) -> str:
    """HF Trainer's per-log dict lines: (loss, grad_norm, learning_rate) per record."""
    out = []
    for i, (loss, grad, lr) in enumerate(rows):
        out.append(f"{{'loss': {loss}, 'grad_norm': {grad}, 'learning_rate': {lr}, 'epoch': {round((i + 1) * epoch_step, 2)}}}")
    return "\n".join(out) + "\n"


def healthy(n: int, loss0: float = 1.9, grad: float = 0.3, lr: float = 2e-5, start: int = 0) -> list[tuple[object, object, float]]:
    """A slowly falling, slightly noisy loss with a small grad_norm (deterministic wiggle)."""
    rows: list[tuple[object, object, float]] = []
    for i in range(start, start + n):
        wiggle = ((i * 7919) % 13 - 6) / 100
        rows.append((round(loss0 * (1 - 0.004 * i) + wiggle * 0.3, 4), round(grad * (1 + wiggle), 4), lr))
    return rows


NAN = ("NAN_LOSS",)

CASES = [
    # An HF fp16 run (native AMP): torch's GradScaler skips a step whose gradient overflowed, HF logs that
    # step's grad_norm as inf, the loss stays finite and the next records are finite again. Seen in a
    # public HF Trainer log with one such record among 60 (find_string "'grad_norm': inf, 'learning_rate'",
    # id 58747849603); apex/torch document the skip as normal (https://github.com/NVIDIA/apex/issues/318,
    # quoted in https://github.com/facebookresearch/swav/issues/47).
    Case("fp16-isolated-inf-grad-norm", "find_string id 58747849603",
         hf(healthy(30) + [(0.1211, "inf", 2e-5)] + healthy(25, start=31)), (), NAN),
    # the same on the very first record (scale calibration from 2^16) of an fp16 O2 run whose eval loss then
    # falls: public HF log, find_string id 66253019241
    Case("fp16-first-record-inf-then-recovers", "find_string id 66253019241",
         hf([(17.42, "inf", 0.0)] + healthy(30, loss0=6.1, lr=7e-5)), (), NAN),
    # a start-up burst of a few skips, then a finite run
    Case("fp16-startup-burst-of-skips", "https://github.com/facebookresearch/swav/issues/47",
         hf([(2.61, "inf", 0.0), (2.58, "nan", 1e-6), (2.6, "inf", 2e-6)] + healthy(30, loss0=2.5)), (), NAN),
    # --- must still fire: the spine cases around the same shape
    # grad_norm nan on every record while the loss looks finite: HF's filter hides the nan loss
    # (https://github.com/LaVi-Lab/VG-LLM/issues/21)
    Case("grad-nan-every-record", "https://github.com/LaVi-Lab/VG-LLM/issues/21",
         hf([(1.6512, "nan", 1.1e-6), (1.2204, "nan", 2.2e-6), (1.1893, "nan", 3.3e-6), (1.2410, "nan", 4.4e-6)]),
         NAN, ("ZERO_LOSS",)),
    # finite, then inf/nan that never recovers (https://github.com/deepspeedai/DeepSpeed/issues/5347: 1.61, 1.51,
    # NaN, 1.43, NaN, NaN)
    Case("grad-nan-intermittent-then-stuck", "https://github.com/deepspeedai/DeepSpeed/issues/5347",
         hf(healthy(10) + [(1.71, "nan", 2e-5), (1.69, 1.38, 2e-5), (1.72, "nan", 2e-5), (1.70, "nan", 2e-5)]),
         NAN, ()),
    # loss 0.0 with grad_norm nan after a recovery-looking record is the logging_nan_inf_filter trap, not a skip
    # (https://github.com/AnswerDotAI/ModernBERT/issues/233, https://github.com/Time-MoE/Time-MoE/issues/31)
    Case("loss0-gradnan-filter-trap", "https://github.com/AnswerDotAI/ModernBERT/issues/233",
         hf(healthy(10, loss0=0.3) + [(0.0, "nan", 9.7e-6)] + healthy(5, loss0=0.25)), NAN, ("ZERO_LOSS",)),
    # skips on far more than a start-up burst and 5% of the records: the loss scale keeps collapsing
    Case("fp16-skips-too-often", "https://github.com/ymcui/Chinese-LLaMA-Alpaca/issues/534",
         hf([(r if i % 4 else (r[0], "inf", r[2])) for i, r in enumerate(healthy(40))]), NAN, ()),
    # a finite loss then a nan loss: never a skip, whatever grad_norm does later
    Case("nan-loss-once", "https://github.com/huggingface/transformers/issues/29659",
         hf(healthy(10) + [("nan", "nan", 2e-5)] + healthy(5)), NAN, ()),
]


def test_inf_on_every_record_reads_as_every_update_skipped(tmp_path) -> None:
    # a text-generation-webui fp16 LoRA log prints "Step: N {...}" with grad_norm inf on every record for two
    # epochs while the loss stays near 2.44 (find_string id 14701379767): fp16's scaler skipped every update
    text = "".join(f"Step: {4 * i + 3:6d} {line}\n" for i, line in
                   enumerate(hf([(round(2.44 + ((i * 37) % 9 - 4) / 100, 4), "inf", 1e-5 * (i + 1)) for i in range(12)])
                         .splitlines()))
    path = tmp_path / "run.log"
    path.write_text(text, encoding="utf-8")
    nan = [f for f in analyze(str(path), Options()).findings if f.id == "NAN_LOSS"]
    assert nan and "skipped every one of these steps" in nan[0].summary["en"]
    assert "logging_nan_inf_filter" not in nan[0].summary["en"]
    # its own texts: no "checkpoints hold nan weights" advice for a run whose weights never changed
    assert nan[0].title["en"].startswith("Every update skipped") and "bf16" in nan[0].remediation["en"][0]
    assert not any("nan weights" in step for step in nan[0].remediation["en"])
    # one finite record among them: not every update was skipped, so the note does not apply
    text = text.replace("'grad_norm': inf", "'grad_norm': 0.91", 1)
    path.write_text(text, encoding="utf-8")
    nan = [f for f in analyze(str(path), Options()).findings if f.id == "NAN_LOSS"]
    assert nan and "skipped every one" not in nan[0].summary["en"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_series_case(case: Case, tmp_path) -> None:
    path = tmp_path / "run.log"
    path.write_text(case.text, encoding="utf-8")
    found = {f.id for f in analyze(str(path), Options()).findings}
    for sid in case.expect:
        assert sid in found, (case.id, found)
    for sid in case.absent:
        assert sid not in found, (case.id, found)


def test_cases_are_sourced() -> None:
    assert all(c.source for c in CASES)
    assert any(c.expect for c in CASES) and any(not c.expect for c in CASES)


def _kv_log(tmp_path, losses) -> str:
    path = tmp_path / "loop.log"
    path.write_text("".join(f"step={55 * i + 1}  loss={v:.2f}  gnorm=7.0\n" for i, v in enumerate(losses)), encoding="utf-8")
    return str(path)


def test_divergence_after_learning_is_a_rebound(tmp_path) -> None:
    # a from-scratch loop falls from ~15 to ~1.4 and climbs back to ~10 (paiml/entrenar#274, same format,
    # made-up values): below its start, but far above its best
    pm = analyze(_kv_log(tmp_path, [15.5, 13.0, 3.8, 2.4, 1.4, 5.8, 7.1, 10.0]), Options())
    div = [f for f in pm.findings if f.id == "DIVERGENCE"]
    assert div and div[0].title["en"].startswith("Divergence after learning") and div[0].first_step == 386
    assert [e.step for e in div[0].evidence] == [1, 221, 386]


@pytest.mark.parametrize("losses", [
    [2.1, 1.9, 1.7, 1.2, 0.9, 1.1, 1.3, 1.2],  # noisy, ends ~1.4x its best: healthy
    [0.9, 0.5, 0.2, 0.05, 0.01, 0.02, 0.04, 0.05],  # near zero, a 5x wiggle is a few hundredths of a nat
    [15.5, 13.0, 9.0, 4.0, 3.0, 2.5, 2.4, 2.3],  # a from-scratch run that keeps learning
])
def test_no_rebound(tmp_path, losses) -> None:
    assert "DIVERGENCE" not in {f.id for f in analyze(_kv_log(tmp_path, losses), Options()).findings}
