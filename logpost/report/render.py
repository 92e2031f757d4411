"""Render a postmortem: Markdown and HTML (jinja2 templates), PDF (the HTML through WeasyPrint), JSON,
and the terminal summary."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import shlex
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from logpost.model import InputError, Postmortem
from logpost.outputs import SEVERITY_COLOUR as _SEVERITY_COLOUR
from logpost.outputs import VERDICT_COLOUR as _VERDICT_COLOUR

if TYPE_CHECKING:  # jinja2 is imported when a template is rendered (JSON and terminal output need none)
    import jinja2
    from markupsafe import Markup
from logpost.report.context import (
    Chart,
    ReportContext,
    build_context,
    load_strings,
    num,
    short_file,
    strings,
    to_json,
    tr,
    truncation,
)


def environment(template_dir: str | None = None, autoescape: bool | None = None,
                table: Mapping[str, Mapping[str, str]] | None = None) -> jinja2.Environment:
    """The jinja2 environment of every report.

    ``template_dir`` comes first: a file there overrides the package's template of the same name,
    and the package's own stay reachable as ``default/<name>`` (so an override can extend them).
    HTML templates are autoescaped (log text is untrusted); Markdown ones are not. Environments are
    cached (compiling the templates costs more than rendering them); ``t`` is bound per render.
    """
    if template_dir and not os.path.isdir(template_dir):
        raise InputError(f"{template_dir}: template folder does not exist")
    env = _environment(os.path.abspath(template_dir) if template_dir else None, autoescape)
    if table is not None and table is not strings():
        env = env.overlay()
        env.globals["t"] = functools.partial(tr, table)
    return env


@functools.lru_cache(maxsize=16)
def _environment(template_dir: str | None, autoescape: bool | None) -> jinja2.Environment:
    import jinja2

    package = jinja2.FileSystemLoader(str(resources.files("logpost.templates")))
    # "default/<name>" always means the package's file, even if DIR has a "default" folder.
    loaders: list[jinja2.BaseLoader] = [jinja2.PrefixLoader({"default": package}), package]
    if template_dir:
        loaders.insert(1, jinja2.FileSystemLoader(template_dir))
    auto: bool | Callable[[str | None], bool] = autoescape if autoescape is not None else _is_html
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                             autoescape=auto, keep_trailing_newline=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals["t"] = functools.partial(tr, strings())
    env.globals["asset"] = functools.partial(_asset, env)
    env.filters["num"] = num
    env.filters["ticks"] = ticks
    env.filters["fence"] = fence
    env.filters["md_cell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return env


def fence(texts: Any) -> str:
    """A Markdown code fence longer than any backtick run in ``texts`` (log lines can hold ```)."""
    longest = max((len(m) for t in texts for m in re.findall(r"`+", str(t))), default=0)
    return "`" * max(3, longest + 1)


_TICKS = re.compile(r"`([^`\n]+)`")


def ticks(text: str) -> Markup:
    """Escape ``text`` and show Markdown-style `code` spans (catalogue texts use them) as <code>."""
    from markupsafe import Markup, escape

    return Markup(_TICKS.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(str(text)))))


def _is_html(name: str | None) -> bool:
    return bool(name) and str(name).endswith((".html.j2", ".html", ".htm", ".xml", ".svg.j2"))


def _asset(env: jinja2.Environment, name: str) -> Markup:
    """A template-folder file inlined verbatim (the stylesheet): overridable like a template."""
    from markupsafe import Markup

    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return Markup(source)


def translate(key: str, lang: str, *args: Any, **kw: Any) -> str:
    """A fixed report string; ``{}`` takes ``args`` (``第 {} 行``), ``{name}`` takes ``kw``."""
    return tr(strings(), key, lang, *args, **kw)


def render_markdown(pm: Postmortem, lang: str = "both", template_dir: str | None = None) -> str:
    table = load_strings(template_dir)
    ctx = build_context(pm, lang, table)
    return _render(environment(template_dir, autoescape=False, table=table), "report.md.j2", template_dir, c=ctx)


