"""Evidence names its file and that file's physical line, in a run directory too (every output)."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from logpost.cli import main
from tests.conftest import fixture

LOG = fixture("generated/hf_all_labels_masked_nofilter.log")
STATE = fixture("generated/hf_all_labels_masked_nofilter.trainer_state.json")


def run(*args):
    return CliRunner().invoke(main, list(args))


def run_dir(tmp_path, log=LOG):
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(log, d / "train.log")
    shutil.copy(STATE, d / "trainer_state.json")
    return d


def physical_line(path, no):
    return open(path, encoding="utf-8").read().split("\n")[no - 1]


@pytest.mark.parametrize("log", [LOG, fixture("deepspeed/cuda-oom-zero3-rm-init-one-gpu-full-llamafactory-1936.log")])
def test_run_directory_evidence_cites_each_file_and_its_line(tmp_path, log):
    d = run_dir(tmp_path, log)
    doc = json.loads(run("analyze", str(d), "-f", "json").stdout)
    items = [e for f in doc["findings"] for e in f["evidence"] if e["line"] is not None]
    assert items and all(e["file"] for e in items)
    for e in items:  # the cited line of the cited file holds the record: its step, or its text
        line = physical_line(e["file"], e["line"])
        if e["file"].endswith("trainer_state.json"):
            assert line.strip() == f'"step": {e["step"]}' or line.strip() == f'"step": {e["step"]},', (e, line)
        else:
            assert e["text"][:40] in " ".join(line.split()) or e["text"][:40] in line, (e, line)
    if log != LOG:  # the OOM is cited from the console capture
        assert any(e["file"].endswith("train.log") for e in items)
        return
    first = items[0]
    short = first["file"].split("/")[-1]
    term = run("analyze", str(d)).stdout
    assert f"    {short} line {first['line']} step {first['step']}: " in term
    md = run("analyze", str(d), "-f", "md").stdout
    assert f"| {short}:{first['line']} | {first['step']} |" in md
    html = run("analyze", str(d), "-f", "html").stdout
    assert f'<span class="file">{short}:</span>' in html


def test_single_log_evidence_names_the_file_in_json_only(tmp_path):
    doc = json.loads(run("analyze", LOG, "-f", "json").stdout)
    assert {e["file"] for f in doc["findings"] for e in f["evidence"] if e["line"] is not None} == {LOG}
    assert "hf_all_labels_masked_nofilter.log line" not in run("analyze", LOG).stdout
