"""What a Jupyter/Colab run shows, pasted into a log or an issue: NotebookProgressCallback's metric table
(``Step | Training Loss | Validation Loss | <metrics>``; tab-separated when copied from the HTML table,
pipes from a Markdown render), its ``[80/80 02:02, Epoch 0/1]`` progress line, ``TrainOutput(...)``,
and Unsloth's start-up banner (shared/formats/hf.md section 1; unsloth#2291, #1957). The lines below
follow those formats; the numbers are made up."""

from __future__ import annotations

import math

import pytest

from logpost.analyze import analyze
from logpost.parsers import parse

UNSLOTH_2024 = """==((====))==  Unsloth - 2x faster free finetuning | Num GPUs = 1
   \\\\   /|    Num examples = 3,011 | Num Epochs = 1
O^O/ \\_/ \\    Batch size per device = 2 | Gradient Accumulation steps = 4
\\        /    Total batch size = 8 | Total steps = 80
 "-____-"     Number of trainable parameters = 83,886,080
"""
UNSLOTH_2025 = """==((====))==  Unsloth - 2x faster free finetuning | Num GPUs used = 1
   \\\\   /|    Num examples = 3,011 | Num Epochs = 1 | Total steps = 80
O^O/ \\_/ \\    Batch size per device = 2 | Gradient accumulation steps = 4
\\        /    Data Parallel GPUs = 1 | Total batch size (2 x 4 x 1) = 8
 "-____-"     Trainable parameters = 83,886,080 of 7,000,000,000 (1.20% trained)
"""


def write(tmp_path, text: str, name: str = "nb.log") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def table(header: str, rows: list[str]) -> str:
    return header + "\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("banner", [UNSLOTH_2024, UNSLOTH_2025], ids=["2024", "2025"])
def test_unsloth_banner_is_the_header(tmp_path, banner):
    rows = [f"{i}\t{2.0 - i / 100:.6f}" for i in range(1, 81)]
    run = parse(write(tmp_path, banner + " [80/80 02:02, Epoch 0/1]\n" + table("Step\tTraining Loss", rows)))
    h = run.meta["header"]
    assert (h["num_examples"], h["total_steps"], h["gradient_accumulation_steps"], h["total_batch_size"]) == (3011, 80, 4, 8)
    assert h["trainable_parameters"] == 83886080
    train = run.train_rows()
    assert list(train.step) == list(range(1, 81)) and set(train.step_source) == {"logged"}
    assert train.loss.iloc[0] == 2.0 - 1 / 100 and train.line.iloc[0] == banner.count("\n") + 3
    (prog,) = [e for e in run.events if e.data.get("tag") == "progress"]
    assert prog.data["step"] == prog.data["total"] == 80


def test_validation_columns_become_an_eval_record(tmp_path):
    header = "Step\tTraining Loss\tValidation Loss\tWer\tAccuracy"
    rows = ["400\t0.926500\t0.484265\t27.917695\t0.337017", "800\t0.033500\t0.587064\t25.168724\t0.348066"]
    run = parse(write(tmp_path, table(header, rows)))
    ev = run.frame[run.frame.kind == "eval"]
    assert list(ev.step) == [400, 800] and list(ev.eval_loss) == [0.484265, 0.587064]
    assert list(ev.eval_accuracy) == [0.337017, 0.348066] and "eval_wer" in run.frame
    assert list(run.train_rows().loss) == [0.9265, 0.0335]


def test_epoch_table_with_pipes_and_no_log(tmp_path):
    rows = ["| 1 | No log | 0.693100 | 0.50 |", "| 2 | 0.612300 | 0.590000 | 0.70 |", "| 3 | 0.400000 | 0.650000 | 0.69 |"]
    run = parse(write(tmp_path, table("| Epoch | Training Loss | Validation Loss | Accuracy |", rows)))
    f = run.frame
    assert list(f[f.kind == "eval"].epoch) == [1.0, 2.0, 3.0]
    assert list(run.train_rows().loss) == [0.6123, 0.4]  # "No log": the first epoch has no training loss


