"""XTuner / MMEngine training logs and text-generation-webui's step-prefixed dicts: the lines follow the
formats these tools print (xtuner docs and issue threads, e.g. InternLM/xtuner#187; the webui's training
tab); the numbers are made up."""

from __future__ import annotations

from logpost.analyze import analyze
from logpost.parsers import parse

ITER = """01/29 21:35:34 - mmengine - INFO - Iter(train) [ 10/720]  lr: 9.0001e-05  eta: 0:31:46  time: 2.6851  data_time: 0.0077  memory: 12762  loss: 2.6900
01/29 21:36:02 - mmengine - INFO - Iter(train) [ 20/720]  lr: 1.9000e-04  eta: 0:32:01  time: 2.8037  data_time: 0.0071  memory: 13969  loss: 2.6049  grad_norm: 0.9361
01/29 21:36:29 - mmengine - INFO - Saving checkpoint at 20 iterations
2025/02/09 07:47:19 - mmengine - INFO - Iter(train) [ 30/720]  lr: 9.7918e-06  eta: 18 days, 16:18:38  time: 115.0463  data_time: 99.0316  memory: 54047  loss: 0.0018  tflops: 4.8280  tokens_per_sec: 142.4122
"""

EPOCH = "".join(
    f"10/30 22:{18 + i // 2:02d}:{(i * 29) % 60:02d} - mmengine - INFO - Epoch(train) [{e}][{it:3d}/735]  lr: 1.9870e-04  "
    f"eta: 2:46:39  time: 2.8906  data_time: 0.0042  memory: 10762  loss: {2.7 - i / 100:.4f}  grad_norm: {g}\n"
    for i, (e, it, g) in enumerate([(1, 200, "3.0608"), (1, 210, "2.7647"), (1, 220, "nan"), (1, 230, "nan"),
                                    (2, 10, "nan"), (2, 20, "nan")]))


def write(tmp_path, text: str, name: str) -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_iter_lines_are_steps_of_the_planned_total(tmp_path):
    run = parse(write(tmp_path, ITER, "iter.log"))
    train = run.train_rows()
    assert list(train.step) == [10, 20, 30] and set(train.step_source) == {"logged"}
    assert list(train.loss) == [2.69, 2.6049, 0.0018] and list(train.learning_rate)[:2] == [9.0001e-05, 1.9e-04]
    assert train.grad_norm.iloc[1] == 0.9361 and list(train.iteration_time_s) == [2.6851, 2.8037, 115.0463]
    assert run.meta["header"]["total_steps"] == 720 and run.frameworks[0] == "mmengine"
    assert train.tokens_per_sec.iloc[2] == 142.4122


def test_epoch_lines_count_steps_across_epochs(tmp_path):
    run = parse(write(tmp_path, EPOCH, "epoch.log"))
    train = run.train_rows()
    assert list(train.step) == [200, 210, 220, 230, 745, 755]
    assert abs(train.epoch.iloc[4] - (1 + 10 / 735)) < 1e-9


def test_grad_norm_nan_in_an_xtuner_run_is_nan_loss_without_the_hf_note(tmp_path):
    pm = analyze(write(tmp_path, EPOCH, "epoch.log"))
    top = pm.findings[0]
    assert top.id == "NAN_LOSS" and top.first_step == 220 and top.first_line == 3
    assert "logging_nan_inf_filter" not in top.summary["en"]  # an HF Trainer setting: not this framework's


def test_webui_step_prefix_is_the_logged_step(tmp_path):
    text = "".join(f"Step: {s:>6} {{'loss': {2.4 - s / 1000:.4f}, 'grad_norm': 0.8, 'learning_rate': 2e-05, "
                   f"'epoch': {s / 228}}}\n" for s in (3, 7, 11, 15))
    train = parse(write(tmp_path, text, "webui.log")).train_rows()
    assert list(train.step) == [3, 7, 11, 15] and set(train.step_source) == {"logged"}


def test_custom_loop_key_value_lines(tmp_path):
    # print(f"step={step}  loss={loss:.2f}  gnorm={gn:.1f}") in a hand-written loop (e.g. paiml/entrenar#274);
    # DeepSpeed's "step=20, skipped=0, lr=[..]" stays an optimizer row
    text = ("[2024-05-01 00:00:20,140] [INFO] [logging.py:96:log_dist] [Rank 0] step=20, skipped=0, lr=[2.0e-07], "
            "mom=[(0.9, 0.999)]\n"
            "step=1    loss=15.50  gnorm=42.7\nstep=55   loss=13.00  gnorm=14.0\nepoch=0 step=100 train_loss=2.31 lr=1e-05\n"
            "step=3.5 loss=1.0\n")
    run = parse(write(tmp_path, text, "kv.log"))
    train = run.train_rows()
    assert list(train.step) == [1, 55, 100] and list(train.loss) == [15.5, 13.0, 2.31]
    assert list(train.grad_norm)[:2] == [42.7, 14.0] and train.learning_rate.iloc[2] == 1e-05
    assert (run.frame.kind == "optimizer").sum() == 1
