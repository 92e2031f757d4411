"""Scan outputs: the terminal table, csv, json, and the Markdown / HTML index (templates/scan.*.j2).

Everything here reads :class:`~logpost.scan.catalog.Row` values (from the catalog), so a query and
a fresh scan print the same thing. Output is deterministic: rows are sorted, dates are UTC, the plot
is an SVG with a fixed hash salt and no date.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from logpost import __version__
from logpost.model import LANGS
from logpost.report.context import num, strings
from logpost.scan import ScanResult
from logpost.scan.catalog import VERDICT_ORDER, Row

FORMATS = ("terminal", "csv", "json", "md", "html")
VERDICT_COLOURS = {"error": "magenta", "failed": "red", "degraded": "yellow", "unknown": "white",
                   "healthy": "green"}
# plot colours (colour-blind safe Okabe-Ito), same order as VERDICT_ORDER
PLOT_COLOURS = {"error": "#CC79A7", "failed": "#D55E00", "degraded": "#E69F00", "unknown": "#999999",
                "healthy": "#009E73"}
CSV_COLUMNS = ("run", "status", "verdict", "findings", "worst", "framework", "model", "first_step", "last_step",
               "train_records", "loss_first", "loss_min", "loss_last", "duration_s", "completed", "modified",
               "report", "error")


def render(result: ScanResult, fmt: str, lang: str = "both", colour: bool = False, output: str | None = None) -> str:
    """The result in ``fmt``; ``output`` (the file being written) makes report links relative to it."""
    if fmt == "json":
        return render_json(result)
    if fmt == "csv":
        return render_csv(result)
    if fmt == "md":
        return render_index(result, "md", lang, output)
    if fmt == "html":
        return render_index(result, "html", lang, output)
    return render_table(result, lang if lang != "both" else "en", colour, terminal_width())


# ------------------------------------------------------------------ machine-readable


def json_row(r: Row) -> dict[str, Any]:
    """The JSON shape of one run: ``run``, ``status``, ``verdict``, ``findings`` (ids), ``error`` and more."""
    return {"run": r.path, "status": r.status, "verdict": r.verdict if r.status == "ok" else None,
            "findings": r.finding_ids, "error": r.error, "worst": r.worst, "framework": r.framework,
            "model": r.model, "modified": r.modified, "report": r.report,
            "metrics": {"first_step": r.first_step, "last_step": r.last_step, "train_records": r.train_records,
                        "loss_first": r.loss_first, "loss_min": r.loss_min, "loss_last": r.loss_last,
                        "duration_s": r.duration, "completed": r.completed}}


def render_json(result: ScanResult) -> str:
    return json.dumps([json_row(r) for r in result.rows], ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def render_csv(result: ScanResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in result.rows:
        w.writerow([r.path, r.status, r.verdict if r.status == "ok" else "", " ".join(r.finding_ids), r.worst or "",
                    r.framework or "", r.model or "", _opt(r.first_step), _opt(r.last_step), _opt(r.train_records),
                    _opt(r.loss_first), _opt(r.loss_min), _opt(r.loss_last), _opt(r.duration),
                    "" if r.completed is None else str(r.completed).lower(), r.modified or "", r.report or "",
                    r.error or ""])
    return buf.getvalue()


def _opt(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


# ------------------------------------------------------------------ terminal


def terminal_width() -> int | None:
    """The terminal's width (``COLUMNS`` when set); None into a pipe or a file (nothing is cut)."""
    import shutil
    import sys

    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return max(40, shutil.get_terminal_size((80, 24)).columns)
    return None


def label(r: Row, base: str | None) -> str:
    """The run's path relative to the scanned folder (absolute in queries)."""
    if base and (r.path == base or r.path.startswith(base.rstrip(os.sep) + os.sep)):
        return os.path.relpath(r.path, base)
    return r.path