def test_markdown_rule_dots_and_blank_lines_inside_a_table(tmp_path):
    text = ("Step | Training Loss | reward | reward_std | completions / mean_length | kl\n"
            "|------|------|------|------|------|------|\n| 1 | 0.000000 | 0.125 | 0.33 | 180.5 | 0.000000 |\n"
            "       .\n\n| 40 | 0.000000 | 0.5 | 0.41 | 170.2 | 0.000012 |\nend of paste\n")
    run = parse(write(tmp_path, text))
    train = run.train_rows()
    assert list(train.step) == [1, 40] and list(train["completions/mean_length"]) == [180.5, 170.2]
    assert list(train.reward) == [0.125, 0.5]


def test_table_ends_at_the_first_line_that_is_not_a_row(tmp_path):
    text = table("Step\tTraining Loss", ["10\t1.5", "20\t1.4"]) + "30\tsaving checkpoint\n40\t1.2\n"
    assert list(parse(write(tmp_path, text)).train_rows().step) == [10, 20]


def test_prose_mentioning_training_loss_is_not_a_table(tmp_path):
    text = "Training Loss: 0.5 at step 10\nStep 10: Training Loss went down\n10\t0.5\n"
    assert len(parse(write(tmp_path, text)).frame) == 0


def test_train_output_is_the_summary_only_when_none_was_printed(tmp_path):
    out = ("TrainOutput(global_step=250, training_loss=1.3423775177001953, metrics={'train_runtime': 1383.1959, "
           "'train_samples_per_second': 1.446, 'train_steps_per_second': 0.181, 'total_flos': 309533448536064.0, "
           "'train_loss': 1.3423775177001953, 'epoch': 0.4})\n")
    run = parse(write(tmp_path, table("Step\tTraining Loss", ["100\t1.479000", "200\t1.248000"]) + out))
    (summary,) = run.frame[run.frame.kind == "summary"].itertuples()
    assert summary.step == 250 and math.isclose(summary.train_loss, 1.3423775177001953) and run.meta["completed"]
    printed = "{'train_runtime': 1383.2, 'train_samples_per_second': 1.446, 'train_loss': 1.3424, 'epoch': 0.4}\n"
    run = parse(write(tmp_path, printed + out, "script.log"))
    assert (run.frame.kind == "summary").sum() == 1 and run.meta["summary_line"] == 1


def test_zero_loss_table_is_zero_loss(tmp_path):
    rows = [f"{i}\t0.000000" for i in range(1, 61)]
    pm = analyze(write(tmp_path, UNSLOTH_2024 + table("Step\tTraining Loss", rows)))
    assert pm.findings[0].id == "ZERO_LOSS" and pm.findings[0].evidence[0].line == UNSLOTH_2024.count("\n") + 2


def test_grpo_table_with_zero_loss_is_not_zero_loss(tmp_path):
    rows = [f"{i}\t0.000000\t0.{i}\t0.3\t0.00{i}" for i in range(1, 41)]
    pm = analyze(write(tmp_path, table("Step\tTraining Loss\treward\treward_std\tkl", rows)))
    assert "ZERO_LOSS" not in {f.id for f in pm.findings}


def test_overfitting_from_a_notebook_table(tmp_path):
    # validation loss climbs from 7.7 to 16.6 while the training loss goes to ~0
    train = [0.2213, 0.1886, 0.1514, 0.1276, 0.0499, 0.0221, 0.0105, 0.0033, 0.0007]
    val = [7.697577, 9.043961, 10.823417, 12.390569, 13.886422, 15.212621, 15.839497, 16.389404, 16.644392]
    rows = [f"{500 * (i + 1)}\t{t:.6f}\t{v:.6f}" for i, (t, v) in enumerate(zip(train, val, strict=True))]
    pm = analyze(write(tmp_path, table("Step\tTraining Loss\tValidation Loss", rows)))
    assert "OVERFITTING" in {f.id for f in pm.findings}


