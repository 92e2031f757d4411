from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fixtures" / "corpus"


@pytest.fixture
def corpus() -> Path:
    return CORPUS


def fixture(rel: str) -> str:
    return str(CORPUS / rel)


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch):
    """Outputs are tested as a pipe gets them: a COLUMNS set by the CI shell would wrap terminal reports."""
    monkeypatch.delenv("COLUMNS", raising=False)
