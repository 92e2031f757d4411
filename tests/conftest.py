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
