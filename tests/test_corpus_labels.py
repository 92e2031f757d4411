"""The labelled corpus itself: every file labelled with its provenance, ids from the taxonomy and the
catalogue, and the blind split fixed by its documented hash (fixtures/README.md)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from logpost.signatures.registry import load_catalogue
from tests.conftest import CORPUS
from tools.scorecard import BLIND_PERCENT, SEED, read_labels, split

TAXONOMY = {"ZERO_LOSS", "NAN_LOSS", "LOSS_SPIKE", "DIVERGENCE", "NO_LEARNING", "LR_ANOMALY", "GRAD_EXPLOSION",
            "FP16_OVERFLOW", "CUDA_OOM", "HOST_OOM", "NCCL_TIMEOUT", "NCCL_ERROR", "DATASET_ERROR",
            "TOKENIZER_ERROR", "CONFIG_ERROR", "ENV_ERROR", "CHECKPOINT_ERROR", "OVERFITTING", "SLOW_THROUGHPUT",
            "EARLY_TERMINATION", "HEALTHY", "OTHER"}
FRAMEWORKS = {"axolotl", "hf", "trl", "llamafactory", "ms-swift", "deepspeed", "torchrun", "megatron", "verl",
              "xtuner", "unsloth", "other"}
NOT_LOGS = {"labels.jsonl", "README.md"}


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return read_labels(CORPUS / "labels.jsonl")


def test_every_file_has_one_label_entry(entries):
    files = Counter(e["file"] for e in entries)
    assert not [f for f, n in files.items() if n > 1]
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p.name not in NOT_LOGS}
    assert set(files) == on_disk
    names = Counter(f.rsplit("/", 1)[-1] for f in files)
    assert not [n for n, k in names.items() if k > 1]  # the split hashes the base name


def test_labels_are_known_ids(entries):
    ids = TAXONOMY | set(load_catalogue())
    for e in entries:
        labels, accept = e["labels"], e["accept"]
        assert labels and set(labels) <= ids and set(accept) <= ids, e["file"]
        assert not set(labels) & set(accept), e["file"]
        if "HEALTHY" in labels:
            assert labels == ["HEALTHY"], e["file"]  # healthy means no failure at all


def test_provenance_and_fields(entries):
    for e in entries:
        where = e["file"]
        assert e["framework"] in FRAMEWORKS, where
        assert e["kind"] in ("excerpt", "full"), where
        assert e["confidence"] in ("confirmed", "apparent"), where
        src = e["source"]
        if e["origin"] == "issue":
            assert re.search(r"https?://\S+", src), where  # the thread the paste was copied from
        elif e["origin"] == "repo":
            assert re.search(r"\S+/\S+:\S+@[0-9a-f]{7,40}", src), where  # owner/repo:path@commit
        else:
            assert e["origin"] == "generated" and ("repro" in src or "train" in src), where  # the command
        with open(CORPUS / where, "rb") as fh:
            assert e["lines"] == sum(1 for _ in fh), where


def test_blind_split_is_the_documented_hash(entries):
    for e in entries:
        name = e["file"].rsplit("/", 1)[-1]
        h = int(hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest()[:8], 16)
        assert split(e["file"]) == ("blind" if h % 100 < BLIND_PERCENT else "tuned")
    assert split("hf/any-name.log") == split("generated/any-name.log")  # the folder does not count
    blind = sum(split(e["file"]) == "blind" for e in entries)
    assert blind / len(entries) >= 0.30, (blind, len(entries))
