"""A scan's life and death: workers die with their scan whatever kills it (SIGKILL included), Ctrl-C and
SIGTERM stop it within a second, and the catalog stays consistent and complete across kills and
concurrent scans. These tests run real `logpost scan` processes on a tree of real corpus logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import CORPUS, ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

RUNS = 40


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUNS single-file runs (Slurm captures) and run folders copied from the corpus."""
    root = tmp_path_factory.mktemp("lifecycle") / "runs"
    logs = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".log", ".out", ".err"))
    for i in range(RUNS):
        src = logs[(i * 7) % len(logs)]
        dst = root / f"team-{i % 3}" / ("slurm" if i % 2 else f"run-{i:03d}") / (
            f"slurm-{1000 + i}.out" if i % 2 else "train.log")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return root


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "logpost", "scan", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (workers of a fork server included)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_bytes()
            except OSError:
                continue
            parent[int(d)] = int(stat.rpartition(b")")[2].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit status waits for whoever reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rpartition(b")")[2].split()[0] not in (b"Z", b"X")


def rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


def start_and_wait_for_workers(cmd: list[str], db: Path, min_rows: int = 3) -> tuple[subprocess.Popen[bytes], set[int]]:
    """Start a scan; return once it has committed ``min_rows`` runs and has worker processes."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        kids = descendants(proc.pid)
        if rows(db) >= min_rows and kids:
            return proc, kids
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the scan did not get going within 120 s")


def assert_all_gone(pids: set[int], within: float) -> None:
    deadline = time.monotonic() + within
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if running(p)]
    assert not left, f"processes still running {within} s after the scan died: {left}"


@pytest.fixture(scope="module")
def clean_scan(history: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What an uninterrupted scan of the history lists."""
    db = tmp_path_factory.mktemp("clean") / "clean.sqlite"
    clean = subprocess.run(cli(str(history), "--db", str(db), "-j", "2", "-f", "json"), cwd=ROOT, env=env(),
                           capture_output=True, timeout=600)
    assert clean.returncode == 1, clean.stderr.decode()[-2000:]
    listed = json.loads(clean.stdout)
    assert len(listed) == RUNS
    return listed


def assert_consistent_and_complete(history: Path, db: Path, clean: list[dict]) -> None:
    """The catalog passes SQLite's integrity check, a re-scan finishes it, and the result equals a clean scan."""
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = con.execute("SELECT count(*) FROM findings WHERE run NOT IN (SELECT path FROM runs)").fetchone()[0]
        assert orphans == 0
    again = subprocess.run(cli(str(history), "--db", str(db), "-j", "2", "-f", "json"), cwd=ROOT, env=env(),
                           capture_output=True, timeout=600)
    assert again.returncode == 1, again.stderr.decode()[-2000:]
    assert json.loads(again.stdout) == clean


def test_kill_9_leaves_no_worker_and_a_catalog_that_a_rescan_completes(history: Path, tmp_path: Path, clean_scan: list[dict]):
    db = tmp_path / "runs.sqlite"
    proc, workers = start_and_wait_for_workers(cli(str(history), "--db", str(db), "-j", "2", "-f", "json"), db)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert_all_gone(workers, within=3)
    assert 0 < rows(db) < RUNS, "killed after the scan had finished: the test proves nothing"
    assert_consistent_and_complete(history, db, clean_scan)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_kill_9_under_other_start_methods(history: Path, tmp_path: Path, method: str):
    """A fork server's workers are not the scan's children; they die with it all the same."""
    db = tmp_path / "runs.sqlite"
    script = textwrap.dedent(f"""
        import multiprocessing
        from logpost.scan import ScanOptions, runner, scan
        runner.pool_context = lambda: multiprocessing.get_context({method!r})
        scan([{str(history)!r}], ScanOptions(db={str(db)!r}, jobs=2))
    """)
    proc, workers = start_and_wait_for_workers([sys.executable, "-c", script], db)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert_all_gone(workers, within=3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_the_scan_within_a_second(history: Path, tmp_path: Path, sig: int, clean_scan: list[dict]):
    db = tmp_path / "runs.sqlite"
    proc, workers = start_and_wait_for_workers(cli(str(history), "--db", str(db), "-j", "2", "-f", "json"), db)
    start = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - start
    assert proc.returncode == 128 + sig
    assert took < 1.0, f"the scan took {took:.2f} s to stop"
    lines = err.decode().strip().splitlines()
    assert lines == [f"logpost: scan interrupted; the runs analysed so far are in the catalog {db}: scan again to finish"]
    assert out == b""
    assert_all_gone(workers, within=1)
    assert_consistent_and_complete(history, db, clean_scan)


def test_two_scans_on_one_catalog_at_once(history: Path, tmp_path: Path, clean_scan: list[dict]):
    """Two scans (a cron job and a user, say) on one catalog: both finish, neither corrupts it."""
    db = tmp_path / "runs.sqlite"
    half = sorted(p for p in history.iterdir())
    a = subprocess.Popen(cli(str(history), "--db", str(db), "-j", "1", "-f", "json"), cwd=ROOT, env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    b = subprocess.Popen(cli(str(half[0]), "--db", str(db), "-j", "1", "-f", "json", "--force"), cwd=ROOT,
                         env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_a, err_a = a.communicate(timeout=600)
    out_b, err_b = b.communicate(timeout=600)
    assert a.returncode == 1 and b.returncode == 1, (err_a + err_b).decode()[-2000:]
    assert err_a == err_b == b""
    listed_a, listed_b = json.loads(out_a), json.loads(out_b)
    assert len(listed_a) == RUNS and {r["run"] for r in listed_b} < {r["run"] for r in listed_a}
    assert_consistent_and_complete(history, db, clean_scan)
