"""Render a check report: JSON (the findings shaped like analyze's) and the terminal summary."""

from __future__ import annotations

import json
from typing import Any

from logpost import __version__
from logpost.check.core import CheckReport
from logpost.model import LANGS, Severity

_SEVERITY_COLOUR = {Severity.CRITICAL: "red", Severity.ERROR: "red", Severity.WARNING: "yellow",
                    Severity.INFO: "cyan"}
_VERDICT_COLOUR = {"failed": "red", "degraded": "yellow", "healthy": "green", "unknown": "white"}
_STATUS = {"checked": {"en": "checked", "zh": "已检查"}, "remote": {"en": "remote, not checked", "zh": "远程，未检查"},
           "unreadable": {"en": "unreadable", "zh": "无法读取"}, "empty": {"en": "empty", "zh": "为空"}}


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
        line = f"{head} · {d.format or '-'} · {d.type or '-'} · {_STATUS[d.status][lg]}"
        if d.status == "checked":
            share = f"{100 * d.unsupervised / d.rows:.0f}%" if d.rows else "-"
            line += (f" · {d.rows} rows sampled, {d.unsupervised} ({share}) train nothing" if lg == "en" else
                     f" · 抽样 {d.rows} 行，其中 {d.unsupervised} 行（{share}）没有可训练内容")
            if d.eos_only:
                line += (f", {d.eos_only} only an end token" if lg == "en" else f"，{d.eos_only} 行只训练结束符")
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
            where = f.facts.get("evidence_file")
            for e in f.evidence:
                loc = f"{where}:{e.line}" if where else f"row {e.line}"
                out.append(f"    {loc}: {e.text}" if e.line is not None else f"    {e.text}")
        for code in langs:
            for i, step in enumerate(f.remediation[code][:steps], 1):
                out.append(f"  {i}. {step}")
    if not report.findings:
        out.append("No problem found in the sampled rows." if lg == "en" else "抽样的数据行中没有发现问题。")
    return "\n".join(out) + "\n"