def _render(env: jinja2.Environment, name: str, template_dir: str | None, **values: Any) -> str:
    """Render a template; a mistake in a user's ``--template-dir`` is an InputError (one line, exit 2)."""
    import jinja2

    try:
        return env.get_template(name).render(**values)
    except jinja2.TemplateError as exc:
        if not template_dir:
            raise
        where = f"{exc.filename or name}:{exc.lineno}" if isinstance(exc, jinja2.TemplateSyntaxError) else name
        raise InputError(f"{template_dir}: template error in {where}: {exc.message or exc}") from None
    except (KeyError, IndexError, ValueError) as exc:  # t() with an unknown key or placeholder
        if not template_dir:
            raise
        raise InputError(f"{template_dir}: template error in {name}: unknown string or placeholder {exc}") from None


def html_context(pm: Postmortem, lang: str, table: Mapping[str, Mapping[str, str]],
                 media: str = "screen") -> ReportContext:
    """The report context plus the charts (HTML and PDF only): SVG on screen, PNG in print."""
    from logpost.report.charts import captions, metrics_figure

    ctx = build_context(pm, lang, table)
    wasted_from = ctx.summary.since_step if ctx.summary and ctx.summary.wasted_steps else None
    image = metrics_figure(pm, ctx.langs, table, wasted_from, fmt="png" if media == "print" else "svg")
    frame = pm.run.frame
    marked = bool(ctx.findings) or bool(frame["nonfinite"].notna().any())
    points = int((frame["kind"] == "train").sum())
    if image is None:
        charts: tuple[Chart, ...] = ()
    elif isinstance(image, bytes):
        charts = (Chart("metrics", "", captions(table, marked, points), png=image),)
    else:
        charts = (Chart("metrics", image, captions(table, marked, points)),)
    return dataclasses.replace(ctx, charts=charts)


def render_html(pm: Postmortem, lang: str = "both", template_dir: str | None = None, *,
                media: str = "screen") -> str:
    """One self-contained HTML document (inline CSS, charts as SVG data URIs, no external request).

    Args:
        pm: the postmortem.
        lang: ``en``, ``zh`` or ``both`` (interleaved per section).
        template_dir: a folder whose ``report.html.j2`` / ``report.css`` / ``strings.toml`` override
            or extend the package's.
        media: ``screen`` or ``print`` (the PDF): print leaves out what only works on a screen and
            embeds the chart as PNG (WeasyPrint draws SVG slowly).
    """
    table = load_strings(template_dir)
    ctx = html_context(pm, lang, table, media)
    return _render(environment(template_dir, table=table), "report.html.j2", template_dir, c=ctx, media=media)


def render_pdf(pm: Postmortem, lang: str = "both", template_dir: str | None = None) -> bytes:
    """The HTML report through WeasyPrint; Chinese in an embedded CJK font."""
    from logpost.report.pdf import html_to_pdf

    html = render_html(pm, lang, template_dir, media="print")
    roots = [str(resources.files("logpost.templates"))] + ([template_dir] if template_dir else [])
    return html_to_pdf(html, roots)


def render_json(pm: Postmortem) -> str:
    return json.dumps(to_json(pm), ensure_ascii=False, indent=2, allow_nan=False, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)


