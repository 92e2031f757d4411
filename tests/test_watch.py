"""``logpost watch`` on a real log being written by another process, and tail -F on rotation and truncation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from logpost.watch import Follower
from tests.conftest import fixture

ZERO = fixture("generated/hf_all_labels_masked_b.log")
HEALTHY = fixture("generated/hf_healthy.log")


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """``logpost watch`` in a process of its own, once it is up (it says it waits for the file)."""
    proc = subprocess.Popen([sys.executable, "-m", "logpost", "watch", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "waiting for" in line, line
    return proc


def _write(path: Path, source: str, pause: float, marks: dict[str, float], stop: threading.Event) -> None:
    """Append the real log line by line, as a trainer prints it; note when each zero-loss record was written."""
    zeros = 0
    with open(path, "ab") as fh:
        for line in Path(source).read_bytes().splitlines(keepends=True):
            if stop.is_set():
                return
            fh.write(line)
            fh.flush()
            if b"{'loss': '0'," in line:
                zeros += 1
                marks.setdefault(f"zero{zeros}", time.monotonic())
            time.sleep(pause)
    marks["end"] = time.monotonic()


def _run_writer(path: Path, source: str, pause: float) -> tuple[dict[str, float], threading.Event, threading.Thread]:
    marks: dict[str, float] = {}
    stop = threading.Event()
    t = threading.Thread(target=_write, args=(path, source, pause, marks, stop), daemon=True)
    t.start()
    return marks, stop, t


def test_exits_1_within_1s_of_the_third_zero_loss_record(tmp_path: Path) -> None:
    proc = _start(["train.log", "--exit-on", "critical", "--on-finding", "cat >> hook.jsonl"], tmp_path)
    marks, stop, writer = _run_writer(tmp_path / "train.log", ZERO, 0.2)
    try:
        code = proc.wait(timeout=60)
        exited = time.monotonic()
    finally:
        stop.set()
        writer.join()
    out = proc.stdout.read() if proc.stdout else ""
    assert code == 1
    assert "ZERO_LOSS" in out and out.count("ZERO_LOSS (") == 1
    assert "zero3" in marks and "zero5" not in marks  # it stopped while the log was still being written
    assert exited - marks["zero3"] <= 1.0, f"{exited - marks['zero3']:.2f} s"
    hook = [json.loads(x) for x in (tmp_path / "hook.jsonl").read_text().splitlines()]
    assert [h["id"] for h in hook] == ["ZERO_LOSS"] and hook[0]["severity"] == "critical"
    assert hook[0]["evidence"][0]["line"] is not None


def test_exits_0_by_itself_within_5s_after_a_healthy_log_ends(tmp_path: Path) -> None:
    proc = _start(["train.log"], tmp_path)
    marks, stop, writer = _run_writer(tmp_path / "train.log", HEALTHY, 0.01)
    writer.join()
    code = proc.wait(timeout=60)
    exited = time.monotonic()
    err = proc.stderr.read() if proc.stderr else ""
    assert code == 0, err
    assert exited - marks["end"] <= 5.0, f"{exited - marks['end']:.2f} s"
    assert "the run finished" in err


def test_ctrl_c_writes_the_postmortem_so_far(tmp_path: Path) -> None:
    lines = Path(ZERO).read_bytes().splitlines(keepends=True)
    cut = next(i for i, x in enumerate(lines) if b"{'loss': '0'," in x)
    proc = _start(["train.log", "--report-dir", "pm"], tmp_path)
    (tmp_path / "train.log").write_bytes(b"".join(lines[:cut + 6]))
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    assert code == 1  # ZERO_LOSS is critical, at or above the default --fail-on error
    assert "interrupted" in (proc.stderr.read() if proc.stderr else "")
    report = json.loads((tmp_path / "pm" / "postmortem.json").read_text())
    assert [f["id"] for f in report["findings"]][:1] == ["ZERO_LOSS"]
    assert (tmp_path / "pm" / "postmortem.md").exists() and (tmp_path / "pm" / "postmortem.html").exists()


def test_a_healthy_log_already_written_gives_its_postmortem(tmp_path: Path) -> None:
    (tmp_path / "train.log").write_bytes(Path(HEALTHY).read_bytes())
    proc = subprocess.run([sys.executable, "-m", "logpost", "watch", "train.log", "--report-dir", "pm"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "pm" / "postmortem.json").read_text())["verdict"] == "healthy"


def test_idle_timeout_ends_a_quiet_watch(tmp_path: Path) -> None:
    proc = _start(["train.log", "--idle-timeout", "1"], tmp_path)
    (tmp_path / "train.log").write_bytes(b"starting\n")
    assert proc.wait(timeout=60) == 0
    assert "--idle-timeout" in (proc.stderr.read() if proc.stderr else "")


def test_follower_waits_rotates_and_truncates(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    f = Follower(str(path))
    assert f.read() == (b"", False)  # not there yet
    path.write_bytes(b"one\ntwo\n")
    assert f.read()[0] == b"one\ntwo\n"
    with open(path, "ab") as fh:
        fh.write(b"three\n")
    os.rename(path, tmp_path / "a.log.1")  # rotated: the old file ends, a new one takes the name
    with open(tmp_path / "a.log.1", "ab") as fh:
        fh.write(b"four\n")
    path.write_bytes(b"five\n")
    got = b""
    for _ in range(3):
        got += f.read()[0]
    assert got == b"three\nfour\nfive\n"
    assert any("rotated" in n for n in f.notes)
    path.write_bytes(b"")  # truncated in place (copytruncate)
    with open(path, "ab") as fh:
        fh.write(b"six\n")
    assert f.read()[0] == b"six\n"
    assert any("truncated" in n for n in f.notes)
    f.close()


def test_unknown_signature_id_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "logpost", "watch", "x.log", "--select", "NOPE"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "NOPE" in proc.stderr


def test_a_run_directory_is_followed(tmp_path: Path) -> None:
    run = tmp_path / "exp7"
    run.mkdir()
    (run / "README.txt").write_text("not a log\n")  # skipped as run_files skips it
    proc = _start([str(run), "--exit-on", "critical", "--report-dir", "pm"], tmp_path)
    marks, stop, writer = _run_writer(run / "train.log", ZERO, 0.05)
    try:
        code = proc.wait(timeout=60)
    finally:
        stop.set()
        writer.join()
    assert code == 1
    assert "ZERO_LOSS" in (proc.stdout.read() if proc.stdout else "")
    report = json.loads((tmp_path / "pm" / "postmortem.json").read_text())
    assert report["findings"][0]["id"] == "ZERO_LOSS"
