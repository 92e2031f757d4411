"""ZERO_LOSS and NAN_LOSS on real logs: id, first step and evidence line numbers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from logpost.analyze import Options, analyze
from logpost.model import LANGS, Verdict
from logpost.signatures.registry import CATALOGUE, load_catalogue, load_signature
from tests.conftest import fixture


def ids(path: str) -> list[str]:
    return [f.id for f in analyze(fixture(path)).findings]


def finding(path: str, sig: str):
    return next(f for f in analyze(fixture(path)).findings if f.id == sig)


def test_founding_case_axolotl():
    pm = analyze(fixture("generated/axolotl_dev_model_role.log"))
    assert pm.verdict is Verdict.FAILED and pm.findings[0].id == "ZERO_LOSS"
    f = pm.findings[0]
    assert f.first_step == 1 and f.first_line == 769
    lines = [e.line for e in f.evidence]
    assert 740 in lines and lines[:4] == [740, 769, 773, 778]
    assert f.confidence >= 0.95
    assert "512" in f.summary["en"] and "roles_to_train" in f.summary["en"]
    assert "total_supervised_tokens" in f.summary["zh"]
    assert any("axolotl preprocess" in s for s in f.remediation["en"])
    assert not any("trainer.get_train_dataloader" in s for s in f.remediation["en"])  # HF-only step


@pytest.mark.parametrize("path,line", [("generated/hf_all_labels_masked_b.log", 23),
                                       ("generated/hf_all_labels_masked_b.trainer_state.json", 17)])
def test_hf_all_masked(path, line):
    f = finding(path, "ZERO_LOSS")
    assert f.first_step == 1 and f.first_line == line and f.evidence[0].step == 1
    assert any("get_train_dataloader" in s for s in f.remediation["en"])


def test_hf_all_masked_nofilter_is_zero_loss_not_blowup():
    # loss nan with grad_norm exactly 0: 0/0 over no supervised tokens
    found = ids("generated/hf_all_labels_masked_nofilter.log")
    assert found[0] == "ZERO_LOSS" and "NAN_LOSS" not in found


@pytest.mark.parametrize("path,step,line", [("generated/hf_lr_nan_1e6_nofilter.log", 4, 34),
                                            ("generated/hf_lr_nan_5e5.log", 5, 38),
                                            ("generated/hf_lr_nan_5e5.trainer_state.json", 5, 45)])
def test_nan_loss_lr_blowup(path, step, line):
    pm = analyze(fixture(path))
    assert pm.findings[0].id == "NAN_LOSS" and "ZERO_LOSS" not in [f.id for f in pm.findings]
    f = pm.findings[0]
    assert f.first_step == step and f.first_line == line


def test_hf_filter_trap_loss_zero_grad_nan():
    pm = analyze(fixture("axolotl/axo-1706-flash-attn-zero-loss-nan-gradnorm.log"))
    assert [f.id for f in pm.findings] == ["NAN_LOSS"]
    assert "logging_nan_inf_filter" in pm.findings[0].summary["en"]


@pytest.mark.parametrize("path", ["generated/hf_healthy.log", "generated/hf_healthy.trainer_state.json",
                                  "generated/axolotl_dev_healthy.log"])
def test_healthy_runs(path):
    pm = analyze(fixture(path))
    assert pm.verdict is Verdict.HEALTHY and not pm.findings


@pytest.mark.parametrize("path", ["hf/trl-3452-grpo-loss0-expected-healthy.log",
                                  "hf/trl-3857-grpo-zero-reward-std-no-gradient.log"])
def test_grpo_loss_zero_is_not_zero_loss(path):
    assert "ZERO_LOSS" not in ids(path)


def test_excerpts_zero_loss():
    assert ids("hf/fms-hf-tuning-18-completion-collator-loss0.log") == ["ZERO_LOSS"]
    f = finding("full/AolinGuo__graduate_agent__trainer_log.jsonl", "ZERO_LOSS")
    assert f.first_step == 20 and f.first_line == 2


def test_converged_small_loss_is_not_zero_loss(tmp_path):
    # a long run whose 4-decimal loss shrinks to 0.0 late, without grad_norm: converged, not masked
    lines = [f"{{'loss': {max(0.0, round(2.0 * 0.8 ** i, 4))}, 'learning_rate': 1e-05, 'epoch': {i / 100}}}"
             for i in range(1, 80)]
    p = tmp_path / "conv.log"
    p.write_text("\n".join(lines) + "\n")
    assert "ZERO_LOSS" not in [f.id for f in analyze(str(p)).findings]


def test_no_loss_at_all_is_unknown():
    pm = analyze(fixture("axolotl/axo-2608-rank0-logging-healthy-startup.log"))
    assert pm.verdict is Verdict.UNKNOWN


def test_select_ignore():
    path = fixture("generated/axolotl_dev_model_role.log")
    assert "ZERO_LOSS" not in [f.id for f in analyze(path, Options(ignore=("ZERO_LOSS",))).findings]
    assert [f.id for f in analyze(path, Options(select=("ZERO_LOSS",))).findings] == ["ZERO_LOSS"]


def test_catalogue_parity_and_samples():
    sigs = load_catalogue()
    assert {"ZERO_LOSS", "NAN_LOSS"} <= set(sigs)
    for path in sorted(CATALOGUE.glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        assert raw["id"] == path.stem
        for key in ("title", "summary", "why"):
            assert set(raw[key]) == set(LANGS)
        for step in raw["remediation"]:
            assert step["en"].strip() and step["zh"].strip()


def test_bad_user_rule_names_file(tmp_path):
    from logpost.model import InputError

    rule = tmp_path / "MY_RULE.toml"
    rule.write_text('id = "MY_RULE"\nseverity = "error"\n[title]\nen = "x"\n')
    with pytest.raises(InputError, match="MY_RULE.toml"):
        load_signature(Path(rule))
