"""logpost scan: discovery, the SQLite catalog, incremental re-scans, parallel runs, outputs, the CLI.

Trees are built in tmp_path from copies of real corpus logs (plain, gzipped, run folders with
several files); expectations come from the labelled corpus and from ``analyze`` on the same files.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import logpost
from tests.conftest import CORPUS, ROOT


def _use_this_checkouts_templates() -> None:
    """An editable install of another checkout may map ``logpost.templates`` elsewhere; the scan
    templates and strings under test are this checkout's."""
    import logpost.templates as current

    here = ROOT / "templates"
    if Path(current.__file__).resolve().parent == here.resolve():
        return
    spec = importlib.util.spec_from_file_location("logpost.templates", here / "__init__.py",
                                                  submodule_search_locations=[str(here)])
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules["logpost.templates"] = mod
    logpost.templates = mod  # type: ignore[attr-defined]
    from logpost.report.context import strings

    strings.cache_clear()


_use_this_checkouts_templates()

from logpost.analyze import Options, analyze  # noqa: E402
from logpost.cli import main  # noqa: E402
from logpost.model import InputError  # noqa: E402
from logpost.scan import ScanOptions, discover, parse_filters, primary_log, query, scan  # noqa: E402
from logpost.scan.catalog import Catalog  # noqa: E402
from logpost.scan.outputs import render  # noqa: E402

ZERO = CORPUS / "generated" / "axolotl_dev_model_role.log"
ZERO_HF = CORPUS / "generated" / "hf_all_labels_masked_b.log"
ZERO_STATE = CORPUS / "generated" / "hf_all_labels_masked_b.trainer_state.json"
HEALTHY = CORPUS / "generated" / "hf_healthy.log"
HEALTHY_STATE = CORPUS / "generated" / "hf_healthy.trainer_state.json"
NAN = CORPUS / "generated" / "hf_lr_nan_5e5.log"
NAN_EXCERPT = CORPUS / "hf" / "gemma-sft-24-fp16-loss-nan-intermittent.log"
JSONL_ZERO = CORPUS / "full" / "AolinGuo__graduate_agent__trainer_log.jsonl"
OOM_ERR = CORPUS / "full" / "gtseligas__lcn-llama__train.err"


