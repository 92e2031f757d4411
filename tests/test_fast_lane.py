"""The parsers' fast lanes (LineParser.fast) change nothing: every fixture, and generated mixes of the
lines they take with the lines that could interfere, give the same RunLog with the lanes on and off."""

from __future__ import annotations

import glob
import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import logpost.parsers as parsers
from logpost.parsers import deepspeed, hf, parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = sorted(f for f in glob.glob(os.path.join(ROOT, "fixtures", "**", "*"), recursive=True)
                  if os.path.isfile(f) and f.endswith((".log", ".txt", ".out", ".gz", ".jsonl", ".json")))

BAR = "  0%|▎         | 30/100 [00:30<01:10, 0.99s/it]"
DICT = "{'loss': 4.0413, 'grad_norm': 1.04, 'learning_rate': 1e-07, 'epoch': 0.01}"
DS_STEP = ("[2024-05-01 00:22:00,240] [INFO] [logging.py:96:log_dist] [Rank 0] step=20, skipped=1, "
           "lr=[1.9e-05, 1.9e-05], mom=[(0.9, 0.95), (0.9, 0.95)]")


def snapshot(path: str) -> tuple[object, ...]:
    run = parse(path)
    return (run.frame.to_csv(), [repr(e) for e in run.events], repr(sorted(run.meta.items(), key=str)),
            run.frameworks, run.lines, run.texts, run.step_method)


def both(path: str, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[object, ...], tuple[object, ...]]:
    fast = snapshot(path)
    monkeypatch.setattr(parsers, "FAST", False)
    slow = snapshot(path)
    monkeypatch.setattr(parsers, "FAST", True)
    return fast, slow


def test_lanes_take_the_lines_they_are_for():
    assert hf._FAST.fullmatch((BAR + DICT).encode()).group("text") == DICT.encode()
    assert hf._FAST.fullmatch(DICT.encode() + b"  ")
    assert deepspeed._FAST.fullmatch(DS_STEP.encode())
    # DeepSpeed's logger writes its step line while tqdm's bar is drawn (logging_steps 1): glued to it
    assert deepspeed._FAST.fullmatch((BAR + DS_STEP).encode()).group("text") == DS_STEP.encode()
    # what must take the generic path: a launcher prefix, a described bar, a postfix with metrics, colour
    for raw in ("[rank1]:" + DICT, "Training:  30%|▎ | 30/100 [00:30<01:10]" + DICT,
                "30%|▎ | 30/100 [00:30<01:10, loss=1.2]" + DICT, "\x1b[33m" + DICT, DICT[:-1] + ", 'x': '[RANK:1]'}"):
        assert not hf._FAST.fullmatch(raw.encode()), raw
    # a bar in another encoding (GB18030 can pair a high byte with the "|" after it) is not for the lane
    assert not hf._FAST.fullmatch(b"  0%|\xb0| 3/10 [00:03<00:07]" + DICT.encode())


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: os.path.relpath(p, ROOT))
def test_fixtures_same_with_and_without_lanes(path, monkeypatch):
    fast, slow = both(path, monkeypatch)
    assert fast == slow


# lines the lanes take, and lines that open state the lanes must respect (tables, tracebacks, follow); the
# dense shape of logging_steps 1: a DeepSpeed step line glued to a bar, a dict after redraws and tqdm.write's blank
LINES = [BAR + DICT, DICT, "\r".join([BAR, BAR, BAR + DICT]), BAR + "\r" + DICT, DS_STEP,
         "\r" + BAR + DS_STEP, "\r" + BAR.replace("30/", "31/") + "\r" + BAR + "\r" + " " * len(BAR) + "\r" + DICT,
         "\r" + BAR + "\r" + " " * len(BAR) + "\r{'loss': '4.041', 'grad_norm': '1.04', 'tokens/trainable': 40, "
         "'epoch': '0.01'}",
         "Step\tTraining Loss\n\r" + BAR + "\rChildFailedError:\n  time : 2024\n\r" + BAR + "\r" + DICT,
         "[2024-05-01 00:22:00,241] [INFO] [timer.py:260:stop] epoch=0/micro_step=40/global_step=20, "
         "RunningAvgSamplesPerSec=12.5, CurrSamplesPerSec=12.1, MemAllocated=3.2GB, MaxMemAllocated=9.8GB",
         "***** train metrics *****", "  train_loss = 0.1", "Traceback (most recent call last):",
         '  File "a.py", line 1, in f', "ValueError: x", "[rank1]: " + DICT, "TrainingArguments(", "bf16=True,",
         ")", "Step\tTraining Loss\tValidation Loss", "10\t2.5\t2.6", "UserWarning: padding", "",
         "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity",
         " of 79.1 GiB of which 1.5 GiB is free.", "***** Running training *****", "  Total optimization steps = 100",
         "{'eval_loss': 2.1, 'epoch': 0.5}", "{'note': 'ERROR: CUDA error: an illegal memory access'}", "{'train_runtime': 12.0, 'train_loss': 2.2, 'epoch': 1.0}"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(LINES), max_size=60))
