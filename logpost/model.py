"""The value types that flow through logpost: lines, events, findings, the postmortem.

Everything here is a frozen dataclass or an enum, so a postmortem can be compared, hashed
and serialised without surprises. The metrics frame (pandas) lives beside them in
:class:`RunLog`; its columns are declared in :mod:`logpost.frame`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # the CLI imports this module to start; pandas is imported where a frame is built
    import pandas as pd

LANGS = ("en", "zh")


class InputError(Exception):
    """A user mistake or unreadable input: reported on one line, exit code 2, never a traceback."""


class Severity(IntEnum):
    """How bad a finding is; ordered, so ``--fail-on`` is a comparison."""

    INFO = 10
    WARNING = 20
    ERROR = 30
    CRITICAL = 40

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise InputError(f"unknown severity {text!r} (choose from {names})") from None


class Verdict(StrEnum):
    FAILED = "failed"  # at least one finding at error or above
    DEGRADED = "degraded"  # warnings only
    HEALTHY = "healthy"  # nothing found, and the log shows a run that trained
    UNKNOWN = "unknown"  # too little in the log to judge


class Line(NamedTuple):
    """One normalised piece of the log: a physical line, or one ``\\r``-separated part of it.

    ``no`` is the 1-based physical line number (what ``grep -n`` and editors show); the parts of
    a line redrawn with ``\\r`` share it. (A named tuple: one is made for every line a parser sees.)
    """

    no: int
    text: str
    rank: int | None = None


@dataclass(frozen=True)
class Event:
    """Something the log says outside the metrics: an error, a warning, a traceback, a marker.

    Repeated identical messages are folded into one event with ``count`` and ``last_line``.
    ``data`` holds parsed fields (exception type, sizes, exit codes ...).
    """

    kind: str  # "error" | "warning" | "traceback" | "info"
    line: int
    text: str
    rank: int | None = None
    count: int = 1
    last_line: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    """What a finding points at: a log line (1-based) with its text, and/or a step."""

    line: int | None
    text: str
    step: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "text": self.text, "step": self.step}


@dataclass(frozen=True)
class Finding:
    """A signature that matched, with its texts in both languages and its evidence."""

    id: str
    severity: Severity
    confidence: float
    title: Mapping[str, str]
    summary: Mapping[str, str]
    why: Mapping[str, str]
    remediation: Mapping[str, tuple[str, ...]]
    evidence: tuple[Evidence, ...]
    first_step: int | None = None
    first_line: int | None = None
    explains: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.label,
            "confidence": round(self.confidence, 3),
            "title": dict(self.title),
            "summary": dict(self.summary),
            "why": dict(self.why),
            "evidence": [e.to_json() for e in self.evidence],
            "remediation": {k: list(v) for k, v in self.remediation.items()},
            "first_step": self.first_step,
            "first_line": self.first_line,
            "explains": list(self.explains),
        }


@dataclass
class RunLog:
    """Everything the parsers read from one run: the metrics frame, events and run metadata."""

    source: str
    frame: pd.DataFrame
    events: list[Event]
    meta: dict[str, Any]
    frameworks: tuple[str, ...]
    lines: int
    step_method: str
    texts: list[str] = field(default_factory=list)  # evidence text of each frame row, same order

    def text(self, index: int) -> str:
        """The logged text of frame row ``index`` (its label), for evidence."""
        return self.texts[index] if 0 <= index < len(self.texts) else ""

    @property
    def framework(self) -> str | None:
        return self.frameworks[0] if self.frameworks else None

    def train_rows(self) -> pd.DataFrame:
        return self.frame[self.frame["kind"] == "train"]


@dataclass(frozen=True)
class Postmortem:
    """The result of :func:`logpost.analyze.analyze`: findings ordered most important first."""

    source: str
    verdict: Verdict
    findings: tuple[Finding, ...]
    run: RunLog

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)
