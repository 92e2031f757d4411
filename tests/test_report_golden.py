"""Golden Markdown and HTML postmortems of real fixtures.

A change in the findings, the strings or the templates shows up here as a diff to review. After
an intended change, regenerate and read the diff before committing:

    LOGPOST_REGEN_GOLDEN=1 python3 -m pytest -q tests/test_report_golden.py && git diff tests/golden

The chart inside the HTML is replaced by a placeholder: its SVG bytes depend on the matplotlib and
FreeType versions, not on logpost (its determinism is tested in test_report.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from logpost.analyze import analyze
from logpost.report.render import render_html, render_markdown
from tests.conftest import ROOT

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("LOGPOST_REGEN_GOLDEN") == "1"
CASES = {
    "axolotl_zero_loss": "fixtures/corpus/generated/axolotl_dev_model_role.log",  # ZERO_LOSS, Axolotl 0.19
    "hf_nan": "fixtures/corpus/generated/hf_lr_nan_5e5.log",  # nan grad_norm / hidden nan loss, transformers 5
    "hf_healthy": "fixtures/corpus/generated/hf_healthy.log",  # no finding
}
_CHART = re.compile(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+")


def normalise_html(html: str) -> str:
    return _CHART.sub("data:image/svg+xml;base64,CHART", html)


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path.name}: run with LOGPOST_REGEN_GOLDEN=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{path.name} differs; if intended: LOGPOST_REGEN_GOLDEN=1 python3 -m pytest -q {__file__}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case, monkeypatch):
    monkeypatch.chdir(ROOT)  # relative source path: the same bytes in every checkout
    pm = analyze(CASES[case])
    check(f"{case}.md", render_markdown(pm, "both"))
    html = render_html(pm, "both")
    assert _CHART.search(html), "every case logs metrics: the report must carry its chart"
    check(f"{case}.html", normalise_html(html))
