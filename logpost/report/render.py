"""Render a postmortem: Markdown (jinja2 template), JSON, and the terminal summary."""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import jinja2

from logpost.model import Postmortem, Severity
from logpost.report.context import ReportContext, build_context, num, strings, to_json

_SEVERITY_COLOUR = {Severity.CRITICAL: "red", Severity.ERROR: "red", Severity.WARNING: "yellow",
                    Severity.INFO: "cyan"}
_VERDICT_COLOUR = {"failed": "red", "degraded": "yellow", "healthy": "green", "unknown": "white"}


def environment(template_dir: str | None = None, autoescape: bool = False) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(resources.files("logpost.templates")))]
    if template_dir:
        loaders.insert(0, jinja2.FileSystemLoader(template_dir))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                             autoescape=autoescape, keep_trailing_newline=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals["t"] = translate
    env.filters["num"] = num
    env.filters["md_cell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return env


def translate(key: str, lang: str, *args: Any) -> str:
    """A fixed report string; ``{}`` in the Chinese forms takes ``args`` (``第 {} 行``)."""
    text = strings()[key][lang]
    return text.format(*args) if args else text


def render_markdown(pm: Postmortem, lang: str = "both", template_dir: str | None = None) -> str:
    ctx = build_context(pm, lang)
    return environment(template_dir).get_template("report.md.j2").render(c=ctx)


def render_json(pm: Postmortem) -> str:
    return json.dumps(to_json(pm), ensure_ascii=False, indent=2, allow_nan=False, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)


def render_terminal(pm: Postmortem, lang: str = "en", colour: bool = False, steps: int = 3) -> str:
    """A screenful: verdict, each finding with its evidence and its first remediation steps."""
    import click  # only for styling; the CLI is the only caller

    ctx: ReportContext = build_context(pm, lang if lang != "both" else "en")
    langs = ctx.langs if lang != "both" else ("en", "zh")
    style = (lambda text, **kw: click.style(text, **kw)) if colour else (lambda text, **kw: text)
    r = ctx.run
    out = []
    loss = " / ".join(num(v) for v in (r.loss_first, r.loss_last, r.loss_min))
    out.append(style(f"logpost {ctx.version} — {r.source}", bold=True))
    model = f" · model {r.model}" if r.model else ""
    steps_seen = f"steps {num(r.first_step)}–{num(r.last_step)}" if r.first_step is not None else "no steps"
    out.append(f"{r.framework or 'unknown framework'}{model} · {steps_seen} ({r.train_records} training records)"
               f" · loss first/last/min {loss}")
    out.append(style(f"verdict: {ctx.verdict.upper()}", fg=_VERDICT_COLOUR[ctx.verdict], bold=True))
    for v in ctx.findings:
        f = v.finding
        out.append("")
        head = f"[{f.severity.label.upper()}] {f.id}"
        where = f"confidence {f.confidence:.2f}, step {v.first_step}, line {v.first_line}"
        out.append(style(head, fg=_SEVERITY_COLOUR[f.severity], bold=True) + f"  {f.title[langs[0]]}  ({where})")
        if f.explains:
            out.append(f"  explains: {', '.join(f.explains)}")
        for lg in langs:
            out.append("  " + f.summary[lg])
        out.append("  evidence:")
        for e in f.evidence[:6]:
            loc = f"line {e.line}" if e.line is not None else "      "
            stp = f" step {e.step}" if e.step is not None else ""
            out.append(f"    {loc}{stp}: {_clip(e.text, 150)}")
        for lg in langs:
            for i, step in enumerate(f.remediation[lg][:steps], 1):
                out.append(f"  {i}. {step}")
    if not ctx.findings:
        out.append(translate("no_findings", langs[0]))
    if ctx.findings:
        out.append("")
        out.append("full postmortem: logpost analyze LOG -f md -o postmortem.md · logpost explain ID")
    return "\n".join(out) + "\n"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
