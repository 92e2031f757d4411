"""Render a check report: JSON (the findings shaped like analyze's) and the terminal summary."""

from __future__ import annotations

import json
from typing import Any

from logpost import __version__
from logpost.check.core import CheckReport, frag
from logpost.model import LANGS
from logpost.outputs import SEVERITY_COLOUR as _SEVERITY_COLOUR
from logpost.outputs import VERDICT_COLOUR as _VERDICT_COLOUR


def to_json(report: CheckReport) -> dict[str, Any]:
    """The machine-readable check: ``findings`` use analyze's finding shape plus ``entry`` and ``file``."""
    findings = []
    for f in report.findings:
        doc = f.to_json()
        doc["entry"] = f.facts.get("entry")
        doc["file"] = f.facts.get("evidence_file") or f.facts.get("file")
        findings.append(doc)
    return {"logpost_version": __version__, "command": "check", "source": report.source, "mode": report.mode,
            "verdict": report.verdict.value, "findings": findings,
            "datasets": [d.to_json() for d in report.datasets], "settings": report.settings}


def render_json(report: CheckReport) -> str:
    return json.dumps(to_json(report), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def render_terminal(report: CheckReport, lang: str = "en", colour: bool = False, steps: int = 3) -> str:
    import click  # styling only; the CLI is the only caller

    langs = LANGS if lang == "both" else (lang,)
    lg = langs[0]
    style = (lambda text, **kw: click.style(text, **kw)) if colour else (lambda text, **kw: text)
    out = [style(f"logpost {__version__} — check {report.source}", bold=True)]
    for d in report.datasets:
        where = ", ".join(d.files) if d.files else d.path
        head = where if d.entry in (where, d.path) else f"{d.entry}: {where}"
        line = f"{head} · {d.format or '-'} · {d.type or '-'} · {frag('status_' + d.status)[lg]}"
        if d.status == "checked":
            share = f"{100 * d.unsupervised / d.rows:.0f}%" if d.rows else "-"
            line += frag("sampled", rows=d.rows, unsupervised=d.unsupervised, share=share)[lg]
            if d.eos_only:
                line += frag("eos_only", rows=d.eos_only)[lg]
        out.append(line)
    out.append(style(f"verdict: {report.verdict.value.upper()}", fg=_VERDICT_COLOUR[report.verdict.value], bold=True))
    for f in report.findings:
        out.append("")
        row = f", row {f.first_line}" if f.first_line is not None else ""
        head = f"[{f.severity.label.upper()}] {f.id}"
        out.append(style(head, fg=_SEVERITY_COLOUR[f.severity], bold=True)
                   + f"  {f.title[lg]}  (confidence {f.confidence:.2f}, {f.facts.get('entry')}{row})")
        if f.explains:
            out.append(f"  explains: {', '.join(f.explains)}")
        for code in langs:
            out.append("  " + f.summary[code])
        if f.evidence:
            out.append("  evidence:")
            where = str(f.facts.get("evidence_file") or "")
            for e in f.evidence:
                loc = f"{where}:{e.line}" if where else f"row {e.line}"
                out.append(f"    {loc}: {e.text}" if e.line is not None else f"    {e.text}")
        for code in langs:
            for i, step in enumerate(f.remediation[code][:steps], 1):
                out.append(f"  {i}. {step}")
    if not report.findings:
        out.append(frag("no_problem")[lg])
    return "\n".join(out) + "\n"
