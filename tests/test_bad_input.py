"""Input that cannot be read as a log never passes as a diagnosis; a file cut short is blamed, not the run."""

from __future__ import annotations

import gzip
import json
import os
import random

from click.testing import CliRunner

from logpost.cli import main
from tests.conftest import fixture

HEALTHY = fixture("generated/hf_healthy.log")
STATE = fixture("generated/hf_healthy.trainer_state.json")


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def one_line_error(r, needle):
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    assert r.stdout == "" and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr


def test_garbage_exits_2_with_the_reason(tmp_path):
    rnd = random.Random(7)
    cases = {
        "x.log.gz": (b"\x1f\x8b\x08garbage", "x.log.gz: not a valid gzip file"),
        "bad-header.log.gz": (b"\x1f\x8bnot gzip at all" * 10, "bad-header.log.gz: not a valid gzip file"),
        "random.bin": (rnd.randbytes(100_000), "random.bin: binary data, not a log"),
        "empty.log": (b"", "empty.log: empty file"),
        "zeros.log": (b"\0" * 5000 + b"\n\n", "zeros.log: no text in it"),
    }
    whole = gzip.compress(open(HEALTHY, "rb").read())
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0xFF  # corrupt compressed data in the middle
    cases["flip.log.gz"] = (bytes(flipped), "flip.log.gz: not a valid gzip file (corrupt data")
    for name, (data, needle) in cases.items():
        (tmp_path / name).write_bytes(data)
        for fmt in ("terminal", "json"):
            one_line_error(run("analyze", str(tmp_path / name), "-f", fmt), needle)
    one_line_error(run("analyze", "-", input=b""), "<stdin>: empty input")
    one_line_error(run("frame", str(tmp_path / "random.bin")), "binary data, not a log")


def test_scan_lists_garbage_as_error_rows(tmp_path):
    for name, data in (("gz", b"\x1f\x8b\x08garbage"), ("bin", random.Random(3).randbytes(50_000)),
                       ("empty", b"")):
        (tmp_path / name).mkdir()
        (tmp_path / name / ("train.log.gz" if name == "gz" else "train.log")).write_bytes(data)
    os.mkdir(tmp_path / "ok")
    (tmp_path / "ok" / "train.log").write_bytes(open(HEALTHY, "rb").read())
    r = run("scan", str(tmp_path), "--no-db", "-f", "json")
    rows = {os.path.basename(x["run"]): x for x in json.loads(r.stdout)}
    assert rows["ok"]["status"] == "ok" and rows["ok"]["verdict"] == "healthy"
    for name, needle in (("gz", "not a valid gzip file"), ("bin", "binary data, not a log"), ("empty", "empty file")):
        assert rows[name]["status"] == "error" and rows[name]["verdict"] is None and needle in rows[name]["error"]


def test_scan_of_a_folder_without_runs_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("no logs here\n")
    one_line_error(run("scan", str(tmp_path / "empty"), "--no-db"), "no runs found in")


def test_half_a_log_gz_blames_the_file_not_the_run(tmp_path):
    whole = gzip.compress(open(HEALTHY, "rb").read())
    path = tmp_path / "train.log.gz"
    path.write_bytes(whole[: len(whole) // 2])
    r = run("analyze", str(path), "-f", "json")
    doc = json.loads(r.stdout)
    cut = doc["input"]["truncated"]
    assert cut["file"] == str(path) and cut["line"] == doc["run"]["lines"] and cut["byte"] > 0
    assert "EARLY_TERMINATION" not in [f["id"] for f in doc["findings"]]  # (the whole file: no finding either)
    assert 0 < doc["metrics"]["train_records"] < 60
    term = run("analyze", str(path))
    assert f"The file {path} is cut short: it ends mid-write at line {cut['line']} (byte {cut['byte']})" in term.stdout
    md = run("analyze", str(path), "-f", "md", "--lang", "zh").stdout
    assert f"文件 {path} 不完整：在第 {cut['line']} 行" in md and "文件在此处被截断" in md
    assert json.loads(run("analyze", HEALTHY, "-f", "json").stdout)["input"] == {"truncated": None}


def test_half_a_trainer_state_blames_the_file(tmp_path):
    raw = open(STATE, "rb").read()
    path = tmp_path / "trainer_state.json"
    path.write_bytes(raw[: len(raw) // 2])
    doc = json.loads(run("analyze", str(path), "-f", "json").stdout)
    assert doc["input"]["truncated"] == {"file": str(path), "line": raw[: len(raw) // 2].count(b"\n") + 1,
                                         "byte": len(raw) // 2}
    html = run("analyze", str(path), "-f", "html", "--lang", "en").stdout
    assert "is cut short" in html and "File cut short here" in html
