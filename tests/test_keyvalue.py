"""The generic metric-line reader (parsers/keyvalue.py) and Megatron iterations spread over several lines:
loss, grad norm, learning rate and step recognised by their names, aliases and namespaces."""

from __future__ import annotations

import math

from logpost.analyze import analyze
from logpost.parsers import parse
from logpost.parsers.keyvalue import read_pairs

# verl's console metrics (the #13 example): one line per step, "key:value" joined by " - "
VERL = ("(main_task pid=12345) step:1 - train/loss:2.31 - train/grad_norm:1.2 - train/lr:1e-06\n"
        "(main_task pid=12345) step:2 - train/loss:2.29 - train/grad_norm:1.1 - train/lr:1e-06\n"
        "(main_task pid=12345) step:3 - train/loss:nan - train/grad_norm:0.0 - train/lr:1e-06\n")
# recent Megatron-LM: one iteration's pairs over several lines (#13)
MEGATRON = (
    " [2025-01-01 10:00:00] iteration        5/      50 | consumed samples:          160 | "
    "elapsed time per iteration (ms): 1234.5 |\n"
    " learning rate: 1.000000E-05 | global batch size:    32 |\n"
    " lm loss: 2.345678E+00 | loss scale: 1.0 | grad norm: nan |\n"
    " number of skipped iterations:   0 | number of nan iterations:   1 |\n"
    " [2025-01-01 10:00:10] iteration       10/      50 | consumed samples:          320 | "
    "elapsed time per iteration (ms): 1234.5 |\n"
    " learning rate: 1.000000E-05 | global batch size:    32 |\n"
    " lm loss: 2.245678E+00 | loss scale: 1.0 | grad norm: 0.912 |\n")


def write(tmp_path, text):
    path = tmp_path / "run.log"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_verl_pairs_become_train_rows(tmp_path):
    run = parse(write(tmp_path, VERL))
    train = run.train_rows()
    assert list(train["step"]) == [1, 2, 3]
    assert list(train["grad_norm"]) == [1.2, 1.1, 0.0] and list(train["learning_rate"]) == [1e-06] * 3
    assert math.isnan(train["loss"].iloc[2]) and train["nonfinite"].iloc[2] == "loss"
    pm = analyze(write(tmp_path, VERL))
    assert pm.findings[0].id == "NAN_LOSS" and pm.findings[0].first_step == 3


def test_aliases_namespaces_and_separators():
    values, step, kind = read_pairs("Epoch 1 | Step 120/2000 | loss: 1.8342 | lr: 2.0e-05 | grad_norm: 0.913")
    assert (kind, step) == ("train", 120)
    assert values == {"loss": 1.8342, "learning_rate": 2e-05, "grad_norm": 0.913, "total_steps": 2000}
    values, step, kind = read_pairs("iter 300: loss 2.41, time 81.2ms, mfu 12.3%")  # nanoGPT
    assert (kind, step, values) == ("train", 300, {"loss": 2.41})
    values, step, kind = read_pairs("global_step=40 actor/pg_loss=0.012 actor/grad_norm=0.35 val/loss=1.9")
    assert (kind, step) == ("train", 40) and values == {"loss": 0.012, "grad_norm": 0.35, "eval_loss": 1.9}
    values, step, kind = read_pairs("step: 7 val_loss: 1.234")
    assert (kind, step, values) == ("eval", 7, {"eval_loss": 1.234})


def test_a_number_called_loss_alone_is_no_record():
    assert read_pairs("Using loss: 0.5 label smoothing") is None  # no step, no second training metric
    assert read_pairs("critic/loss: 0.3 - critic/grad_norm: 1.0") is None  # a namespace that is not training
    assert read_pairs("loss_type: sigmoid") is None


def test_megatron_iteration_over_several_lines(tmp_path):
    run = parse(write(tmp_path, MEGATRON))
    train = run.train_rows()
    assert list(train["step"]) == [5, 10] and list(train["loss"]) == [2.345678, 2.245678]
    assert list(train["learning_rate"]) == [1e-05, 1e-05]
    assert math.isnan(train["grad_norm"].iloc[0]) and train["nonfinite"].iloc[0] == "grad_norm"
    assert train["grad_norm"].iloc[1] == 0.912 and train["nan_iterations"].iloc[0] == 1
    pm = analyze(write(tmp_path, MEGATRON))
    assert pm.findings[0].id == "NAN_LOSS" and pm.findings[0].first_step == 5