def render_table(result: ScanResult, lang: str = "en", colour: bool = False, width: int | None = None) -> str:
    """A sorted table, most urgent first, with a count line under it, ``width`` columns wide at most
    (as far as the fixed columns allow)."""
    import click  # styling only; the CLI is the only caller

    t = _t(lang)
    head = [t("scan_col_verdict"), t("scan_col_findings"), t("scan_col_framework"), t("scan_col_steps"),
            t("scan_col_loss"), t("scan_col_modified"), t("scan_col_run")]
    body = []
    for r in result.rows:
        findings = ",".join(r.finding_ids) if r.status == "ok" else _clip(_reason(r.error or ""), 60)
        steps = f"{r.first_step}–{r.last_step}" if r.first_step is not None else "–"
        loss = "/".join(num(v) for v in (r.loss_first, r.loss_min, r.loss_last)) if r.loss_first is not None else "–"
        body.append([r.state.upper() if lang == "en" else t("scan_verdict_" + r.state), findings or "–", r.framework or "–", steps, loss,
                     (r.modified or "–")[:10], label(r, result.base)])
    if width is not None:
        head, body = fit_table(head, body, width)
    widths = [max([_width(h)] + [_width(row[i]) for row in body]) for i, h in enumerate(head)]
    widths[-1] = 0  # the last column is not padded

    def line(cells: list[str], style_first: str | None = None) -> str:
        out = []
        for i, c in enumerate(cells):
            text = c + " " * (widths[i] - _width(c)) if i < len(cells) - 1 else c
            if i == 0 and style_first and colour:
                text = click.style(text, fg=VERDICT_COLOURS[style_first], bold=True)
            out.append(text)
        return "  ".join(out).rstrip()

    lines = [line(head)]
    lines += [line(cells, r.state) for cells, r in zip(body, result.rows, strict=True)]
    counts = result.counts()
    if lang == "zh":
        summary = "，".join(f"{counts[v]} 个{t('scan_verdict_' + v)}" for v in VERDICT_ORDER if counts[v])
        tail = f"：{summary}" if summary else ""
    else:
        summary = ", ".join(f"{counts[v]} {t('scan_verdict_' + v)}" for v in VERDICT_ORDER if counts[v])
        tail = f": {summary}" if summary else ""
    lines.append("")
    total = t("scan_total_one") if len(result.rows) == 1 else t("scan_total").format(len(result.rows))
    lines.append(total + tail)
    return "\n".join(lines) + "\n"


FINDINGS, MODIFIED, RUN = 1, 5, 6  # columns of the terminal table that give way to fit it


def fit_table(head: list[str], body: list[list[str]], width: int) -> tuple[list[str], list[list[str]]]:
    """Fit the table in ``width`` columns: the date column goes first, then the findings and the run's
    path are cut (findings to the ids that fit and "+N", errors and paths with "…")."""
    def total(h: list[str], rows: list[list[str]]) -> int:
        w = [max([_width(x[i]) for x in [h, *rows]]) for i in range(len(h))]
        return sum(w) + 2 * (len(h) - 1)

    if total(head, body) <= width:
        return head, body
    if len(head) > RUN:  # without the date
        head = head[:MODIFIED] + head[MODIFIED + 1:]
        body = [r[:MODIFIED] + r[MODIFIED + 1:] for r in body]
    run = len(head) - 1
    fixed = sum(max(_width(x[i]) for x in [head, *body]) for i in range(len(head)) if i not in (FINDINGS, run))
    avail = width - fixed - 2 * (len(head) - 1)
    find_nat = max(_width(x[FINDINGS]) for x in [head, *body])
    run_nat = max(_width(x[run]) for x in [head, *body])
    if find_nat + run_nat <= avail:
        return head, body
    run_w = min(run_nat, max(14, avail - min(find_nat, 22)))
    find_w = max(_width(head[FINDINGS]), avail - run_w)
    out = []
    for r in body:
        r = list(r)
        r[FINDINGS] = _fit_ids(r[FINDINGS], find_w)
        if _width(r[run]) > run_w:  # the end of a path names the run
            r[run] = "…" + r[run][len(r[run]) - run_w + 1:]
        out.append(r)
    return head, out


def _reason(error: str) -> str:
    """An error without the path it starts with (the RUN column names the run): "empty file"."""
    m = re.match(r"(?:/|[A-Za-z]:\\)[^:]*: ", error)
    return error[m.end():] if m else error