def render_terminal(pm: Postmortem, lang: str = "en", colour: bool = False, steps: int = 3,
                    width: int | None = None) -> str:
    """A screenful: verdict, each finding with its evidence and its first remediation steps.

    ``width``: wrap prose to this many columns (words intact, continuation lines indented under their
    label) and cut evidence lines to it around the part that matters; None: no wrapping (a pipe).
    """
    import click  # only for styling; the CLI is the only caller

    ctx: ReportContext = build_context(pm, lang if lang != "both" else "en")
    langs = ctx.langs if lang != "both" else ("en", "zh")
    style = (lambda text, **kw: click.style(text, **kw)) if colour else (lambda text, **kw: text)
    r = ctx.run
    lg0 = langs[0]

    def say(key: str, *args: Any, **kw: Any) -> str:
        return translate(key, lg0, *args, **kw)

    def para(text: str, indent: str = "", hang: str | None = None) -> list[str]:
        return wrap(text, width, indent, indent if hang is None else hang)

    out = []
    loss = " / ".join(num(v) for v in (r.loss_first, r.loss_last, r.loss_min))
    out.append(style(f"logpost {ctx.version} — {r.source}", bold=True))
    model = say("term_model", model=r.model) if r.model else ""
    steps_seen = say("term_steps", first=num(r.first_step), last=num(r.last_step)) if r.first_step is not None \
        else say("term_no_steps")
    out += para(say("term_run", framework=r.framework or say("term_unknown_framework"), model=model,
                    steps=steps_seen, loss=loss,
                    records=say("term_records_one") if r.train_records == 1 else say("term_records", n=r.train_records)))
    cut = truncation(pm)
    if cut:
        out += [style(x, fg="yellow") for x in para(say("input_truncated", **cut))]
    verdict = ctx.verdict.upper() if lg0 == "en" else say("verdict_badge_" + ctx.verdict)
    out.append(style(say("term_verdict", verdict=verdict), fg=_VERDICT_COLOUR[ctx.verdict], bold=True))
    for v in ctx.findings:
        f = v.finding
        out.append("")
        sev = f.severity.label.upper() if lg0 == "en" else say("sev_" + f.severity.label)
        where = say("term_where", confidence=f"{f.confidence:.2f}", step=v.first_step, line=v.first_line)
        tag = f"[{sev}] {f.id}"
        head = para(tag + (f"  {f.title[lg0]}  ({where})" if lg0 == "en" else f"  {f.title[lg0]}（{where}）"),
                    "", "  ")
        head[0] = style(tag, fg=_SEVERITY_COLOUR[f.severity], bold=True) + head[0][len(tag):]
        out += head
        if f.explains:
            out += para(say("term_explains", ids=", ".join(f.explains)), "  ", "    ")
        for lg in langs:
            out += para(f.summary[lg], "  ")
        out.append("  " + say("term_evidence"))
        for e in f.evidence[:6]:
            short = short_file(pm, e.file) if e.line is not None else None
            where = " ".join(w for w in (short or "", say("ev_line", e.line) if e.line is not None else "",
                                         say("ev_step", e.step) if e.step is not None else "") if w)
            sep = ": " if lg0 == "en" else "："
            prefix = f"    {where}{sep}" if where else "    - "
            room = max(24, width - text_width(prefix)) if width else 150
            out.append(prefix + focus(e.text, room))
        for lg in langs:
            for i, step in enumerate(f.remediation[lg][:steps], 1):
                out += para(step, f"  {i}. ", "     ")
    if not ctx.findings:
        out += para(say("no_findings"))
    if ctx.findings:
        out.append("")
        log = "LOG" if pm.source == "<stdin>" else shlex.quote(pm.source)
        out += para(say("term_more", log=log, id=ctx.findings[0].finding.id), "", "  ")
    return "\n".join(out) + "\n"


# -- terminal text: display width, wrapping, evidence cut around what matters ----------------------

_WIDE = re.compile(r"[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]")
# A word, or one CJK character (Chinese breaks between any two), or a run of spaces.
_TOKEN = re.compile(r"\s+|[\u2e80-\ua4cf\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60]|[^\s\u2e80-\ua4cf\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60]+")
_NO_LINE_START = set("，。、；：！？）」』》”’%…,.;:!?)]")  # punctuation that stays with the word before it


def text_width(text: str) -> int:
    """Columns a text takes in a terminal: East Asian wide characters take two."""
    return len(text) + len(_WIDE.findall(text))


