"""The value types that flow through logpost: lines, events, findings, the postmortem.

The values are frozen dataclasses, named tuples or enums, so findings can be compared and
serialised without surprises. :class:`RunLog` is the one mutable holder: what the parsers read from
one run (the metrics frame, whose columns are declared in :mod:`logpost.frame`, the events and the raw
metadata), with :class:`RunFacts`, the typed facts about the run everyone above the parsers reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from functools import cached_property
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
    """What a finding points at: a log line (1-based, physical, of ``file``) with its text, and/or a step.
    ``file`` is the log file the line is in (several in a run directory), set by ``analyze``."""

    line: int | None
    text: str
    step: int | None = None
    file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "text": self.text, "step": self.step}


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


# Metadata the parsers keep for their own use, not settings of the run.
_BOOKKEEPING = frozenset({"summary_line", "completed", "last_line_text", "bytes", "events_dropped", "header",
                          "truncated", "sources"})


@dataclass(frozen=True)
class RunFacts:
    """What the log says about the run, read once from the parsers' metadata and frame.

    Signatures, reports and scan read these instead of the raw ``RunLog.meta`` dict.
    """

    model: str | None
    header: Mapping[str, Any]  # the trainer's start-up settings (HF's header, trainer_state.json)
    total_steps: int | None  # planned optimizer steps: the header's, else a max_steps the log printed
    completed: bool  # a completion marker: HF's train summary, Axolotl's "Training completed" ...
    finished: bool  # completed, or a summary record in the frame
    last_line_text: str  # the log's last non-empty line (stripped, at most 500 characters)
    bytes: int | None  # bytes read (a single file or trainer_state.json; None for run directories)
    truncated: bool  # the reader stopped early (a cap), so the log's end is not the run's end
    sources: tuple[str, ...]  # the files of a run directory in merge order, () for one file
    stated: Mapping[str, tuple[int, str]]  # fact key -> (line, text) of the line that stated it
    supervised_tokens: int | None  # Axolotl's total_supervised_tokens
    trainable_params: int | None  # PEFT's trainable params, else the header's
    settings: Mapping[str, Any]  # every other setting the log printed (``header:NAME`` for header lines), in order
    train: pd.DataFrame = field(compare=False, repr=False)  # the training records in step order, then line

    @classmethod
    def of(cls, meta: Mapping[str, Any], frame: pd.DataFrame) -> RunFacts:
        header = meta.get("header") or {}
        total = next((v for v in (header.get("total_steps"), meta.get("max_steps"))
                      if isinstance(v, int | float) and v > 0), None)
        rows = frame[frame["kind"] == "train"]
        step, line = rows["step"], rows["line"]
        if step.hasnans or not step.is_monotonic_increasing or not line.is_monotonic_increasing:
            rows = rows.sort_values(["step", "line"], kind="stable", na_position="last")
        completed = bool(meta.get("completed"))
        trainable = meta.get("peft_trainable_params", header.get("trainable_parameters"))
        return cls(
            model=meta.get("model"), header=header, total_steps=int(total) if total else None,
            completed=completed, finished=completed or bool((frame["kind"] == "summary").any()),
            last_line_text=str(meta.get("last_line_text") or ""),
            bytes=meta["bytes"] if isinstance(meta.get("bytes"), int) else None,
            truncated=bool(meta.get("truncated")), sources=tuple(meta.get("sources") or ()),
            stated=meta.get("_lines") or {}, supervised_tokens=meta.get("total_supervised_tokens"),
            trainable_params=trainable, train=rows,
            settings={k: v for k, v in meta.items() if not k.startswith("_") and k not in _BOOKKEEPING
                      and not isinstance(v, dict | list | tuple)})

    def evidence(self, key: str) -> Evidence | None:
        """The line that stated fact ``key`` (a header setting is ``header:NAME``), as evidence."""
        where = self.stated.get(key)
        return Evidence(where[0], where[1]) if where else None


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
        """The training records in the order they were read (``facts.train`` has them in step order)."""
        return self.frame[self.frame["kind"] == "train"]

    @cached_property
    def facts(self) -> RunFacts:
        """The run's facts, derived once from what the parsers recorded (``meta`` and the frame)."""
        return RunFacts.of(self.meta, self.frame)


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


def fmt_number(value: float) -> str:
    """A number as findings and reports print it: integers bare, others to 4 significant digits."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"
