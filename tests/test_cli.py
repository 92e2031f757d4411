"""The CLI through CliRunner: stdout and stderr apart, exit codes."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from logpost.cli import main
from tests.conftest import fixture

ZERO = fixture("generated/axolotl_dev_model_role.log")
HEALTHY = fixture("generated/hf_healthy.log")


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_terminal_zero_loss_exit_1():
    r = run("analyze", ZERO)
    assert r.exit_code == 1 and "ZERO_LOSS" in r.stdout and "line 769" in r.stdout and r.stderr == ""
    assert "\x1b[" not in r.stdout  # no colour when not a TTY


def test_healthy_exit_0():
    r = run("analyze", HEALTHY)
    assert r.exit_code == 0 and "HEALTHY" in r.stdout


def test_json_contract():
    r = run("analyze", ZERO, "-f", "json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1
    for key in ("logpost_version", "source", "framework", "verdict", "findings", "metrics"):
        assert key in doc
    f = doc["findings"][0]
    assert f["id"] == "ZERO_LOSS" and f["severity"] == "critical" and f["first_step"] == 1 and f["first_line"] == 769
    assert set(f["title"]) == {"en", "zh"} and set(f["remediation"]) == {"en", "zh"}
    assert {"line", "text", "step"} <= set(f["evidence"][0])
    assert doc["metrics"]["rows"] >= 40 and doc["metrics"]["first_step"] == 1 and doc["metrics"]["last_step"] == 40


def test_markdown_zh_to_file(tmp_path):
    out = tmp_path / "pm.md"
    r = run("analyze", ZERO, "-f", "md", "--lang", "zh", "-o", str(out))
    text = out.read_text()
    assert r.exit_code == 1 and r.stdout == ""
    assert "训练复盘报告" in text and "loss 恒为 0" in text and "Zero loss" not in text
    assert "| 769 | 1 |" in text


def test_markdown_both_interleaves():
    r = run("analyze", ZERO, "-f", "md")
    assert "Verdict / 结论" in r.stdout and r.stdout.index("Zero loss") < r.stdout.index("Metrics / 指标")


def test_stdin():
    with open(ZERO, "rb") as fh:
        r = run("analyze", "-", "-f", "json", input=fh.read())
    assert json.loads(r.stdout)["findings"][0]["id"] == "ZERO_LOSS"


def test_fail_on_critical_and_missing_file():
    assert run("analyze", ZERO, "--fail-on", "critical").exit_code == 1
    r = run("analyze", "/no/such.log")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and "no such file" in r.stderr
    r = run("analyze", ZERO, "--select", "NOPE")
    assert r.exit_code == 2 and "NOPE" in r.stderr


def test_output_is_atomic_and_input_untouched(tmp_path):
    before = os.stat(ZERO).st_mtime_ns, open(ZERO, "rb").read()
    out = tmp_path / "pm.json"
    out.write_text("old")
    run("analyze", ZERO, "-f", "json", "-o", str(out))
    assert json.loads(out.read_text())["verdict"] == "failed"
    assert (os.stat(ZERO).st_mtime_ns, open(ZERO, "rb").read()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["pm.json"]


def test_unwritable_output_is_exit_2(tmp_path):
    r = run("analyze", ZERO, "-f", "md", "-o", str(tmp_path / "missing" / "pm.md"))
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_signatures_and_explain():
    r = run("signatures", "--lang", "zh")
    assert r.exit_code == 0 and "ZERO_LOSS" in r.stdout and "loss 恒为 0" in r.stdout
    r = run("explain", "zero_loss", "--lang", "en")
    assert r.exit_code == 0 and "-100" in r.stdout
    assert run("explain", "NOPE").exit_code == 2
    r = run("explain", "HOST_OOM", "--lang", "both")  # a variant's own texts are explained too
    assert r.exit_code == 0 and "变体 shm：" in r.stdout and "Variant shm: " in r.stdout
    assert "--shm-size" in r.stdout and "可一并解释：" in r.stdout


def test_terminal_in_chinese():
    r = run("analyze", ZERO, "--lang", "zh")
    assert r.exit_code == 1 and "结论：失败" in r.stdout and "[严重] ZERO_LOSS" in r.stdout
    assert "第 769 行" in r.stdout and "verdict" not in r.stdout and "evidence" not in r.stdout


HEAVY = ("pandas", "numpy", "pyarrow", "matplotlib", "jinja2", "weasyprint")
# what a CLI process imported when it ends (atexit: also after --help, --version and completion exit)
_PROBE = ("import atexit, sys\n"
          f"atexit.register(lambda: sys.stderr.write('IMPORTED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules)))\n"
          "from logpost.cli import main\n"
          "main(prog_name='logpost')\n")


def _imported(*args, env=None):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, timeout=120)
    return r.stdout, r.stderr.rpartition("IMPORTED=")[2].split(",") if "IMPORTED=" in r.stderr else None


def test_start_up_imports_no_data_library():
    """--help, --version and shell completion pay for no data library (the start-up target: <= 0.15 s)."""
    out, heavy = _imported("--version")
    assert "logpost, version" in out and heavy == [""]
    out, heavy = _imported("--help")
    assert "analyze" in out and heavy == [""]
    out, heavy = _imported(env={"_LOGPOST_COMPLETE": "bash_complete", "COMP_WORDS": "logpost an", "COMP_CWORD": "1"})
    assert "analyze" in out and heavy == [""]
    _, heavy = _imported("analyze", HEALTHY, "-f", "json")  # the probe sees imports: analyze needs pandas
    assert heavy is not None and "pandas" in heavy