def wrap(text: str, width: int | None, indent: str = "", hang: str = "") -> list[str]:
    """``text`` in lines of at most ``width`` columns, words intact (a word longer than a line gets its
    own line), Chinese broken between characters but never before closing punctuation (the character
    before it moves down with it); the first line starts with ``indent``, the others with ``hang``.
    ``width`` None: one line."""
    text = " ".join(text.split())
    if width is None or text_width(indent) + text_width(text) <= width:
        return [indent + text]
    lines: list[str] = []
    cur: list[str] = []  # the current line's pieces, each with the space before it
    lead, space = indent, False

    def used(pieces: list[str]) -> int:
        return text_width(lead) + sum(text_width(x) for x in pieces)

    for tok in _TOKEN.findall(text):
        if tok.isspace():
            space = True
            continue
        piece = (" " if space and cur else "") + tok
        space = False
        if cur and used(cur) + text_width(piece) > width:
            carry: list[str] = []
            if tok in _NO_LINE_START and len(cur) > 1:  # the character before goes down with it
                carry = [cur.pop().lstrip()]
            lines.append((lead + "".join(cur)).rstrip())
            lead, cur = hang, carry
            piece = (" " if carry and piece.startswith(" ") else "") + tok
        cur.append(piece)
    lines.append((lead + "".join(cur)).rstrip())
    return lines


# What matters in a long evidence line, first match wins: the number a finding is about, the error's name.
_FOCUS = tuple(re.compile(p) for p in (
    r"ran for \d+ milliseconds", r"Timeout\(ms\)=\d+", r"tokens/trainable['\"]?:\s*['\"]?[-\d.]+",
    r"total_supervised_tokens['\"]?:?\s*\d+", r"[Tt]ried to allocate [\d.]+ [GM]iB", r"CUDA out of memory",
    r"exit ?code\s*[:=]?\s*-?\d+", r"return code\s*=\s*-?\d+", r"\b\w*(?:Error|Exception)\b",
    r"OVERFLOW", r"\b(?:nan|inf)\b"))


_PREFIX = re.compile(r"^(?:\[[^\]]{1,80}\]:?\s*|\d{4}-\d\d-\d\d[ T][\d:,.]+\s*|(?:DEBUG|INFO|WARNING|WARN|ERROR)\b:?\s*)+")


def focus(text: str, width: int) -> str:
    """An evidence line in ``width`` characters: whole when it fits; else without its timestamp and logger
    prefix, then its start and the part that matters (see ``_FOCUS``), with "…" where text was left out."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    lead = ""
    p = _PREFIX.match(text)
    if p and p.end() < len(text) - 12:  # "[2026-11-27 23:56:25,776] [WARNING] [axolotl.x] " says little
        text, lead, width = text[p.end():], "… ", width - 2
        if len(text) <= width:
            return lead + text
    m = next((m for m in (rx.search(text) for rx in _FOCUS) if m), None)
    if m is None or m.end() <= width - 1:
        return lead + text[: width - 1] + "…"
    span = m.end() - m.start()
    if span >= width - 2:
        return lead + "…" + text[m.start(): m.start() + width - 2] + "…"
    head = text[: max(0, min(width // 2, width - span - 12))]  # the line's start says what kind of line it is
    if ", " in head:  # ends at a field boundary, else a word's
        head = head[: head.rindex(", ") + 1]
    elif " " in head:
        head = head[: head.rindex(" ")]
    room = width - len(head) - 3  # " … " between
    start = max(len(head), m.start() - max(0, (room - span) // 3))
    comma = text.rfind(", ", len(head), m.start())
    if comma != -1 and comma + 2 >= start - 12:  # begin at a field when one is near, else at a word
        start = comma + 2
    elif text[start - 1: start] not in ("", " "):
        space = text.find(" ", start, m.start())
        start = space + 1 if space != -1 else m.start()
    end = min(len(text), start + room)
    tail = "…" if end < len(text) else ""
    return lead + (head + " … " if head else "…") + text[start: end - len(tail)] + tail


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
