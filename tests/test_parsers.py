"""Parsers on real lines and real files from fixtures/corpus."""

from __future__ import annotations

import gzip
import math

import pandas as pd
import pytest

from logpost.frame import COLUMNS, logged_nonfinite
from logpost.model import InputError
from logpost.parsers import parse
from logpost.parsers.hf import parse_dict
from logpost.parsers.normalise import clean, lift_rank, split_line
from tests.conftest import fixture


def test_dict_tf4_bare_nan_and_tf5_strings():
    d4 = parse_dict("{'loss': 0.0, 'grad_norm': nan, 'learning_rate': 6.545084971874738e-06, 'epoch': 0.4}")
    assert d4["loss"] == 0.0 and math.isnan(d4["grad_norm"]) and d4["learning_rate"] == pytest.approx(6.545e-06, rel=1e-3)
    d5 = parse_dict("{'loss': '6.238', 'grad_norm': 'nan', 'learning_rate': '2e+05', 'epoch': '0.04688'}")
    assert d5["loss"] == 6.238 and math.isnan(d5["grad_norm"]) and d5["learning_rate"] == 2e5


def test_axolotl_keys_kept_and_folded():
    run = parse(fixture("generated/axolotl_dev_model_role.log"))
    f = run.frame
    assert "ppl" in f.columns and "memory/max_active (GiB)" in f.columns  # unknown keys kept
    assert (f.loc[f.kind == "train", "tokens_trainable"] == 0).all()
    assert f.loc[f.kind == "train", "tokens_total"].iloc[-1] == 20480
    assert run.meta["total_supervised_tokens"] == 0 and run.meta["total_num_tokens"] == 12342
    assert run.meta["_lines"]["total_supervised_tokens"][0] == 740
    assert run.framework == "axolotl" and run.meta["model"] == "/home/user/ft/tiny-model"


def test_declared_schema_dtypes():
    run = parse(fixture("generated/hf_healthy.log"))
    for col in COLUMNS:
        assert str(run.frame[col.name].dtype) == col.dtype, col.name


def test_hf_header_and_steps_from_epoch():
    run = parse(fixture("generated/hf_all_labels_masked_b.log"))
    h = run.meta["header"]
    assert h["total_steps"] == 40 and h["num_examples"] == 512 and h["trainable_parameters"] == 147776
    train = run.train_rows()
    assert list(train.step[:3]) == [1, 2, 3] and train.step.iloc[-1] == 40
    assert set(train.step_source) == {"epoch"} and "epoch" in run.step_method
    assert list(train.line[:3]) == [23, 27, 31]


def test_summary_and_eval_rows():
    run = parse(fixture("generated/hf_eval_overfit.log"))
    f = run.frame
    assert (f.kind == "eval").sum() >= 5 and f.loc[f.kind == "eval", "eval_loss"].notna().all()
    summary = f[f.kind == "summary"]
    assert len(summary) >= 1 and summary.train_runtime.notna().any()


def test_trainer_state_json_with_nan():
    run = parse(fixture("generated/hf_lr_nan_5e5.trainer_state.json"))
    train = run.train_rows()
    assert list(train.step[:3]) == [1, 2, 3] and set(train.step_source) == {"logged"}
    assert logged_nonfinite(train, "grad_norm").any()
    assert train.line.iloc[0] == 17  # the line of its "step" key


def test_log_metrics_table_tinyllama():
    run = parse(fixture("hf/tinyllama-153-fp16-train-metrics-eval-nan.log"))
    f = run.frame
    assert f.loc[f.kind == "summary", "train_loss"].iloc[0] == pytest.approx(0.0063)
    assert f.loc[f.kind == "summary", "train_runtime"].iloc[0] == pytest.approx(2 * 3600 + 5 * 60 + 47.06)
    assert logged_nonfinite(f[f.kind == "eval"], "eval_loss").all()


def test_normalise_cr_ansi_rank():
    parts = split_line(7, b"\x1b[33m 10%|#  | 4/40 [00:01<00:05]\r[rank3]: {'loss': 1.5}\x1b[39m\r\n")
    assert [p.no for p in parts] == [7, 7]
    assert parts[1].text == "{'loss': 1.5}" and parts[1].rank == 3
    assert clean("Traceback (most recent call last):[39m") == "Traceback (most recent call last):"
    assert lift_rank("[default7]: iteration 5")[0] == "iteration 5"
    assert lift_rank("(en-hi-spot, pid=18593) [E ProcessGroupNCCL.cpp:475] x")[0].startswith("[E ")
    assert lift_rank("ValueError: bad")[0] == "ValueError: bad"


