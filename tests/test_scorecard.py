"""The scorecard over the labelled corpus (``make scorecard`` prints the same report).

Floors hold on the tuned split only, at the figures measured when the corpus last grew: the catalogue
cannot silently regress there. The blind split is scored and printed (``pytest -s``), never asserted
on figures: a rule tuned until a blind number passes would make the split worthless.
"""

from __future__ import annotations

import pytest

from tests.conftest import CORPUS
from tools.scorecard import score

# Measured on the tuned split when the corpus last grew (raise them as the catalogue improves; a
# drop is a regression). Failing-called-healthy and error-on-healthy are ceilings.
TUNED_FLOOR = {"recall": 90 / 104, "top": 120 / 134}  # 2026-12-08, 202 files, 134 tuned
TUNED_CEILING = {"healthy_errors": 0, "called_healthy": 2}


@pytest.fixture(scope="module")
def card():
    c = score(CORPUS / "labels.jsonl")
    print("\n" + c.report())  # visible with `pytest -s`
    return c


def test_every_labelled_file_is_scored_on_one_split(card):
    labelled = sum(1 for line in (CORPUS / "labels.jsonl").read_text().splitlines() if line.strip())
    tuned, blind = card.subset(split="tuned"), card.subset(split="blind")
    assert len(tuned.files) + len(blind.files) == len(card.files) == labelled
    assert blind.files and blind.labelled > 0  # the blind split is scored, not skipped


def test_tuned_split_does_not_regress(card):
    tuned = card.subset(split="tuned")
    report = tuned.table()
    assert tuned.recall >= TUNED_FLOOR["recall"] - 1e-9, report
    assert tuned.top >= TUNED_FLOOR["top"] - 1e-9, report
    assert tuned.healthy_errors <= TUNED_CEILING["healthy_errors"], report
    assert tuned.called_healthy <= TUNED_CEILING["called_healthy"], report


def test_precision_of_root_signatures_on_the_tuned_split(card):
    # a finding of these ids on a file that does not list it (nor accepts it) is a false alarm worth a look;
    # ids below 90 % today are held at their measured precision (a floor, not a goal)
    loose = ("EARLY_TERMINATION", "UNTRAINABLE_TURNS", "GRAD_EXPLOSION", "LOSS_SPIKE", "GRAD_NORM_PINNED")
    measured = {"LR_ANOMALY": 2 / 3}  # 2026-12-08: swift-4509 (lr 0.0 at the end of a finished cosine schedule)
    tuned = card.subset(split="tuned")
    for sig, (_, _, found, right) in tuned.per_signature().items():
        if sig not in loose:
            assert found == 0 or right / found >= min(0.9, measured.get(sig, 0.9)) - 1e-9, (sig, tuned.table())


def test_accept_counts_as_right():
    from tools.scorecard import FileResult

    cut = FileResult(file="x.log", framework="hf", kind="excerpt", split="tuned", labels=("EARLY_TERMINATION",),
                     accept=("CUDA_OOM",), found=("CUDA_OOM",), errors=(True,), verdict="failed")
    assert cut.top_right and not cut.missed
    wrong = FileResult(file="y.log", framework="hf", kind="excerpt", split="tuned", labels=("ZERO_LOSS",),
                       accept=(), found=("NAN_LOSS",), errors=(True,), verdict="failed")
    assert not wrong.top_right and wrong.missed == ("ZERO_LOSS",)
    healthy_call = FileResult(file="z.log", framework="hf", kind="full", split="blind", labels=("NAN_LOSS",),
                              accept=(), found=(), errors=(), verdict="healthy")
    assert healthy_call.called_healthy and not healthy_call.top_right