# ms-swift prints HF-style dicts that carry their own step (bare floats in older releases, quoted strings
# in newer ones), glued to its "Train:" bar, which is not the bare training bar.
SWIFT = """Train:   0%|          | 0/60 [00:00<?, ?it/s][INFO:swift] use_logits_to_keep: True
Train:   2%|▏         | 1/60 [00:42<41:47, 42.51s/it]{'loss': '0.3713', 'grad_norm': '0.8901', 'learning_rate': '3.333e-05', 'token_acc': '0.921', 'epoch': '0.08602', 'global_step/max_steps': '1/60', 'elapsed_time': '43s', 'remaining_time': '41m 48s', 'memory(GiB)': '14.3', 'train_speed(s/it)': '42.51'}
Train:   8%|▊         | 5/60 [03:52<43:40, 47.64s/it]{'loss': 0.2992, 'grad_norm': 0.6541, 'learning_rate': 9.97e-05, 'token_acc': 0.9285, 'epoch': 0.43, 'global_step/max_steps': '5/60', 'percentage': '8.33%', 'elapsed_time': '3m 52s', 'remaining_time': '43m 40s', 'memory(GiB)': 14.3, 'train_speed(iter/s)': 0.021}
{'eval_loss': 0.31, 'eval_token_acc': 0.93, 'eval_runtime': 9.85, 'epoch': 0.43, 'global_step/max_steps': '5/60', 'percentage': '8.33%'}
"""


def test_swift_dicts_carry_their_step(tmp_path):
    run = parse(write(tmp_path, SWIFT, "swift.log"))
    f = run.frame
    assert list(run.train_rows().step) == [1, 5] and set(run.train_rows().step_source) == {"logged"}
    assert list(f[f.kind == "eval"].step) == [5] and run.meta["header"]["total_steps"] == 60
    assert run.frameworks[0] == "swift" and "hf" in run.frameworks
    assert "global_step/max_steps" not in f and list(run.train_rows().token_acc) == [0.921, 0.9285]


ARGS = """05/28/2024 10:20:35 - INFO - __main__ - Training/evaluation parameters TrainingArguments(
_n_gpu=1,
accelerator_config={'split_batches': False, 'dispatch_batches': None, 'even_batches': True},
bf16=False,
deepspeed=ds_z2.json,
fp16=True,
learning_rate=2e-05,
logging_nan_inf_filter=True,
lr_scheduler_type=SchedulerType.COSINE,
max_grad_norm=1.0,
max_steps=-1,
optim=OptimizerNames.ADAMW_TORCH,
output_dir=out,
)
{'loss': 2.1, 'grad_norm': 1.0, 'learning_rate': 1e-05, 'epoch': 0.01}
"""


def test_training_arguments_dump_becomes_run_settings(tmp_path):
    run = parse(write(tmp_path, ARGS, "args.log"))
    m = run.meta
    assert (m["fp16"], m["bf16"], m["dtype"], m["learning_rate"], m["max_grad_norm"]) == (True, False, "fp16", 2e-05, 1.0)
    assert (m["lr_scheduler_type"], m["optim"], m["deepspeed"]) == ("cosine", "adamw_torch", "ds_z2.json")
    assert "max_steps" not in m  # -1 means "train by epochs", not a planned total
    assert m["_lines"]["fp16"][0] == 6 and "output_dir" not in m
    assert len(run.train_rows()) == 1  # the dump ends at ")": the dict after it is read as usual


def test_training_arguments_on_one_line(tmp_path):
    line = ("TrainingArguments(output_dir='out', learning_rate=5e-05, fp16=False, bf16=True, max_grad_norm=0.3, "
            "lr_scheduler_type=<SchedulerType.LINEAR: 'linear'>, warmup_steps=100)\n")
    m = parse(write(tmp_path, line, "args1.log")).meta
    assert (m["learning_rate"], m["bf16"], m["dtype"], m["max_grad_norm"], m["warmup_steps"]) == (5e-05, True, "bf16", 0.3, 100)
    assert m["lr_scheduler_type"] == "linear"
