"""The incremental engine: a log fed in pieces gives what ``analyze`` gives for the whole file."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from logpost.analyze import analyze
from logpost.live import Live, write_postmortem
from logpost.parsers import Incremental, parse
from logpost.parsers.normalise import open_source
from logpost.report.render import render_json
from tests.conftest import CORPUS, fixture

SOURCES = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".md")


def _bytes(path: str) -> bytes:
    stream, _ = open_source(path)  # .gz and UTF-16 as the parsers read them
    try:
        return stream.read()
    finally:
        stream.close()


def _pieces(data: bytes, seed: int) -> list[bytes]:
    """Cut anywhere, from single bytes (mid-line, mid-UTF-8) to blocks of many lines."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.choice((1, 3, 17, 200, 4096, 65536))
        out.append(data[i:i + n])
        i += n
    return out


@pytest.mark.parametrize("rel", SOURCES)
def test_fed_in_pieces_the_findings_equal_analyze(rel: str) -> None:
    path = fixture(rel)
    try:
        whole = analyze(path)
    except Exception:  # noqa: BLE001 - a fixture analyze refuses (bad input) is not this test's
        pytest.skip("analyze refuses it")
    live = Live(whole.source)
    rng = random.Random(rel)
    seen: list[str] = []
    for piece in _pieces(_bytes(path), hash(rel) & 0xFFFF):
        live.feed(piece)
        if rng.random() < 0.01:  # snapshots on the way change nothing of the end result
            seen += [f.id for f in live.new_findings()]
    final = live.close()
    assert render_json(final) == render_json(whole)
    assert len(seen) == len(set(seen))  # each id reported once


def test_parser_state_kept_between_feeds() -> None:
    """Frame, events and metadata equal, fed line by line with a snapshot after every line."""
    path = fixture("generated/axolotl_dev_model_role.log")
    whole = parse(path)
    inc = Incremental(path)
    for line in _bytes(path).splitlines(keepends=True):
        inc.feed(line)
        inc.snapshot()
    run = inc.close()
    pd.testing.assert_frame_equal(run.frame, whole.frame)
    assert run.events == whole.events and run.meta == whole.meta and run.lines == whole.lines


def test_zero_loss_found_at_the_third_zero_record_and_reported_once(tmp_path) -> None:
    path = fixture("generated/hf_all_labels_masked_b.log")
    lines = _bytes(path).splitlines(keepends=True)
    live = Live(path)
    zero_records, found_at = 0, None
    reported = []
    for line in lines:
        live.feed(line)
        if b"{'loss': '0'," in line:
            zero_records += 1
            new = [f.id for f in live.new_findings()]
            reported += new
            if "ZERO_LOSS" in new and found_at is None:
                found_at = zero_records
    assert found_at == 3
    assert reported.count("ZERO_LOSS") == 1
    paths = write_postmortem(live.close(), str(tmp_path / "pm"))
    assert [p.rsplit(".", 1)[1] for p in paths] == ["md", "html", "json"]
    assert "ZERO_LOSS" in (tmp_path / "pm" / "postmortem.md").read_text()


def test_metric_dicts_fed_from_a_trainer() -> None:
    live = Live("<trainer>")
    for step in range(1, 6):
        live.feed_metrics({"loss": 0.0, "grad_norm": 0.0, "learning_rate": 1e-5 * step, "epoch": step / 100}, step)
    pm = live.postmortem()
    zero = [f for f in pm.findings if f.id == "ZERO_LOSS"]
    assert zero and zero[0].first_step == 1
    assert list(pm.run.frame["step"]) == [1, 2, 3, 4, 5]
