"""The layer rules of .importlinter hold (the same check .ci/run makes), so a change that makes a layer
import upwards fails here, before it lands."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The contract is not vacuous: an upward import (parsers -> analyze) makes lint-imports fail."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed")
    pkg = tmp_path / "logpost"
    shutil.copytree(ROOT / "logpost", pkg, ignore=shutil.ignore_patterns("__pycache__", "catalogue"))
    with open(pkg / "parsers" / "hf.py", "a", encoding="utf-8") as fh:
        fh.write("\nfrom logpost.analyze import analyze  # noqa\n")
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    r = subprocess.run([exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "logpost.parsers is not allowed to import logpost.analyze" in r.stdout.replace("\n", " ")
