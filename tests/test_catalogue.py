"""Every catalogue entry, as data: en/zh parity, samples match their patterns, and its own [[tests]]
cases (real corpus logs wherever the corpus has one) come out found / not found."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from logpost.analyze import Options, analyze
from logpost.model import LANGS
from logpost.signatures.registry import CATALOGUE, load_catalogue
from tests.conftest import CORPUS

SIGS = load_catalogue()
REQUIRED = {"ZERO_LOSS", "NAN_LOSS", "LOSS_SPIKE", "DIVERGENCE", "NO_LEARNING", "LR_ANOMALY", "GRAD_EXPLOSION",
            "FP16_OVERFLOW", "CUDA_OOM", "HOST_OOM", "NCCL_TIMEOUT", "NCCL_ERROR", "DATASET_ERROR", "TOKENIZER_ERROR",
            "CONFIG_ERROR", "ENV_ERROR", "CHECKPOINT_ERROR", "OVERFITTING", "SLOW_THROUGHPUT", "EARLY_TERMINATION"}


CASES = [pytest.param(sig.id, i, case, id=f"{sig.id}-{i + 1}-{'pos' if case['found'] else 'neg'}")
         for sig in SIGS.values() for i, case in enumerate(sig.tests)]


def test_required_ids_present():
    assert REQUIRED <= set(SIGS)


@pytest.mark.parametrize("sig_id", sorted(SIGS))
def test_entry_is_complete(sig_id):
    sig = SIGS[sig_id]
    raw = tomllib.loads(open(sig.path, encoding="utf-8").read())
    assert raw["id"] == sig_id and sig.path.endswith(f"{sig_id}.toml")
    for key in ("title", "summary", "why"):
        assert set(raw[key]) == set(LANGS)
    assert all(step.text["en"] and step.text["zh"] for step in sig.remediation)
    for pat in sig.patterns:
        assert pat.samples, f"{sig_id}: every pattern needs samples from real logs"
    assert set(sig.consequences) <= set(SIGS), f"{sig_id}: consequences name unknown ids"
    # a catalogue entry carries at least one positive and one negative case
    assert any(c["found"] for c in sig.tests) and any(not c["found"] for c in sig.tests)


@pytest.mark.parametrize("sig_id,i,case", CASES)
def test_case(sig_id, i, case, tmp_path):
    if "log" in case:
        path = CORPUS / case["log"]
        assert path.exists(), case["log"]
    else:
        path = tmp_path / "case.log"
        path.write_text(case["text"], encoding="utf-8")
    pm = analyze(str(path), Options(select=(sig_id,)))
    found = [f for f in pm.findings if f.id == sig_id]
    assert bool(found) == case["found"], case.get("note", "")
    for f in found:  # every finding shows evidence: a line with its text, or a step with values
        assert f.evidence and all(e.line is not None or e.step is not None for e in f.evidence)
        assert "?" not in f.title["en"] and f.summary["en"] and f.summary["zh"]


def test_catalogue_files_are_the_ids():
    assert sorted(p.stem for p in CATALOGUE.glob("*.toml")) == sorted(SIGS)


def test_docs_are_generated_from_the_catalogue():
    import importlib.util

    tool = Path(__file__).resolve().parent.parent / "tools" / "signature_docs.py"
    spec = importlib.util.spec_from_file_location("signature_docs", tool)
    assert spec is not None and spec.loader is not None
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    for lang, path in docs.paths().items():
        assert path.read_text(encoding="utf-8") == docs.render(lang), f"{path} is stale: run `make docs`"
