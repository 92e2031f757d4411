"""The terminal report at the terminal's width: prose wrapped with words intact and indented under its
label, evidence lines cut around the part that matters."""

from __future__ import annotations

from click.testing import CliRunner

from logpost.cli import main
from logpost.report.render import focus, text_width, wrap
from tests.conftest import fixture

ZERO = fixture("generated/axolotl_dev_model_role.log")
NCCL = fixture("deepspeed/nccl-timeout-after-6h-tqdm-pytorch-118369.log")


def term(*args, columns=80):
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(main, ["analyze", *args]).stdout


def test_wrapped_to_the_terminal_with_words_intact():
    for lang in ("en", "zh"):
        for columns in (60, 80, 120):
            out = term(ZERO, "--lang", lang, columns=columns)
            lines = out.splitlines()
            # (a word longer than the line, such as a path, keeps a line of its own, whole)
            too_wide = [x for x in lines[1:] if text_width(x) > columns and " " in x.strip()]
            assert not too_wide, too_wide
    en = term(ZERO, "--lang", "en").splitlines()
    summary = [x for x in en if x.startswith("  ")]
    words = " ".join(" ".join(x.split()) for x in summary).split()
    assert "tokens/trainable:" in words and "roles_to_train." in words  # no word split across lines
    step2 = next(i for i, x in enumerate(en) if x.startswith("  2. "))
    assert en[step2 + 1].startswith("     ") and not en[step2 + 1].startswith("      ")  # under its text
    piped = CliRunner().invoke(main, ["analyze", ZERO]).stdout  # into a pipe: one line per paragraph
    assert any(len(x) > 200 for x in piped.splitlines())


def test_evidence_keeps_the_part_that_matters():
    out = term(ZERO)
    assert "… total_supervised_tokens: 0" in out
    assert "line 769 step 1: {'loss': '0', … 'tokens/trainable': 0" in out
    nccl = term(NCCL)
    assert "ran for 25624887 milliseconds" in nccl


def test_focus_and_wrap_on_text():
    line = "[2026-01-01 10:00:00,000] [INFO] [x.y] " + "a" * 200 + " WorkNCCL(...) ran for 123 milliseconds end"
    out = focus(line, 60)
    assert len(out) <= 60 and "ran for 123 milliseconds" in out and out.startswith("… ")
    assert focus("short line", 60) == "short line"
    assert wrap("一二三四五六七八九十，一二三四", 10, "  ", "  ") == ["  一二三四", "  五六七八", "  九十，一", "  二三四"]
    assert wrap("word " * 5, None) == ["word word word word word"]
