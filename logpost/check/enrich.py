"""Name the cause of a ZERO_LOSS finding from the run's Axolotl config (``analyze LOG --config CFG``).

The log shows the symptom; the config and a sample of its data show the cause. This runs the check
on the config and, when it finds a mapping or trainability problem, adds it to the ZERO_LOSS
finding in both languages: the confirmed cause in the summary, the config change as the first
remediation step, the offending rows as evidence (file:row, no log line), and a higher confidence.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from logpost.check.core import CheckOptions, CheckReport, DatasetResult, check_config, fill, frag, texts
from logpost.model import LANGS, Evidence, Finding, InputError, Severity

# Check findings that explain "no token is supervised", most direct first.
CAUSES = ("CHECK_MESSAGES_FIELD_MISSING", "CHECK_TURN_KEY_MISSING", "CHECK_ROLE_UNMAPPED", "CHECK_MESSAGES_NOT_LIST",
          "CHECK_FIELD_MISSING", "CHECK_ROW_NOT_OBJECT", "CHECK_NO_TRAINABLE_TURN", "CHECK_FIELD_EMPTY")
CONFIRMED_CONFIDENCE = 0.99  # the log shows loss 0 and the data shows why on every sampled row
PARTIAL_BOOST = 0.03  # every row has the problem but some still train an end-of-turn token
EVIDENCE_ROWS = 2


def explain_zero_loss(findings: tuple[Finding, ...], config: str, rows: int = 100) -> tuple[Finding, ...]:
    """Return ``findings`` with the ZERO_LOSS finding (if any) enriched from ``config``.

    Raises:
        InputError: the config cannot be read.
    """
    if not Path(config).is_file():
        raise InputError(f"{config}: no such config file")
    if not any(f.id == "ZERO_LOSS" for f in findings):
        return findings
    report = check_config(config, CheckOptions(rows=rows))
    strings = texts()["enrich"]
    causes = [f for f in report.findings if f.id in CAUSES and f.severity >= Severity.WARNING
              and not f.facts.get("entry_order", (False, 0))[0]]  # training datasets, not test_datasets
    out = []
    for f in findings:
        if f.id != "ZERO_LOSS":
            out.append(f)
            continue
        if causes:
            cause = min(causes, key=lambda c: (not _explains_all(c, report), c.facts.get("entry_order", (False, 0)),
                                               CAUSES.index(c.id)))
            if _explains_all(cause, report):
                out.append(_confirmed(f, cause, report, config, strings))
            else:  # a real problem, but it leaves some rows trainable: it does not explain a loss of 0 everywhere
                ds = _dataset(cause, report)
                facts = {"config": config, "entry": cause.facts.get("entry"),
                         "unsupervised": ds.unsupervised if ds else "?", "rows": ds.rows if ds else "?"}
                out.append(_note(f, {lg: fill(strings["partial"][lg], {**facts, "cause": cause.summary[lg]}, lg)
                                     for lg in LANGS}))
        elif report.checked:
            sampled = sum(d.rows for d in report.datasets)
            out.append(_note(f, {lg: fill(strings["clean"][lg], {"config": config, "sampled": sampled}, lg)
                                 for lg in LANGS}))
        else:
            statuses = sorted({d.status for d in report.datasets})
            out.append(_note(f, {lg: fill(strings["unchecked"][lg], {
                "config": config, "reason": ", ".join(frag("status_" + st)[lg] for st in statuses)}, lg)
                for lg in LANGS}))
    return tuple(out)


def _dataset(f: Finding, report: CheckReport) -> DatasetResult | None:
    return next((d for d in report.datasets if d.entry == f.facts.get("entry")), None)


def _explains_all(f: Finding, report: CheckReport) -> bool:
    """The problem is on every sampled row and leaves every one of them with nothing (but EOS) to train."""
    ds = _dataset(f, report)
    every = f.facts.get("n") is not None and f.facts.get("n") == f.facts.get("sampled")
    return bool(every and ds and ds.rows and ds.unsupervised + ds.eos_only == ds.rows)


def _confirmed(f: Finding, cause: Finding, report: CheckReport, config: str, strings: dict[str, Any]) -> Finding:
    entry = cause.facts.get("entry")
    ds = _dataset(cause, report)
    facts = {"config": config, "entry": entry, "fix": cause.facts.get("fix", ""),
             "rows": ds.rows if ds else "?", "unsupervised": ds.unsupervised if ds else "?"}
    sep = {"en": " ", "zh": ""}
    summary = {lg: f.summary[lg] + sep[lg] + fill(strings["confirmed"][lg], {**facts, "cause": cause.summary[lg]}, lg)
               for lg in LANGS}
    fix_step = {lg: fill(strings["fix"][lg], facts, lg) for lg in LANGS}
    remediation = {lg: (fix_step[lg], *f.remediation.get(lg, ())) for lg in LANGS}
    where = cause.facts.get("evidence_file")
    evidence = f.evidence + tuple(Evidence(None, f"{where}:{e.line}: {e.text}" if where else f"row {e.line}: {e.text}")
                                  for e in cause.evidence[:EVIDENCE_ROWS])
    # every sampled row trains nothing at all: the cause is confirmed; only EOS tokens left: nearly so
    nothing = bool(ds and ds.rows and ds.unsupervised == ds.rows)
    confidence = max(f.confidence, CONFIRMED_CONFIDENCE) if nothing else min(0.99, f.confidence + PARTIAL_BOOST)
    return replace(f, summary=summary, remediation=remediation, evidence=evidence, confidence=confidence,
                   facts={**f.facts, "confirmed_cause": cause.id, "config": config, "config_fix": facts["fix"]})


def _note(f: Finding, note: dict[str, str]) -> Finding:
    sep = {"en": " ", "zh": ""}
    return replace(f, summary={lg: f.summary[lg] + sep[lg] + note[lg] for lg in LANGS},
                   facts={**f.facts, "config_checked": True})