def test_generated_mixes_same_with_and_without_lanes(tmp_path, monkeypatch, lines):
    assume(any(x.strip() for x in lines))  # (blank input is not a log: an error either way)
    path = tmp_path / "mix.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fast, slow = both(str(path), monkeypatch)
    assert fast == slow


def test_a_followed_redraw_line_reads_its_own_bar(tmp_path, monkeypatch):
    # inside a follow window (the header's), a dict glued after bar redraws is at the bar before it in its own
    # line, with the lanes on or off (the generic path once read a followed line's parts all at its start)
    path = tmp_path / "follow.log"
    path.write_text("***** Running training *****\n" + "\r".join([BAR, BAR, BAR + DICT]) + "\n"
                    + BAR.replace("30/", "31/") + DICT + "\n", encoding="utf-8")
    fast, slow = both(str(path), monkeypatch)
    assert fast == slow
    frame = parse(str(path)).frame
    assert frame["step"].tolist() == [30, 31] and frame["step_source"].tolist() == ["progress", "progress"]


def test_lanes_wait_while_a_parser_holds_state(tmp_path, monkeypatch):
    # a metrics table longer than its follow window is still open when the DeepSpeed step line comes:
    # the generic path closes it there, so the lane must not take that line
    rows = [f"  metric_{i} = {i}.5" for i in range(45)]
    path = tmp_path / "table.log"
    path.write_text("\n".join(["***** train metrics *****", *rows, DS_STEP, "***** eval metrics *****",
                               "  eval_loss = 1.5", BAR + DICT]) + "\n", encoding="utf-8")
    fast, slow = both(str(path), monkeypatch)
    assert fast == slow


def test_bar_step_reads_the_last_bare_training_bar():
    assert hf._bar_step(BAR.encode(), 100) == 30
    assert hf._bar_step(BAR.encode(), 200) is None  # another bar's total
    assert hf._bar_step(b"Tokenizing Prompts:  50%|##| 5/10 [00:01<00:01]", None) is None
    two = b"Tokenizing Prompts:  50%|##| 5/10 [00:01<00:01] 30%|###| 3/10 [00:03<00:07]"
    assert hf._bar_step(two, None) == 3
    assert hf._bar_step(b" 30%|###| 3/10 [00:03<00:07] 40%|####| 4/10 [00:04<00:06]", None) == 4


# Metric dicts of many shapes and value forms: the lane's short path (learnt shapes, rows) must read them
# exactly as the generic dict parser and Builder.record do, packed or not.
KEYS = ["loss", "grad_norm", "learning_rate", "epoch", "eval_loss", "eval_runtime", "train_runtime", "train_loss",
        "lr", "step", "tokens/trainable", "rewards/chosen", "memory/max_active (GiB)", "Step:", "global_step/max_steps",
        "num_tokens", "x y", "ppl", "memory/max_active (GiB)", "model_name_or_path", "TrainOutput(", "trainable params",
        "Training Loss"]
VALUES = ["1.0", "0", "3", "-2.5e-07", "1e+05", "nan", "inf", "-inf", "'0.0003'", "'0'", "'abc'", "True", "None",
          "tensor(1.5, device='cuda:0')", "1_000", "1.2.3", "'10/1000'", "1.7976931348623157e+308"]


@st.composite
def dict_lines(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.sampled_from(KEYS[:6]) | st.sampled_from(KEYS), min_size=1, max_size=6))
    body = ", ".join(f"'{k}': {draw(st.sampled_from(VALUES[:4]) | st.sampled_from(VALUES))}" for k in keys)
    line = "{" + body + "}"
    return draw(st.sampled_from(["", BAR, BAR + "\r" + BAR])) + line + draw(st.sampled_from(["", "  "]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(dict_lines(), min_size=1, max_size=12), st.lists(st.integers(0, 11), max_size=40))
def test_generated_dicts_same_with_and_without_lanes(tmp_path, monkeypatch, shapes, picks):
    from logpost.parsers.base import Records

    monkeypatch.setattr(Records, "BATCH", 4)  # rows and dicts packed together, as in a large log
    monkeypatch.setattr(Records, "TAIL", 2)
    lines = shapes + [shapes[i % len(shapes)] for i in picks]  # shapes repeat: learnt, then matched
    path = tmp_path / "dicts.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fast, slow = both(str(path), monkeypatch)
    assert fast == slow
