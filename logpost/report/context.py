"""The typed context every report template receives (never a DataFrame), and the JSON document.

Templates see only these dataclasses, the strings file and plain values, so a template author can
read what is available here, and every output format says the same thing.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import pandas as pd

from logpost import __version__
from logpost.model import LANGS, Finding, Postmortem
from logpost.signatures.registry import fmt_number

TABLE_ROWS = 12  # rows of the compact metrics table


@cache
def strings() -> dict[str, dict[str, str]]:
    """The report's fixed strings, ``{key: {"en": .., "zh": ..}}``."""
    text = resources.files("logpost.templates").joinpath("strings.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def langs_for(choice: str) -> tuple[str, ...]:
    return LANGS if choice == "both" else (choice,)


def num(value: Any) -> str:
    """Numbers the same way in every output: integers plain, others 4 significant digits."""
    if value is None or value is pd.NA:
        return "–"
    if isinstance(value, float | int):
        return fmt_number(float(value))
    return str(value)


@dataclass(frozen=True)
class RunSummary:
    source: str
    framework: str | None
    frameworks: tuple[str, ...]
    model: str | None
    lines: int
    records: int
    train_records: int
    first_step: int | None
    last_step: int | None
    loss_first: float | None
    loss_last: float | None
    loss_min: float | None
    completed: bool | None
    step_method: str


@dataclass(frozen=True)
class FindingView:
    finding: Finding
    severity: str
    first_step: str
    first_line: str


@dataclass(frozen=True)
class MetricsRow:
    step: str
    loss: str
    grad_norm: str
    learning_rate: str
    eval_loss: str
    line: str
    flagged: bool


@dataclass(frozen=True)
class ReportContext:
    langs: tuple[str, ...]
    version: str
    verdict: str
    run: RunSummary
    findings: tuple[FindingView, ...]
    metrics: tuple[MetricsRow, ...]
    s: dict[str, dict[str, str]]


def run_summary(pm: Postmortem) -> RunSummary:
    run = pm.run
    train = run.train_rows().sort_values(["step", "line"], kind="stable")
    losses = train["loss"]
    finite = losses[losses.map(lambda x: isinstance(x, float) and math.isfinite(x))]
    steps = run.frame["step"].dropna()
    completed = run.meta.get("completed")
    return RunSummary(
        source=pm.source, framework=run.framework, frameworks=run.frameworks, model=run.meta.get("model"),
        lines=run.lines, records=len(run.frame), train_records=len(train),
        first_step=int(steps.min()) if len(steps) else None, last_step=int(steps.max()) if len(steps) else None,
        loss_first=float(losses.iloc[0]) if len(losses) and not pd.isna(losses.iloc[0]) else None,
        loss_last=float(losses.iloc[-1]) if len(losses) and not pd.isna(losses.iloc[-1]) else None,
        loss_min=float(finite.min()) if len(finite) else None,
        completed=bool(completed) if completed is not None else None,
        step_method=run.step_method)


def metrics_rows(pm: Postmortem, limit: int = TABLE_ROWS) -> tuple[MetricsRow, ...]:
    train = pm.run.train_rows().sort_values(["step", "line"], kind="stable")
    if train.empty:
        return ()
    flagged_lines = {e.line for f in pm.findings for e in f.evidence if e.line is not None}
    n = len(train)
    picks = set(range(n)) if n <= limit else {round(i * (n - 1) / (limit - 1)) for i in range(limit)}
    positions = [i for i, ln in enumerate(train["line"]) if not pd.isna(ln) and int(ln) in flagged_lines][:3]
    picks |= set(positions)
    rows = []
    for i in sorted(picks):
        r = train.iloc[i]
        rows.append(MetricsRow(
            step=num(None if pd.isna(r["step"]) else int(r["step"])),
            loss=_cell(r["loss"]), grad_norm=_cell(r["grad_norm"]), learning_rate=_cell(r["learning_rate"]),
            eval_loss=_cell(r["eval_loss"]), line=num(None if pd.isna(r["line"]) else int(r["line"])),
            flagged=(not pd.isna(r["line"])) and int(r["line"]) in flagged_lines))
    return tuple(rows)


def _cell(v: Any) -> str:
    if v is None or v is pd.NA:
        return "–"
    f = float(v)
    if math.isnan(f):
        return "–"
    return fmt_number(f)


def build_context(pm: Postmortem, lang: str = "both") -> ReportContext:
    views = tuple(FindingView(
        finding=f, severity=f.severity.label,
        first_step=num(f.first_step) if f.first_step is not None else "–",
        first_line=num(f.first_line) if f.first_line is not None else "–") for f in pm.findings)
    return ReportContext(langs=langs_for(lang), version=__version__, verdict=pm.verdict.value,
                         run=run_summary(pm), findings=views, metrics=metrics_rows(pm), s=strings())


def to_json(pm: Postmortem) -> dict[str, Any]:
    """The machine-readable postmortem (contract in README: keys are kept, new ones may be added)."""
    run = run_summary(pm)
    frame = pm.run.frame
    steps = frame["step"].dropna()
    return {
        "logpost_version": __version__,
        "source": pm.source,
        "framework": pm.run.framework,
        "frameworks": list(pm.run.frameworks),
        "model": run.model,
        "verdict": pm.verdict.value,
        "findings": [f.to_json() for f in pm.findings],
        "metrics": {
            "rows": len(frame),
            "columns": list(frame.columns),
            "first_step": int(steps.min()) if len(steps) else None,
            "last_step": int(steps.max()) if len(steps) else None,
            "train_records": run.train_records,
            "loss_first": _json_float(run.loss_first),
            "loss_last": _json_float(run.loss_last),
            "loss_min": _json_float(run.loss_min),
            "step_method": run.step_method,
        },
        "run": {"lines": pm.run.lines, "completed": run.completed},
    }


def _json_float(v: float | None) -> float | str | None:
    if v is None:
        return None
    if math.isnan(v) or math.isinf(v):
        return str(v)  # JSON has no nan; keep it visible as a string
    return v
