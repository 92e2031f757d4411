"""What a new user meets first: the README's set-up command and the CJK font warning."""

from __future__ import annotations

import re

from click.testing import CliRunner

from logpost import cli
from logpost.report import charts
from tests.conftest import ROOT, fixture

ZERO = fixture("generated/axolotl_dev_model_role.log")


def readme_first_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## On a fresh machine", 1)[1]
    return re.search(r"```\n(.+?)\n```", section, re.S).group(1)


def test_readme_first_command_works_with_an_externally_managed_python():
    # Debian's python3 refuses a bare `pip install` (PEP 668) and ships without venv: the command installs
    # python3-venv, makes a venv, installs into it and runs logpost from it, each step only if the last worked
    steps = [s.strip() for s in readme_first_command().split("&&")]
    assert len(readme_first_command().splitlines()) == 1
    assert steps[:2] == ["apt-get update", "apt-get install -y python3-venv"]
    assert steps[2] == "python3 -m venv .venv"
    assert steps[3] == ".venv/bin/pip install -e ."
    assert steps[4].startswith(".venv/bin/logpost analyze fixtures/")
    assert (ROOT / steps[4].split()[-1]).is_file()
    assert not any(s.startswith(("pip ", "python3 -m pip", "sudo ")) for s in steps)


def test_no_cjk_font_warns_once(monkeypatch):
    monkeypatch.setattr(charts, "cjk_font", lambda: None)
    monkeypatch.setattr(cli, "_warned", set())
    runner = CliRunner()
    r = runner.invoke(cli.main, ["analyze", ZERO, "-f", "html", "--lang", "zh"])
    assert r.exit_code == 1 and "<html" in r.stdout
    assert r.stderr == "logpost: warning: no CJK font found: install fonts-noto-cjk (Chinese in a PDF would be " \
                       "boxes; plots fall back to English labels)\n"
    again = runner.invoke(cli.main, ["analyze", ZERO, "-f", "html", "--lang", "both"])  # same process: once
    assert again.exit_code == 1 and again.stderr == ""
    monkeypatch.setattr(cli, "_warned", set())
    for args in (["-f", "html", "--lang", "en"], ["-f", "md", "--lang", "zh"], ["--lang", "zh"]):  # no glyphs drawn
        assert runner.invoke(cli.main, ["analyze", ZERO, *args]).stderr == ""


def test_with_a_cjk_font_no_warning(monkeypatch):
    monkeypatch.setattr(charts, "cjk_font", lambda: "Noto Sans CJK SC")
    monkeypatch.setattr(cli, "_warned", set())
    assert CliRunner().invoke(cli.main, ["analyze", ZERO, "-f", "html", "--lang", "zh"]).stderr == ""