def test_cr_redraws_share_physical_line_number(tmp_path):
    p = tmp_path / "cr.log"
    p.write_bytes(b"start\n 1%|a| 1/10 [00:01<00:09]\r{'loss': 2.0, 'learning_rate': 1e-05, 'epoch': 0.1}\r"
                  b" 2%|a| 2/10 [00:02<00:08]\n{'loss': 1.0, 'learning_rate': 1e-05, 'epoch': 0.2}\n")
    run = parse(str(p))
    assert list(run.train_rows().line) == [2, 3] and run.lines == 3


def test_gz_stdin_invalid_utf8(tmp_path, monkeypatch):
    raw = open(fixture("generated/hf_healthy.log"), "rb").read()
    gz = tmp_path / "x.log.gz"
    gz.write_bytes(gzip.compress(raw))
    assert len(parse(str(gz)).train_rows()) == 60
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"\xff\xfe garbage \xc3\n{'loss': 1.0, 'learning_rate': 0.1, 'epoch': 0.5}\n\x00\x01")
    assert len(parse(str(bad)).train_rows()) == 1


def test_missing_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        parse(str(tmp_path / "nope.log"))
    with pytest.raises(InputError, match="directory"):
        parse(str(tmp_path))


def test_traceback_event_multirank():
    run = parse(fixture("axolotl/axo-1706-flash-attn-zero-loss-nan-gradnorm.log"))
    tbs = [e for e in run.events if e.kind in ("traceback", "error")]
    assert any("illegal memory access" in e.text for e in tbs)


def test_every_corpus_file_parses(corpus):
    for path in sorted(corpus.rglob("*")):
        if path.is_file() and path.name != "labels.jsonl":
            run = parse(str(path))
            assert isinstance(run.frame, pd.DataFrame)


@pytest.mark.parametrize("path,last", [("generated/axolotl_dev_healthy.log", 40), ("generated/hf4_allmasked.log", 60),
                                       ("generated/hf4_healthy.log", 60)])
def test_steps_from_lagging_bar_start_at_one(path, last):
    # the tqdm bar drawn before a dict can lag one redraw behind; a train record is never at step 0
    train = parse(fixture(path)).train_rows()
    assert list(train.step[:3]) == [1, 2, 3] and train.step.iloc[-1] == last


def test_tqdm_postfix_metrics_of_a_custom_loop(tmp_path):
    # accelerate/diffusers loops show their loss in the bar's postfix; one record per bar position
    run = parse(fixture("deepspeed/fp16-overflow-to-1-nan-loss-accelerate-faithdiff-34.log"))
    train = run.train_rows()
    assert list(train.step) == [16, 17] and set(train.step_source) == {"progress"} and list(train.line) == [2, 3]
    assert logged_nonfinite(train, "loss").all() and (train.learning_rate == 0).all()
    p = tmp_path / "loop.log"
    bars = "".join(f"\rSteps: {i}%|#| {i}/100 [00:0{i % 10}<01:00, 1.0it/s, loss={2.0 / i:.3f}, lr=1e-05]"
                   for i in (1, 1, 2, 2, 3))
    p.write_text(bars + "\nValidation: 100%|#| 5/5 [00:01<00:00, 5.0it/s, loss=9.9]\n")
    train = parse(str(p)).train_rows()
    assert list(train.step) == [1, 2, 3] and train.loss.iloc[0] == 2.0


def test_analyze_faithdiff_overflow_explains_nan():
    from logpost.analyze import analyze

    ids = [f.id for f in analyze(fixture("deepspeed/fp16-overflow-to-1-nan-loss-accelerate-faithdiff-34.log")).findings]
    assert ids[0] == "FP16_OVERFLOW" and "NAN_LOSS" in ids


def test_critical_fatal_and_oom_kill_lines_alone_are_events(tmp_path):
    """Lines at CRITICAL/FATAL level and the kernel's oom-kill summary hold no other marker: they reach the
    event parser on their own (they were found only when some other marker happened to be on the line)."""
    p = tmp_path / "crit.log"
    p.write_text(
        "{'loss': 1.2, 'grad_norm': 3.4, 'learning_rate': 1e-05, 'epoch': 0.1}\n"
        "CRITICAL:root:checkpoint shard 3 is missing, stopping\n"
        "2024-05-01 10:00:00.000 | CRITICAL | __main__:main:42 - dataset cache is corrupt\n"
        "[FATAL] rendezvous: no peers after 600 s\n"
        "[123456.789012] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,"
        "global_oom,task_memcg=/user.slice,task=python,pid=4242,uid=1000\n",
        encoding="utf-8")
    run = parse(str(p))
    errors = {e.line: e for e in run.events if e.kind == "error"}
    assert sorted(errors) == [2, 3, 4, 5]
    assert errors[5].data.get("tag") == "killed"