def _copy(src: Path, dst: Path, gz: bool = False) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with open(src, "rb") as fi, gzip.open(dst, "wb") as fo:
            fo.write(fi.read())
    else:
        shutil.copyfile(src, dst)
    return dst


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small cluster history: run folders, a Slurm log folder, checkpoints, a bad run, a link loop."""
    root = tmp_path / "runs"
    # an Axolotl run folder: console capture + a debug copy; the capture (largest) is analysed
    _copy(ZERO, root / "team-a" / "zero-axolotl" / "train.log")
    _copy(HEALTHY, root / "team-a" / "zero-axolotl" / "debug.log")
    # an HF output_dir with no console capture: trainer_state.json of checkpoints only (latest wins)
    _copy(HEALTHY_STATE, root / "team-a" / "hf-out" / "checkpoint-10" / "trainer_state.json")
    _copy(ZERO_STATE, root / "team-a" / "hf-out" / "checkpoint-40" / "trainer_state.json")
    # a gzipped capture in a run folder
    _copy(NAN, root / "team-b" / "nan-run" / "stdout.log.gz", gz=True)
    # a Slurm folder of unrelated jobs: each file is a run
    _copy(HEALTHY, root / "slurm" / "slurm-101.out")
    _copy(ZERO_HF, root / "slurm" / "slurm-102.out")
    _copy(JSONL_ZERO, root / "slurm" / "llamafactory_trainer_log.jsonl")
    # job.out + job.err share a stem: one run folder
    _copy(NAN_EXCERPT, root / "team-b" / "job-7" / "job.out")
    _copy(OOM_ERR, root / "team-b" / "job-7" / "job.err")
    # a corrupt gzip: an error row, the scan goes on
    bad = root / "team-b" / "broken" / "train.log.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 20)
    # noise: not logs, hidden folders, wandb, a link loop and a second link to a run
    (root / "team-a" / "zero-axolotl" / "config.yaml").write_text("base_model: x\n")
    _copy(HEALTHY, root / ".trash" / "old" / "train.log")
    _copy(HEALTHY, root / "team-a" / "zero-axolotl" / "wandb" / "run-1" / "files" / "output.log")
    os.symlink(root, root / "team-a" / "loop")
    os.symlink(root / "team-b" / "nan-run", root / "nan-link")
    return root


def rel(root: Path, rows) -> dict[str, object]:
    return {os.path.relpath(r.path, root): r for r in rows}


# ------------------------------------------------------------------ discovery


def test_discovery_rules(tree: Path):
    runs = {os.path.relpath(s.path, tree): s for s in discover([str(tree)])}
    assert set(runs) == {"team-a/zero-axolotl", "team-a/hf-out", "team-b/nan-run", "team-b/job-7",
                         "team-b/broken", "slurm/slurm-101.out", "slurm/slurm-102.out",
                         "slurm/llamafactory_trainer_log.jsonl"}
    assert runs["team-a/zero-axolotl"].kind == "dir" and runs["slurm/slurm-101.out"].kind == "file"
    assert len(runs["team-a/zero-axolotl"].files) == 2  # train.log, debug.log (not config.yaml, not wandb/)
    assert [os.path.relpath(f.path, tree) for f in runs["team-a/hf-out"].files] == [
        "team-a/hf-out/checkpoint-10/trainer_state.json", "team-a/hf-out/checkpoint-40/trainer_state.json"]


def test_primary_log_choice(tree: Path):
    runs = {os.path.relpath(s.path, tree): s for s in discover([str(tree)])}
    pick = {k: os.path.relpath(primary_log(s), tree) for k, s in runs.items()}
    assert pick["team-a/zero-axolotl"] == "team-a/zero-axolotl/train.log"  # capture before debug.log
    assert pick["team-a/hf-out"] == "team-a/hf-out/checkpoint-40/trainer_state.json"  # latest checkpoint
    assert pick["team-b/job-7"] == "team-b/job-7/job.err"  # the larger capture
    assert pick["team-b/nan-run"] == "team-b/nan-run/stdout.log.gz"


def test_discovery_of_a_file_and_missing_root(tree: Path):
    one = tree / "team-a" / "zero-axolotl" / "config.yaml"
    assert [s.kind for s in discover([str(one)])] == ["file"]  # named on the command line: a run whatever its name
    with pytest.raises(InputError, match="no such file"):
        discover([str(tree / "nope")])


def test_corpus_folders_are_folders_of_single_file_runs():
    specs = discover([str(CORPUS)])
    logs = [p for p in CORPUS.rglob("*") if p.is_file() and p.name != "labels.jsonl"]
    assert {s.path for s in specs} == {str(p) for p in logs}


# ------------------------------------------------------------------ scan + catalog


def _opts(tmp_path: Path, **kw) -> ScanOptions:
    return ScanOptions(db=str(tmp_path / "runs.sqlite"), **{"jobs": 1, **kw})


def test_scan_matches_analyze_and_isolates_bad_runs(tree: Path, tmp_path: Path):
    result = scan([str(tree)], _opts(tmp_path, jobs=2))
    rows = rel(tree, result.rows)
    assert result.discovered == result.analyzed == len(rows) == 8
    assert rows["team-b/broken"].status == "error" and "train.log.gz" in rows["team-b/broken"].error
    assert result.errors == 1
    for key, row in rows.items():
        if row.status == "error":
            continue
        pm = analyze(row.primary_log)  # the catalog says what a direct analysis says
        assert (row.verdict, row.finding_ids) == (pm.verdict.value, [f.id for f in pm.findings]), key
    assert rows["team-a/zero-axolotl"].finding_ids[0] == "ZERO_LOSS"
    assert rows["team-a/zero-axolotl"].framework == "axolotl"
    assert rows["team-a/hf-out"].finding_ids == ["ZERO_LOSS"]  # checkpoint-40's state, not checkpoint-10's
    assert rows["team-b/nan-run"].finding_ids == ["NAN_LOSS"]
    assert rows["slurm/slurm-101.out"].verdict == "healthy" and rows["slurm/slurm-101.out"].loss_min < 1.1
    assert rows["team-a/zero-axolotl"].duration == pytest.approx(7.872)
    # most urgent first: the error row, then failed runs, healthy last
    states = [r.state for r in result.rows]
    assert states[0] == "error" and states[-1] == "healthy"
    assert states == sorted(states, key=["error", "failed", "degraded", "unknown", "healthy"].index)


def test_rescan_is_incremental(tree: Path, tmp_path: Path):
    first = scan([str(tree)], _opts(tmp_path))
    again = scan([str(tree)], _opts(tmp_path))
    assert again.analyzed == 1  # only the error row is retried
    assert [(r.path, r.verdict, r.finding_ids) for r in again.rows] == \
        [(r.path, r.verdict, r.finding_ids) for r in first.rows]
    # a log that grew is re-analysed, and its verdict follows the new content
    grown = tree / "slurm" / "slurm-101.out"
    with open(grown, "ab") as out, open(ZERO_HF, "rb") as more:
        out.write(more.read())
    third = scan([str(tree)], _opts(tmp_path))
    assert third.analyzed == 2
    assert rel(tree, third.rows)["slurm/slurm-101.out"].finding_ids == ["ZERO_LOSS"]
    # another signature selection is another analysis: every run again
    fourth = scan([str(tree)], _opts(tmp_path, jobs=2, analysis=Options(ignore=("ZERO_LOSS",))))
    assert fourth.analyzed == fourth.discovered
    assert "ZERO_LOSS" not in {i for r in fourth.rows for i in r.finding_ids}


USER_RULE = """
id = "CUDA_OOM"
severity = "error"
status = "preview"
[title]
en = "CUDA out of memory"
zh = "显存不足（CUDA OOM）"
[summary]
en = "The GPU ran out of memory."
zh = "GPU 显存不够用了。"
[why]
en = "A batch needed more GPU memory than was free."
zh = "某个 batch 需要的显存超过了剩余显存。"
[[remediation]]
en = "Lower the micro-batch size or the sequence length."
zh = "调小 micro batch size 或序列长度。"
[[patterns]]
regex = "CUDA out of memory"
samples = ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB."]
"""


def test_user_rules_reach_the_workers_and_are_part_of_the_fingerprint(tree: Path, tmp_path: Path, monkeypatch):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "CUDA_OOM.toml").write_text(USER_RULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # a relative rules folder, as typed on a command line
    first = scan([str(tree)], _opts(tmp_path, jobs=2, analysis=Options(rules=("rules",))))
    assert rel(tree, first.rows)["team-b/job-7"].finding_ids == ["CUDA_OOM"]  # job.err holds the OOM
    # editing the rule is a new catalogue: every run is analysed again
    (tmp_path / "rules" / "CUDA_OOM.toml").write_text(USER_RULE.replace('"error"', '"warning"'), encoding="utf-8")
    second = scan([str(tree)], _opts(tmp_path, jobs=2, analysis=Options(rules=("rules",))))
    assert second.analyzed == second.discovered
    assert rel(tree, second.rows)["team-b/job-7"].verdict == "degraded"


def test_catalog_is_sqlite_wal_with_findings_and_summaries(tree: Path, tmp_path: Path):
    scan([str(tree)], _opts(tmp_path))
    con = sqlite3.connect(tmp_path / "runs.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    zero = str(tree / "team-a" / "zero-axolotl")
    steps, first, low, last, fw, model = con.execute(
        "SELECT last_step, loss_first, loss_min, loss_last, framework, model FROM runs WHERE path = ?",
        (zero,)).fetchone()
    assert (steps, first, low, last, fw, model) == (40, 0.0, 0.0, 0.0, "axolotl", "/home/user/ft/tiny-model")
    assert con.execute("SELECT id, severity FROM findings WHERE run = ?", (zero,)).fetchall() == [
        ("ZERO_LOSS", "critical"), ("UNTRAINABLE_TURNS", "warning")]


def test_killed_scan_keeps_committed_runs_and_resumes(tree: Path, tmp_path: Path):
    db = tmp_path / "runs.sqlite"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from logpost.scan import ScanOptions, scan
        def progress(done, total, outcome):
            if done == 3:
                os._exit(9)  # as if killed: no cleanup, no close
        scan([{str(tree)!r}], ScanOptions(db={str(db)!r}, jobs=1), progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]
    with Catalog.open(str(db)) as cat:
        committed = cat.known()
    assert len(committed) == 3
    resumed = scan([str(tree)], _opts(tmp_path))
    retried = sum(1 for v in committed.values() if v[2] == "error")
    assert resumed.analyzed == resumed.discovered - 3 + retried
    assert len(resumed.rows) == 8


def test_queries_answer_from_the_catalog_alone(tree: Path, tmp_path: Path):
    scan([str(tree)], _opts(tmp_path))
    db = str(tmp_path / "runs.sqlite")
    shutil.rmtree(tree)  # no log left to read
    zero = query(db, parse_filters(signature="zero_loss"))
    assert {os.path.basename(r.path) for r in zero.rows} == {
        "zero-axolotl", "hf-out", "slurm-102.out", "llamafactory_trainer_log.jsonl"}
    assert {r.state for r in query(db, parse_filters(verdict="error")).rows} == {"error"}
    assert {r.framework for r in query(db, parse_filters(framework="llamafactory")).rows} == {"llamafactory"}
    assert query(db, parse_filters(since="2999-01-01")).rows == []
    assert len(query(db, parse_filters(until="2999-01-01")).rows) == 8
    both = query(db, parse_filters(signature="ZERO_LOSS,NAN_LOSS", verdict="failed"))
    assert len(both.rows) == 5 and all(r.verdict == "failed" for r in both.rows)


def test_scan_flags_runs_that_disappeared(tree: Path, tmp_path: Path):
    scan([str(tree)], _opts(tmp_path))
    shutil.rmtree(tree / "slurm")
    result = scan([str(tree)], _opts(tmp_path))
    assert len(result.rows) == 5
    everything = query(str(tmp_path / "runs.sqlite"))
    gone = [r for r in everything.rows if not r.present]
    assert len(everything.rows) == 8 and {os.path.dirname(r.path) for r in gone} == {str(tree / "slurm")}


def test_report_dir_and_reports_are_written_once(tree: Path, tmp_path: Path):
    reports = tmp_path / "reports"
    result = scan([str(tree)], _opts(tmp_path, report_dir=str(reports)))
    ok = [r for r in result.rows if r.status == "ok"]
    assert all(r.report and Path(r.report).parent == reports for r in ok)
    zero = rel(tree, result.rows)["team-a/zero-axolotl"]
    text = Path(zero.report).read_text()
    assert "ZERO_LOSS" in text and "loss 恒为 0" in text
    again = scan([str(tree)], _opts(tmp_path, report_dir=str(reports)))
    assert again.analyzed == 1  # reports exist: only the error row is retried
    elsewhere = scan([str(tree)], _opts(tmp_path, report_dir=str(tmp_path / "other")))
    assert elsewhere.analyzed == elsewhere.discovered  # a new report folder needs the postmortems


# ------------------------------------------------------------------ outputs and the CLI


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_json_shape_and_exit_codes(tree: Path, tmp_path: Path):
    db = str(tmp_path / "runs.sqlite")
    r = run("scan", str(tree), "--db", db, "-f", "json", "-j", "2")
    assert r.exit_code == 1 and r.stderr == ""
    doc = json.loads(r.stdout)
    assert len(doc) == 8
    for item in doc:
        assert {"run", "status", "verdict", "findings", "error"} <= set(item)
        assert item["status"] in ("ok", "error")
        assert (item["error"] is None) == (item["status"] == "ok")
        assert all(isinstance(i, str) for i in item["findings"])
    broken = next(i for i in doc if i["run"].endswith("broken"))
    assert broken["status"] == "error" and broken["verdict"] is None
    healthy_only = run("scan", "--db", db, "--verdict", "healthy", "-f", "json")
    assert healthy_only.exit_code == 0 and {i["verdict"] for i in json.loads(healthy_only.stdout)} == {"healthy"}
    assert run("scan", "--db", db, "--fail-on", "critical").exit_code == 1


def test_cli_csv_terminal_md(tree: Path, tmp_path: Path):
    db = str(tmp_path / "runs.sqlite")
    run("scan", str(tree), "--db", db)
    r = run("scan", "--db", db, "--signature", "ZERO_LOSS", "--since", "2000-01-01", "--verdict", "failed",
            "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 4 and {x["findings"].split()[0] for x in rows} == {"ZERO_LOSS"}
    table = run("scan", str(tree), "--db", db).stdout
    assert table.splitlines()[0].split()[:2] == ["VERDICT", "FINDINGS"]
    assert "\x1b[" not in table and "8 runs: 1 not analysed (error), 6 failed, 1 healthy" in table
    assert "team-a/zero-axolotl" in table  # relative to the scanned folder
    md = run("scan", str(tree), "--db", db, "-f", "md").stdout
    assert "# Training runs / 训练运行总览" in md and "| `ZERO_LOSS` · Zero loss" in md


def test_cli_html_index_is_self_contained_escaped_and_links_reports(tree: Path, tmp_path: Path):
    nasty = tree / "<script>alert(1)</script>"
    _copy(ZERO, nasty / "train.log")
    out = tmp_path / "site" / "index.html"
    out.parent.mkdir()
    reports = tmp_path / "site" / "reports"
    r = run("scan", str(tree), "--db", str(tmp_path / "runs.sqlite"), "-f", "html", "-o", str(out),
            "--report-dir", str(reports))
    assert r.exit_code == 1 and r.stdout == ""
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for fetch in ('src="', "url(http", "url(//", "@import", 'href="http', 'href="//', "<link", "<script"):
        assert fetch not in html  # nothing is fetched: CSS and the plot are inline
    assert "<svg" in html and "结论随时间的变化" in html and "Verdicts over time" in html
    assert "按故障特征统计" in html and "ZERO_LOSS" in html
    links = [line.split('href="')[1].split('"')[0] for line in html.splitlines() if 'href="reports/' in line]
    assert len(links) == 8  # every analysed run links to its postmortem
    assert all((out.parent / link).is_file() for link in links)
    assert all(link.endswith(".html") and "<html" in (out.parent / link).read_text()[:300] for link in links)
    again = tmp_path / "again.html"
    run("scan", "--db", str(tmp_path / "runs.sqlite"), "-f", "html", "-o", str(again))
    plot = html.split('<div class="plot">')[1].split("</div>")[0]
    assert again.read_text().split('<div class="plot">')[1].split("</div>")[0] == plot  # deterministic SVG


def test_cli_usage_errors(tmp_path: Path):
    r = run("scan", str(tmp_path / "nope"), "--db", str(tmp_path / "x.sqlite"))
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and "no such file" in r.stderr
    r = run("scan", "--db", str(tmp_path / "none.sqlite"))
    assert r.exit_code == 2 and "no catalog" in r.stderr
    r = run("scan", "--db", str(tmp_path / "none.sqlite"), "--since", "last tuesday")
    assert r.exit_code == 2 and "--since" in r.stderr
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text " * 100)
    r = run("scan", str(CORPUS / "hf"), "--db", str(junk))
    assert r.exit_code == 2 and "not a logpost catalog" in r.stderr and "Traceback" not in r.stderr
    r = run("scan", str(CORPUS / "hf"), "--db", str(tmp_path / "y.sqlite"), "--select", "NOPE")
    assert r.exit_code == 2 and "NOPE" in r.stderr
    r = run("scan", "--no-db")
    assert r.exit_code == 2 and "--no-db needs a PATH" in r.stderr


def test_default_db_location(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("LOGPOST_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    r = run("scan", str(CORPUS / "hf"), "-f", "json")
    assert r.exit_code == 1 and (tmp_path / "data" / "logpost" / "runs.sqlite").is_file()
    logs = [p for p in (CORPUS / "hf").iterdir() if p.is_file()]
    assert len(json.loads(run("scan", "-f", "json").stdout)) == len(logs)  # a query of the default catalog


def test_render_is_deterministic(tree: Path, tmp_path: Path):
    scan([str(tree)], _opts(tmp_path))
    out = str(tmp_path / "i.html")
    first = render(query(str(tmp_path / "runs.sqlite")), "html", output=out)
    second = render(query(str(tmp_path / "runs.sqlite")), "html", output=out)
    assert first == second and "<svg" in first


# ------------------------------------------------------------------ Dask


def test_dask_local_cluster_merges_into_the_catalog(tree: Path, tmp_path: Path):
    distributed = pytest.importorskip("distributed")
    import signal

    def timeout(*_):
        raise TimeoutError("the Dask scan took more than 120 s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(120)
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      dashboard_address=None) as cluster:
            first = scan([str(tree / "team-b")], _opts(tmp_path))  # locally
            result = scan([str(tree)], _opts(tmp_path, dask=cluster.scheduler_address))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert first.analyzed == 3
    assert result.discovered == 8 and result.analyzed == 6  # team-b came from the catalog (but its error row)
    rows = rel(tree, result.rows)
    assert rows["team-b/nan-run"].finding_ids == ["NAN_LOSS"] and rows["team-b/broken"].status == "error"
    assert rows["slurm/slurm-102.out"].finding_ids == ["ZERO_LOSS"]


def test_dask_unreachable_scheduler_is_a_usage_error():
    pytest.importorskip("distributed")
    from logpost.scan.runner import run_dask

    with pytest.raises(InputError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        list(run_dask([], "tcp://127.0.0.1:9", timeout=2))


def test_a_killed_worker_does_not_stop_the_scan(tree: Path, tmp_path: Path, monkeypatch):
    """The OOM killer takes a worker mid-scan: the pool is rebuilt, the runs in flight are retried."""
    import multiprocessing
    import signal

    from logpost.scan import runner

    pools = []

    class CountedPool(runner.ProcessPoolExecutor):
        def __init__(self, *a, **kw):
            pools.append(self)
            super().__init__(*a, **kw)

    monkeypatch.setattr(runner, "ProcessPoolExecutor", CountedPool)
    killed = []

    def progress(done, total, outcome):
        if not killed:
            victims = [p for p in multiprocessing.active_children() if p.pid]
            if victims:
                os.kill(victims[0].pid, signal.SIGKILL)
                killed.append(victims[0].pid)

    result = scan([str(tree)], _opts(tmp_path, jobs=2), progress)
    assert killed and len(pools) == 2 and result.discovered == len(result.rows) == 8
    assert {r.status for r in result.rows if not r.path.endswith("broken")} == {"ok"}
    assert rel(tree, result.rows)["team-a/zero-axolotl"].finding_ids[0] == "ZERO_LOSS"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_workers_are_safe_under_every_start_method(tree: Path, tmp_path: Path, monkeypatch, method):
    import multiprocessing

    from logpost.scan import runner

    monkeypatch.setattr(runner, "pool_context", lambda: multiprocessing.get_context(method))
    result = scan([str(tree)], _opts(tmp_path, jobs=2))
    assert {os.path.basename(r.path): r.finding_ids for r in result.rows} == {
        "zero-axolotl": ["ZERO_LOSS", "UNTRAINABLE_TURNS"], "hf-out": ["ZERO_LOSS"], "nan-run": ["NAN_LOSS"],
        "broken": [], "job-7": ["CUDA_OOM"], "slurm-101.out": [], "slurm-102.out": ["ZERO_LOSS"], "llamafactory_trainer_log.jsonl": ["ZERO_LOSS"]}


def test_cli_glob_and_exclude(tree: Path, tmp_path: Path):
    db = str(tmp_path / "runs.sqlite")
    only_jsonl = json.loads(run("scan", str(tree), "--db", db, "--glob", "*.jsonl", "-f", "json").stdout)
    # the only log left in slurm/ makes it a run folder; hf-out's checkpoints are not logs any more
    assert [os.path.relpath(i["run"], tree) for i in only_jsonl] == ["slurm"]
    no_slurm = json.loads(run("scan", str(tree), "--db", db, "--exclude", "slurm", "-f", "json").stdout)
    assert len(no_slurm) == 5 and not any("/slurm/" in i["run"] for i in no_slurm)


def test_a_worker_stays_under_its_memory_ceiling(tmp_path: Path):
    """A run whose records need more memory than a worker's ceiling is an error row saying so; the worker
    survives it (the next run is analysed) and the scan goes on."""
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "benchmarks" / "bench_ingest.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    root = tmp_path / "runs"
    root.mkdir()
    bench.generate_dense(str(root / "dense.log"), 14 << 20)  # ~55 k metric records: ~60 MiB above the stack
    for name in ("a", "b"):
        shutil.copy(CORPUS / "generated" / "hf_healthy.log", root / f"{name}.log")
    env = {**os.environ, "LOGPOST_SCAN_MEMORY_MB": "40"}  # a healthy run adds ~10 MiB, the dense one ~60
    r = subprocess.run([sys.executable, "-m", "logpost", "scan", str(root), "--db", str(tmp_path / "c.sqlite"),
                        "-f", "json", "-j", "1"], capture_output=True, text=True, env=env, timeout=600)
    doc = {os.path.basename(i["run"]): i for i in json.loads(r.stdout)}
    assert doc["dense.log"]["status"] == "error" and "(40 MiB, " in doc["dense.log"]["error"]
    assert doc["a.log"]["status"] == doc["b.log"]["status"] == "ok"
