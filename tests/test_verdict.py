"""The verdict rule (#13): "healthy" only with evidence of a normal end or, for an excerpt, enough steps
with a sound loss trend; 2-8 metric rows are "unknown" (too little to judge); a false all-clear is the
worst answer."""

from __future__ import annotations

from logpost.analyze import MIN_EXCERPT_RECORDS, analyze
from logpost.model import Verdict
from tests.conftest import CORPUS

ROW = "{{'loss': {loss}, 'grad_norm': 0.6215, 'learning_rate': 2e-05, 'epoch': {epoch}}}"


def rows(losses):
    return "\n".join(ROW.format(loss=v, epoch=round(0.01 * (i + 1), 2)) for i, v in enumerate(losses)) + "\n"


def verdict_of(tmp_path, text):
    path = tmp_path / "run.log"
    path.write_text(text, encoding="utf-8")
    return analyze(str(path)).verdict


def test_a_finished_run_is_healthy():
    assert analyze(str(CORPUS / "generated/hf_healthy.log")).verdict is Verdict.HEALTHY
    # the final summary alone is a normal end (LLaMA-Factory's v0 summary, transformers 5 strings)
    assert analyze(str(CORPUS / "hf/llamafactory-pr10488-v0-final-summary-tf5-strings.log")).verdict is Verdict.HEALTHY


def test_an_excerpt_of_ten_falling_losses_is_healthy():
    # transformers#29659: 10 records of a bf16 LoRA run, loss 2.0 -> 1.4
    assert analyze(str(CORPUS / "hf/transformers-29659-gemma-tpu-lora-bf16-gradnorm.log")).verdict is Verdict.HEALTHY


def test_two_to_eight_rows_are_too_little_to_judge(tmp_path):
    # torchtitan#1437: 8 healthy steps, no end: unknown, not healthy
    assert analyze(str(CORPUS / "deepspeed/healthy-torchrun-rank-prefix-torchtitan-1437.log")).verdict is Verdict.UNKNOWN
    for n in range(2, MIN_EXCERPT_RECORDS):
        assert verdict_of(tmp_path, rows([1.9 - 0.05 * i for i in range(n)])) is Verdict.UNKNOWN, n
    assert verdict_of(tmp_path, rows([1.9 - 0.05 * i for i in range(MIN_EXCERPT_RECORDS)])) is Verdict.HEALTHY


def test_enough_rows_with_a_rising_loss_are_not_healthy(tmp_path):
    rising = [1.2, 1.25, 1.3, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1]  # x1.6, below DIVERGENCE's x2: no finding
    assert verdict_of(tmp_path, rows(rising)) is Verdict.UNKNOWN


def test_a_whole_log_that_stops_mid_run_is_not_healthy(tmp_path):
    head = ("[INFO|trainer.py:2078] 2024-06-01 16:22:16,125 >> ***** Running training *****\n"
            "[INFO|trainer.py:2086] 2024-06-01 16:22:16,125 >>   Total optimization steps = 250\n")
    pm_text = head + rows([1.9 - 0.02 * i for i in range(30)])
    path = tmp_path / "run.log"
    path.write_text(pm_text, encoding="utf-8")
    pm = analyze(str(path))
    assert pm.verdict is Verdict.DEGRADED
    (f,) = pm.findings
    assert f.id == "EARLY_TERMINATION" and f.facts["last_step"] == 30 and f.facts["total"] == 250
    assert "step 30 of 250 (12% of the run done)" in f.summary["en"]
