"""Reading logpost's output as a new user: terminal details, stdin at a terminal, signatures header."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from click.testing import CliRunner

from logpost.cli import main
from tests.conftest import ROOT, fixture

ZERO = fixture("generated/axolotl_dev_model_role.log")
DICT = "{'loss': 1.5, 'grad_norm': 0.5, 'learning_rate': 1e-05, 'epoch': 0.1}\n"


def run(*args, input=None, env=None):
    return CliRunner(env=env).invoke(main, list(args), input=input)


def test_closing_hint_shows_the_real_path_and_the_first_finding():
    out = run("analyze", ZERO).stdout.splitlines()[-1]
    assert out == (f"full postmortem: logpost analyze {ZERO} -f html -o postmortem.html · one signature: "
                   "logpost explain ZERO_LOSS")
    zh = run("analyze", ZERO, "--lang", "zh").stdout.splitlines()[-1]
    assert f"logpost analyze {ZERO} -f html --lang zh" in zh and "logpost explain ZERO_LOSS --lang zh" in zh


def test_one_record_is_singular():
    assert "(1 training record)" in run("analyze", "-", input=DICT).stdout
    assert "（1 条训练记录）" in run("analyze", "-", "--lang", "zh", input=DICT).stdout
    assert "(40 training records)" in run("analyze", ZERO).stdout


def test_signatures_has_a_header():
    en = run("signatures").stdout.splitlines()
    assert en[0].split() == ["ID", "SEVERITY", "STATUS", "TITLE"] and en[1].split()[0] == "CHECKPOINT_ERROR"
    zh = run("signatures", "--lang", "zh").stdout.splitlines()
    assert zh[0].split() == ["编号", "级别", "状态", "标题"]
    assert not any(w in line.split()[1] for line in zh[1:] for w in ("critical", "error", "warning", "info"))


def _tty_run(args, env, feed=None, timeout=60):
    """logpost with stdout and stdin on a pseudo-terminal; returns (exit code, terminal output, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "logpost", *args], stdin=slave, stdout=slave,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    os.close(slave)
    if feed is not None:
        time.sleep(0.5)
        os.write(master, feed)
    out, deadline = b"", time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
    proc.wait(timeout=max(1, deadline - time.time()))
    while select.select([master], [], [], 0.1)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.returncode, out.decode("utf-8", "replace"), proc.stderr.read().decode()


def test_stdin_at_a_terminal_says_so_and_one_ctrl_d_ends_it():
    env = {**os.environ, "LANG": "C.UTF-8"}
    env.pop("NO_COLOR", None)
    code, out, err = _tty_run(["analyze", "-"], env, feed=DICT.encode() + b"\x04")
    assert err.startswith("logpost: reading the log from stdin (paste it, then Ctrl-D on an empty line")
    assert code == 0 and "1 training record" in out


def test_no_color_is_honoured_on_a_terminal():
    env = {**os.environ, "LANG": "C.UTF-8"}
    env.pop("NO_COLOR", None)
    code, out, _ = _tty_run(["analyze", ZERO], env)
    assert code == 1 and "\x1b[" in out  # a terminal: coloured
    code, out, _ = _tty_run(["analyze", ZERO], {**env, "NO_COLOR": "1"})
    assert code == 1 and "ZERO_LOSS" in out and "\x1b[" not in out


def test_check_options_match_analyze_and_junk_says_what_was_expected(tmp_path):
    data = str(ROOT / "fixtures" / "check" / "data" / "trl_prompt_completion.jsonl")
    as_json = run("check", data, "--layout", "prompt-completion", "-f", "json")
    assert as_json.exit_code in (0, 1) and as_json.stdout.startswith("{")
    assert run("check", data, "--layout", "prompt-completion", "--format", "json").stdout == as_json.stdout
    assert run("check", data, "--layout", "prompt-completion", "--output-format", "json").stdout == as_json.stdout
    old = run("check", data, "--format", "prompt-completion")  # the layout's name before 0.2, given alone
    assert old.exit_code == as_json.exit_code and old.stdout == run("check", data, "--layout", "prompt-completion").stdout
    junk = tmp_path / "junk.log"
    junk.write_text("Epoch 1: it went fine\nnot json either\n")
    r = run("check", str(junk))
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "expects an Axolotl config (.yml/.yaml) or a dataset of JSON rows" in r.stderr
    assert f"a training log is read by `logpost analyze {junk}`" in r.stderr


def test_scan_table_fits_80_columns(tmp_path):
    from logpost.scan.outputs import _width

    deep = tmp_path / "cluster" / "team-a" / "2026-12-01" / "llama-70b-sft-lr2e-5-zero3-run-0042-retry"
    deep.mkdir(parents=True)
    (deep / "train.log").write_bytes(open(ZERO, "rb").read())
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train.log").write_bytes(b"")
    r = run("scan", str(tmp_path), "--no-db", env={"COLUMNS": "80"})
    lines = r.stdout.splitlines()
    assert r.exit_code == 1 and max(_width(x) for x in lines) <= 80, "\n".join(lines)
    failed = next(x for x in lines if x.startswith("FAILED"))
    assert "ZERO_LOSS +1" in failed and "…" in failed and failed.endswith("-retry")  # the end of the path kept
    assert "empty file" in next(x for x in lines if x.startswith("ERROR"))  # the reason, not the path
    wide = run("scan", str(tmp_path), "--no-db", env={"COLUMNS": "200"}).stdout
    assert "ZERO_LOSS,UNTRAINABLE_TURNS" in wide and "cluster/team-a/2026-12-01/llama-70b-sft" in wide
    piped = run("scan", str(tmp_path), "--no-db").stdout  # into a pipe or a file: nothing is cut
    assert "cluster/team-a/2026-12-01/llama-70b-sft-lr2e-5-zero3-run-0042-retry" in piped


def test_html_on_a_phone_stacks_its_tables_and_zh_code_stays_monospace(tmp_path):
    import re

    html = run("analyze", ZERO, "-f", "html").stdout
    phone = html.split("@media screen and (max-width: 640px)")[1].split("\n}\n")[0]
    for rule in ("table.evidence thead, table.timeline thead { display: none; }",
                 "table.evidence td[data-k]::before, table.timeline td[data-k]::before { content: attr(data-k)",
                 "figure.chart { overflow-x: auto; }"):
        assert rule in phone
    tables = re.findall(r'<table class="(?:evidence|timeline[^"]*)">.*?</table>', html, re.S)
    cells = [c for t in tables for c in re.findall(r'<td class="n[^"]*"( data-k="[^"]*")?>', t)]
    assert len(tables) >= 3 and cells and all(k in (' data-k="line"', ' data-k="step"') for k in cells)
    assert "code, .logline, table.code td, :lang(zh) code, :lang(zh) .logline" in html  # (after :lang(zh) {...})
    out = tmp_path / "site" / "index.html"
    out.parent.mkdir()
    runs = tmp_path / "runs" / "a"
    runs.mkdir(parents=True)
    (runs / "train.log").write_bytes(open(ZERO, "rb").read())
    run("scan", str(tmp_path / "runs"), "--no-db", "-f", "html", "-o", str(out), "--report-dir",
        str(out.parent / "reports"))
    index = out.read_text()
    assert index.count('<table class="stack">') == 2 and "table.stack td[data-k]::before" in index
    assert 'data-k="Framework"' in index and ".plot svg { min-width: 560px" in index
    link = re.search(r'href="(reports/[^"]+)"', index).group(1)
    assert link.endswith(".html") and (out.parent / link).read_text().startswith("<!DOCTYPE html>")
    assert "1 run · " in index and "1 runs" not in index