def _fit_ids(text: str, width: int) -> str:
    """Comma-separated ids cut to the ones that fit, with "+N" for the rest; other text cut with "…"."""
    if _width(text) <= width:
        return text
    ids = text.split(",")
    if len(ids) > 1 and all(i.isupper() or "_" in i for i in ids):
        for k in range(len(ids) - 1, 0, -1):
            short = ",".join(ids[:k]) + f" +{len(ids) - k}"
            if _width(short) <= width:
                return short
    return _clip(text, width)


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if "\u2e80" <= ch <= "\uffef" else 1 for ch in text)


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` display columns."""
    return text + " " * max(0, width - _width(text))


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _t(lang: str) -> Any:
    s = strings()
    return lambda key: s[key][lang]


# ------------------------------------------------------------------ index (md, html)


@dataclass(frozen=True)
class SignatureCount:
    id: str
    title: dict[str, str]
    severity: str
    runs: int
    share: str
    first_seen: str
    last_seen: str


@dataclass(frozen=True)
class RunView:
    row: Row
    label: str
    link: str | None
    state: str
    steps: str
    loss: str
    modified: str
    findings: tuple[str, ...]


@dataclass(frozen=True)
class IndexContext:
    """What templates/scan.*.j2 receive."""

    langs: tuple[str, ...]
    version: str
    total: int
    counts: dict[str, int]
    signatures: tuple[SignatureCount, ...]
    runs: tuple[RunView, ...]
    plot_svg: str | None
    period: str | None  # day | week | month: the bucket of the plot
    span: str | None  # first – last date of the runs
    s: dict[str, dict[str, str]]


def build_index(result: ScanResult, lang: str = "both", output: str | None = None, plot: bool = True) -> IndexContext:
    rows = result.rows
    link_base = os.path.dirname(os.path.abspath(output)) if output and output != "-" else os.getcwd()
    runs = []
    for r in rows:
        link = None
        if r.report and os.path.exists(r.report):
            link = os.path.relpath(r.report, link_base).replace(os.sep, "/")
        runs.append(RunView(
            row=r, label=label(r, result.base), link=link, state=r.state,
            steps=f"{r.first_step}–{r.last_step}" if r.first_step is not None else "–",
            loss=" / ".join(num(v) for v in (r.loss_first, r.loss_min, r.loss_last)) if r.loss_first is not None else "–",
            modified=(r.modified or "–")[:10], findings=tuple(r.finding_ids)))
    sigs = _signature_counts(rows)
    dates = [r.mtime_ns for r in rows if r.mtime_ns is not None]
    span = None
    if dates:
        span = f"{_day(min(dates)).isoformat()} – {_day(max(dates)).isoformat()}"
    svg, period = verdict_plot(rows) if plot else (None, None)
    return IndexContext(langs=LANGS if lang == "both" else (lang,), version=__version__, total=len(rows),
                        counts=result.counts(), signatures=sigs, runs=tuple(runs), plot_svg=svg, period=period,
                        span=span, s=strings())


def _signature_counts(rows: list[Row]) -> tuple[SignatureCount, ...]:
    per: dict[str, list[Row]] = {}
    info: dict[str, tuple[dict[str, str], str]] = {}
    for r in rows:
        for f in r.findings:
            per.setdefault(f.id, []).append(r)
            info.setdefault(f.id, (f.title, f.severity))
    total = len(rows) or 1
    out = []
    for sig_id, rs in per.items():
        times = [r.mtime_ns for r in rs if r.mtime_ns is not None]
        out.append(SignatureCount(
            id=sig_id, title=info[sig_id][0], severity=info[sig_id][1], runs=len(rs),
            share=f"{100 * len(rs) / total:.1f}%",
            first_seen=_day(min(times)).isoformat() if times else "–",
            last_seen=_day(max(times)).isoformat() if times else "–"))
    return tuple(sorted(out, key=lambda c: (-c.runs, c.id)))


def _day(ns: int) -> date:
    return datetime.fromtimestamp(ns / 1e9, UTC).date()


def buckets(days: list[date]) -> tuple[str, Any]:
    """Bucket size for the plot: days up to two months, weeks up to two years, else months."""
    span = (max(days) - min(days)).days
    if span <= 62:
        return "day", lambda d: d
    if span <= 730:
        return "week", lambda d: d - timedelta(days=d.weekday())
    return "month", lambda d: d.replace(day=1)


def verdict_plot(rows: list[Row]) -> tuple[str | None, str | None]:
    """Runs per period as stacked bars by verdict, as an inline SVG (deterministic)."""
    dated = [(_day(r.mtime_ns), r.state) for r in rows if r.mtime_ns is not None]
    if not dated:
        return None, None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    period, key = buckets([d for d, _ in dated])
    counts: dict[date, Counter[str]] = {}
    for d, state in dated:
        counts.setdefault(key(d), Counter())[state] += 1
    xs = sorted(counts)
    width = {"day": 0.8, "week": 5.6, "month": 24.0}[period]
    rc: Any = {"svg.hashsalt": "logpost-scan", "svg.fonttype": "none", "font.size": 9,
          "font.family": ["DejaVu Sans", "Noto Sans CJK SC", "sans-serif"]}
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    pos = [float(v) for v in mdates.date2num(xs)]
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(8, 2.6), dpi=100)
        try:
            bottom = [0] * len(xs)
            for state in reversed(VERDICT_ORDER):  # healthy at the bottom, errors on top
                ys = [counts[x][state] for x in xs]
                if any(ys):
                    ax.bar(pos, ys, width=width, bottom=bottom, color=PLOT_COLOURS[state], label=state,
                           align="edge" if period != "day" else "center")
                    bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
            ax.set_ylabel("runs / 运行数")
            ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=10))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m" if period == "month" else "%Y-%m-%d"))
            pad = timedelta(days={"day": 3, "week": 14, "month": 45}[period])
            ax.set_xlim(float(mdates.date2num(xs[0] - pad)), float(mdates.date2num(xs[-1] + pad)))
            ax.spines[["top", "right"]].set_visible(False)
            handles, names = ax.get_legend_handles_labels()
            ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            fig.autofmt_xdate()
            fig.tight_layout()
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
        finally:
            plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):], period


def render_index(result: ScanResult, fmt: str, lang: str = "both", output: str | None = None) -> str:
    """The Markdown or self-contained HTML index (counts per signature, verdicts over time, runs)."""
    from logpost.report.render import environment

    ctx = build_index(result, lang, output, plot=fmt == "html")
    env = environment(autoescape=fmt == "html")
    return env.get_template(f"scan.{fmt}.j2").render(c=ctx)
