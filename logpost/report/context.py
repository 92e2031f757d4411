"""The typed context every report template receives (never a DataFrame), and the JSON document.

Templates see only these dataclasses, the strings file and plain values, so a template author can
read what is available here, and every output format says the same thing.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from logpost import __version__
from logpost.model import LANGS, Finding, Postmortem, Severity, fmt_number
from logpost.report.appendix import Excerpt, excerpts, head, readable

TABLE_ROWS = 12  # rows of the compact metrics table
CONTEXT_LINES = 2  # lines shown before and after each cited line in the appendix
MAX_CITED = 80  # cited lines re-read for the appendix; findings keep a handful each
MAX_TIMELINE_ERRORS = 6  # error/traceback events on the timeline (folded repeats count once)


@cache
def strings() -> dict[str, dict[str, str]]:
    """The report's fixed strings, ``{key: {"en": .., "zh": ..}}``."""
    text = resources.files("logpost.templates").joinpath("strings.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_strings(template_dir: str | None = None) -> dict[str, dict[str, str]]:
    """The package strings, with ``template_dir/strings.toml`` (if any) overriding or adding keys.

    Raises:
        InputError: the override file is not valid TOML.
    """
    table = strings()
    path = os.path.join(template_dir, "strings.toml") if template_dir else None
    if not path or not os.path.isfile(path):
        return table
    from logpost.model import InputError

    try:
        with open(path, "rb") as fh:
            extra = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: {exc}") from None
    merged = {k: dict(v) for k, v in table.items()}
    for key, forms in extra.items():
        if not isinstance(forms, dict):
            raise InputError(f"{path}: [{key}] must be a table with en and zh")
        merged.setdefault(key, {}).update({lg: str(v) for lg, v in forms.items()})
    return merged


def tr(table: Mapping[str, Mapping[str, str]], key: str, lang: str, *args: Any, **kw: Any) -> str:
    """A fixed string in ``lang``; ``{}`` takes ``args``, ``{name}`` takes ``kw``."""
    text = table[key][lang]
    return text.format(*args, **kw) if (args or kw) else text


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
    step_method: Mapping[str, str]  # how steps were placed, per language


@dataclass(frozen=True)
class EvidenceView:
    """One evidence item; ``anchor`` links to its excerpt in the appendix (``None`` when not re-read)."""

    line: int | None
    step: int | None
    text: str
    anchor: str | None
    file: str | None = None  # the log file, named only when the run has several (a run directory)


@dataclass(frozen=True)
class FindingView:
    finding: Finding
    severity: str
    first_step: str
    first_line: str
    anchor: str = ""
    evidence: tuple[EvidenceView, ...] = ()


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
class ExecSummary:
    """The executive summary: facts, and the sentences built from them in each language.

    ``wasted_steps`` counts the logged training steps from the root finding's first step to the
    last logged step (inclusive) when the verdict is ``failed``; ``None`` otherwise.
    """

    root_id: str | None
    since_step: int | None
    since_line: int | None
    last_step: int | None
    logged_steps: int | None
    wasted_steps: int | None
    wasted_share: float | None
    planned_steps: int | None
    sentences: Mapping[str, tuple[str, ...]]
    loss_first: str = "–"  # as text: "nan" when the record logged nan, "–" when it logged no loss
    loss_last: str = "–"


@dataclass(frozen=True)
class TimelineEntry:
    """A moment of the run. ``kind``: start | header | first_record | finding | error | traceback |
    last_record | completed | end. ``text`` is the log's own line (untrusted, escaped by templates)."""

    kind: str
    line: int | None
    step: int | None
    when: str | None
    label: Mapping[str, str]
    text: str | None
    count: int = 1
    severity: str | None = None


@dataclass(frozen=True)
class ConfigItem:
    """A setting the log printed: ``key`` as parsed, ``label`` per language, value as text."""

    key: str
    label: Mapping[str, str]
    value: str
    line: int | None


@dataclass(frozen=True)
class RunHeader:
    """What the masthead shows; dates are the first and last timestamps seen in the log, if any."""

    title: str
    source: str
    framework: str | None
    model: str | None
    started: str | None
    ended: str | None
    steps: str | None


@dataclass(frozen=True)
class Appendix:
    """Cited lines with context. ``available`` is False for stdin (nothing to re-read); then
    ``cited`` still lists every cited line with the evidence text the finding kept."""

    available: bool
    context: int
    excerpts: tuple[Excerpt, ...]
    cited: tuple[EvidenceView, ...]
    omitted: int = 0
    cited_by: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # line -> finding ids citing it
    reason: str | None = None  # why there is no context: "stdin" | "not_a_file" | "unreadable"


@dataclass(frozen=True)
class Chart:
    """A rendered figure (SVG for the screen, PNG for the PDF) with its caption per language.

    Templates embed ``data_uri`` in an ``<img>``: WeasyPrint then draws the SVG on its own instead
    of cascading the page's CSS through hundreds of SVG elements (0.5 s less per PDF).
    """

    key: str
    svg: str  # SVG markup; empty when the chart was drawn as PNG (the PDF)
    caption: Mapping[str, str]
    png: bytes | None = None

    @property
    def data_uri(self) -> str:
        if self.png is not None:
            return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg.encode("utf-8")).decode("ascii")


@dataclass(frozen=True)
class ReportContext:
    langs: tuple[str, ...]
    version: str
    verdict: str
    run: RunSummary
    findings: tuple[FindingView, ...]
    metrics: tuple[MetricsRow, ...]
    s: dict[str, dict[str, str]]
    header: RunHeader | None = None
    summary: ExecSummary | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    config: tuple[ConfigItem, ...] = ()
    appendix: Appendix | None = None
    charts: tuple[Chart, ...] = ()


def run_summary(pm: Postmortem) -> RunSummary:
    run = pm.run
    train = run.facts.train
    losses = train["loss"]
    finite = losses[np.isfinite(losses.to_numpy(dtype="float64", na_value=np.nan))]
    steps = pm.run.frame["step"].dropna()
    return RunSummary(
        source=pm.source, framework=run.framework, frameworks=run.frameworks, model=run.facts.model,
        lines=run.lines, records=len(run.frame), train_records=len(train),
        first_step=int(steps.min()) if len(steps) else None, last_step=int(steps.max()) if len(steps) else None,
        loss_first=float(losses.iloc[0]) if len(losses) and not pd.isna(losses.iloc[0]) else None,
        loss_last=float(losses.iloc[-1]) if len(losses) and not pd.isna(losses.iloc[-1]) else None,
        loss_min=float(finite.min()) if len(finite) else None,
        completed=True if run.facts.completed else None,
        step_method=step_method_texts(pm, strings()))


def step_method_texts(pm: Postmortem, table: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """How the training records got their steps, said from the frame's ``step_source`` column."""
    train = pm.run.facts.train
    sources = train["step_source"].dropna()
    if sources.empty:
        key, kw = "step_method_none", {}
    else:
        source = str(sources.mode().iloc[0])
        steps = train["step"].dropna().astype("int64").sort_values()
        gaps = steps.diff().dropna()
        interval = int(gaps[gaps > 0].median()) if (gaps > 0).any() else 1
        spe = pm.run.facts.header.get("steps_per_epoch")
        key = f"step_method_{source}" if source in ("logged", "epoch", "progress", "interval") else "step_method_ordinal"
        kw = {"interval": interval, "spe": num(spe) if spe is not None else "?"}
    return {lg: tr(table, key, lg, **kw) for lg in LANGS}


def metrics_rows(pm: Postmortem, limit: int = TABLE_ROWS) -> tuple[MetricsRow, ...]:
    train = pm.run.facts.train
    if train.empty:
        return ()
    flagged_lines = {e.line for f in pm.findings for e in f.evidence if e.line is not None}
    n = len(train)
    picks = set(range(n)) if n <= limit else {round(i * (n - 1) / (limit - 1)) for i in range(limit)}
    lines = train["line"].to_numpy(dtype="float64", na_value=np.nan)
    positions = np.flatnonzero(np.isin(lines, np.array(sorted(flagged_lines), dtype="float64")))[:3].tolist()
    picks |= set(positions)
    rows = []
    for i in sorted(picks):
        r = train.iloc[i]
        bad = set(str(r["nonfinite"]).split(",")) if not pd.isna(r["nonfinite"]) else set()
        rows.append(MetricsRow(
            step=num(None if pd.isna(r["step"]) else int(r["step"])),
            loss=_cell(r["loss"], "loss" in bad), grad_norm=_cell(r["grad_norm"], "grad_norm" in bad),
            learning_rate=_cell(r["learning_rate"], "learning_rate" in bad),
            eval_loss=_cell(r["eval_loss"], "eval_loss" in bad), line=num(None if pd.isna(r["line"]) else int(r["line"])),
            flagged=(not pd.isna(r["line"])) and int(r["line"]) in flagged_lines))
    return tuple(rows)


def _cell(v: Any, nonfinite: bool = False) -> str:
    """A metric as text; a NaN cell is "not logged" (–) unless the record logged it as nan/inf."""
    if v is None or v is pd.NA:
        return "nan" if nonfinite else "–"
    f = float(v)
    if math.isnan(f):
        return "nan" if nonfinite else "–"
    return fmt_number(f)


def build_context(pm: Postmortem, lang: str = "both",
                  table: Mapping[str, Mapping[str, str]] | None = None) -> ReportContext:
    """Everything a template may show, computed once (the appendix re-reads the cited lines)."""
    table = table or strings()
    langs = langs_for(lang)
    run = run_summary(pm)
    appendix = build_appendix(pm)
    anchors = {e.line: e.anchor for e in appendix.cited if e.anchor}
    views = tuple(FindingView(
        finding=f, severity=f.severity.label,
        first_step=num(f.first_step) if f.first_step is not None else "–",
        first_line=num(f.first_line) if f.first_line is not None else "–",
        anchor=f"finding-{f.id.lower()}",
        evidence=tuple(EvidenceView(e.line, e.step, e.text, anchors.get(e.line) if e.line is not None else None,
                                    short_file(pm, e.file))
                       for e in f.evidence)) for f in pm.findings)
    header = run_header(pm, run)
    return ReportContext(langs=langs, version=__version__, verdict=pm.verdict.value, run=run,
                         findings=views, metrics=metrics_rows(pm), s={k: dict(v) for k, v in table.items()},
                         header=header, summary=exec_summary(pm, run, table),
                         timeline=timeline(pm, table, header.started), config=configuration(pm, table),
                         appendix=appendix)


# -- executive summary ---------------------------------------------------------------------------

def _train_steps(pm: Postmortem) -> tuple[int | None, int | None, int]:
    steps = pm.run.facts.train["step"].dropna()
    if not len(steps):
        return None, None, 0
    return int(steps.min()), int(steps.max()), int(steps.nunique())


def exec_summary(pm: Postmortem, run: RunSummary, table: Mapping[str, Mapping[str, str]]) -> ExecSummary:
    """What went wrong, since when, and what it cost, in plain words per language."""
    first, last, logged = _train_steps(pm)
    planned = pm.run.facts.total_steps
    root = pm.findings[0] if pm.findings else None
    wasted = share = None
    span = last - (first if first is not None else 1) + 1 if last is not None else 0
    # wasted steps: only for a failure that went on for more than one logged step (not a crash or a hang
    # at the last one)
    if root is not None and root.severity >= Severity.ERROR and root.first_step is not None and last is not None \
            and root.first_step < last:
        wasted = max(0, last - root.first_step + 1)
        share = wasted / span if span > 0 else None
    out: dict[str, tuple[str, ...]] = {}
    cut = truncation(pm)
    for lg in LANGS:
        say: list[str] = [tr(table, "input_truncated", lg, **cut)] if cut else []
        if root is None:
            if pm.verdict.value == "healthy":
                say.append(tr(table, "sum_healthy", lg, steps=logged, loss_first=num(run.loss_first),
                              loss_last=num(run.loss_last)))
            else:
                say.append(tr(table, "sum_unknown", lg))
        else:
            key = "sum_failed" if root.severity >= Severity.ERROR else "sum_degraded"
            say.append(tr(table, key, lg, title=root.title[lg], id=root.id))
            if root.first_step is not None:
                line = root.first_line if root.first_line is not None else "–"
                say.append(tr(table, "sum_since_step", lg, step=root.first_step, line=line))
            elif root.first_line is not None:
                say.append(tr(table, "sum_since_line", lg, line=root.first_line))
            if wasted is not None and logged:
                say.append(tr(table, "sum_wasted", lg, wasted=wasted, steps=span,
                              share=f"{share:.0%}" if share is not None else "–"))
        if planned and last is not None and not run.completed and last < planned and not cut:
            say.append(tr(table, "sum_stopped", lg, last=last, planned=planned))
        if root is not None and root.remediation.get(lg):
            say.append(tr(table, "sum_first_action", lg, action=root.remediation[lg][0]))
        others = [f.id for f in pm.findings[1:]]
        if others:
            say.append(tr(table, "sum_others", lg, n=len(others), ids=("、" if lg == "zh" else ", ").join(others)))
        out[lg] = tuple(say)
    train = pm.run.facts.train
    ends = ["–", "–"]
    for i, pos in enumerate((0, -1)):
        if len(train):
            r = train.iloc[pos]
            ends[i] = _cell(r["loss"], "loss" in str(r["nonfinite"]).split(","))
    return ExecSummary(loss_first=ends[0], loss_last=ends[1], root_id=root.id if root else None,
                       since_step=root.first_step if root else None, since_line=root.first_line if root else None,
                       last_step=last, logged_steps=logged or None, wasted_steps=wasted, wasted_share=share,
                       planned_steps=planned, sentences=out)


def short_file(pm: Postmortem, file: str | None) -> str | None:
    """An evidence file as the reader needs it: none for a single log, its path inside the run
    directory when the run has several."""
    if not file or len(pm.run.meta.get("sources") or ()) < 2:
        return None
    return os.path.relpath(file, pm.source) if os.path.isdir(pm.source) else file


def truncation(pm: Postmortem) -> dict[str, Any] | None:
    """Where the file was cut short (``file``, ``line``, ``byte``), when it was; see parsers.readable."""
    cut = pm.run.meta.get("truncated")
    if not cut:
        return None
    if not isinstance(cut, dict):
        cut = {"file": pm.source, "line": pm.run.lines, "byte": pm.run.meta.get("bytes") or 0}
    return {"file": cut.get("file") or pm.source, "line": cut.get("line") or pm.run.lines,
            "byte": cut.get("byte") or 0}


# -- header and dates ----------------------------------------------------------------------------

_ISO = re.compile(r"(?<!\d)(20\d\d)-(\d\d)-(\d\d)[ T](\d\d):(\d\d)(?::(\d\d))?")
_US = re.compile(r"(?<!\d)(\d\d)/(\d\d)/(20\d\d) (\d\d):(\d\d)(?::(\d\d))?")  # LLaMA-Factory: 05/01/2024 12:00:00


def find_time(text: str) -> str | None:
    """The first timestamp in a log line as ``YYYY-MM-DD HH:MM``, or None."""
    m = _ISO.search(text)
    if m:
        return f"{m[1]}-{m[2]}-{m[3]} {m[4]}:{m[5]}"
    m = _US.search(text)
    if m and int(m[1]) <= 12:
        return f"{m[3]}-{m[1]}-{m[2]} {m[4]}:{m[5]}"
    return None


def _known_texts(pm: Postmortem) -> list[tuple[int, str]]:
    """Lines whose text the parsers kept, with their numbers: metadata lines, events, evidence."""
    run = pm.run
    out = [(v[0], v[1]) for v in run.facts.stated.values() if isinstance(v, tuple | list) and len(v) == 2]
    out += [(e.line, e.text) for e in run.events]
    out += [(e.line, e.text) for f in pm.findings for e in f.evidence if e.line is not None]
    if run.facts.last_line_text:
        out.append((run.lines, run.facts.last_line_text))
    return sorted(out, key=lambda p: p[0])


def run_header(pm: Postmortem, run: RunSummary) -> RunHeader:
    started = ended = None
    texts = _known_texts(pm)
    if readable(pm.source):
        try:
            texts = [(i + 1, t) for i, t in enumerate(head(pm.source, 200))] + texts
        except OSError:
            pass
    stamps = [(n, s) for n, s in ((n, find_time(t)) for n, t in texts) if s]
    if stamps:
        started = min(stamps, key=lambda p: p[0])[1]
        ended = max(stamps, key=lambda p: p[0])[1]
    steps = f"{run.first_step}–{run.last_step}" if run.first_step is not None else None
    return RunHeader(title=os.path.basename(pm.source) or pm.source, source=pm.source, framework=run.framework,
                     model=run.model, started=started, ended=ended if ended != started else None, steps=steps)


# -- timeline ------------------------------------------------------------------------------------

def _both(table: Mapping[str, Mapping[str, str]], key: str, **kw: Any) -> dict[str, str]:
    return {lg: tr(table, key, lg, **kw) for lg in LANGS}


def timeline(pm: Postmortem, table: Mapping[str, Mapping[str, str]],
             started: str | None = None) -> tuple[TimelineEntry, ...]:
    """Start, training header, first record, first sign of each finding, errors, last record, end."""
    run = pm.run
    lines = run.facts.stated
    completed = run.facts.completed
    out: list[TimelineEntry] = []
    texts = dict(_known_texts(pm))

    def when(line: int | None) -> str | None:
        return find_time(texts.get(line, "")) if line is not None else None

    out.append(TimelineEntry("start", 1, None, started, _both(table, "tl_start"), None))
    header_lines = [v[0] for k, v in lines.items() if k.startswith("header:")]
    if header_lines:
        ln: int | None = min(header_lines)
        steps = pm.run.facts.total_steps
        key, kw = ("tl_header_planned", {"planned": steps}) if steps else ("tl_header", {})
        out.append(TimelineEntry("header", ln, None, when(ln), _both(table, key, **kw), None))
    train = pm.run.facts.train
    for kind, pos in (("first_record", 0), ("last_record", -1)):
        if train.empty or (kind == "last_record" and len(train) < 2):
            continue
        idx = train.index[pos]
        r = train.loc[idx]
        ln = None if pd.isna(r["line"]) else int(r["line"])
        out.append(TimelineEntry(kind, ln, None if pd.isna(r["step"]) else int(r["step"]), when(ln),
                                 _both(table, "tl_" + kind,
                                       loss=_cell(r["loss"], "loss" in str(r["nonfinite"]).split(","))),
                                 run.text(idx) or None))
    for f in pm.findings:
        out.append(TimelineEntry("finding", f.first_line, f.first_step, when(f.first_line),
                                 {lg: tr(table, "tl_finding", lg, id=f.id, title=f.title[lg]) for lg in LANGS},
                                 None, severity=f.severity.label))
    errors = [e for e in run.events if e.kind in ("error", "traceback")]
    for e in errors[:MAX_TIMELINE_ERRORS]:
        out.append(TimelineEntry(e.kind, e.line, None, when(e.line), _both(table, "tl_" + e.kind), e.text,
                                 count=e.count))
    if len(errors) > MAX_TIMELINE_ERRORS:
        last = errors[-1]
        out.append(TimelineEntry("error", last.line, None, when(last.line),
                                 _both(table, "tl_more_errors", n=len(errors) - MAX_TIMELINE_ERRORS), last.text,
                                 count=last.count))
    done = lines.get("completed")
    if completed and done:
        out.append(TimelineEntry("completed", done[0], None, when(done[0]), _both(table, "tl_completed"), done[1]))
    elif completed:
        out.append(TimelineEntry("completed", None, None, None, _both(table, "tl_completed"), None))
    end_key = "tl_end" if completed else "tl_end_truncated" if pm.run.facts.truncated else "tl_end_abrupt"
    if not (done and done[0] == run.lines and completed):  # else "completed" says it already
        out.append(TimelineEntry("end", run.lines or None, None, when(run.lines), _both(table, end_key),
                                 run.facts.last_line_text or None))
    order = {"start": 0, "end": 2}
    return tuple(sorted(out, key=lambda e: (order.get(e.kind, 1), e.line if e.line is not None else 1 << 62)))


# -- configuration seen in the log ---------------------------------------------------------------

# Known keys first, in reading order; any other setting a parser records follows under its own name.
CONFIG_ORDER = ("model", "dtype", "bf16", "fp16", "learning_rate", "lr_scheduler_type", "warmup_steps", "warmup_ratio",
                "max_grad_norm", "logging_nan_inf_filter", "zero_stage", "deepspeed", "deepspeed_version", "num_examples", "num_epochs", "steps_per_epoch", "per_device_batch_size",
                "gradient_accumulation_steps", "total_batch_size", "total_steps", "max_steps", "total_num_steps",
                "trainable_parameters", "peft_trainable_params", "total_num_tokens", "total_supervised_tokens",
                "data_loader_len")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        v = int(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return fmt_number(v)
    return str(v)


def configuration(pm: Postmortem, table: Mapping[str, Mapping[str, str]]) -> tuple[ConfigItem, ...]:
    """Every setting the log printed (HF header, Axolotl counts, model ...), with the line that said it."""
    facts = pm.run.facts
    where = facts.stated
    found: dict[str, tuple[Any, int | None]] = {}
    for key, value in facts.settings.items():
        name = key.split(":", 1)[1] if key.startswith("header:") else key
        line = where.get(key, (None,))[0]
        found.setdefault(name, (value, line))
    for name, value in facts.header.items():  # trainer_state.json has no line numbers
        if not isinstance(value, dict | list | tuple):
            found.setdefault(name, (value, where.get("header:" + name, (None,))[0]))
    if pm.run.frameworks:
        found.setdefault("frameworks", (", ".join(pm.run.frameworks), None))
    rank = {k: i for i, k in enumerate(CONFIG_ORDER)}
    out = []
    for name in sorted(found, key=lambda k: (rank.get(k, len(rank)), k)):
        value, line = found[name]
        key = "cfg_" + name
        label = {lg: table[key][lg] for lg in LANGS} if key in table else {lg: name for lg in LANGS}
        out.append(ConfigItem(name, label, _value(value), line))
    return tuple(out)


# -- appendix ------------------------------------------------------------------------------------

def build_appendix(pm: Postmortem, context: int = CONTEXT_LINES) -> Appendix:
    """Each cited line in ``context`` lines of context, re-read from the source file."""
    seen: dict[int, EvidenceView] = {}
    by: dict[int, list[str]] = {}
    for f in pm.findings:
        for e in f.evidence:
            if e.line is not None and e.line not in seen:
                seen[e.line] = EvidenceView(e.line, e.step, e.text, None)
            if e.line is not None and f.id not in by.setdefault(e.line, []):
                by[e.line].append(f.id)
    cited_by = {k: tuple(v) for k, v in by.items()}
    cited = [seen[k] for k in sorted(seen)]
    kept, omitted = cited[:MAX_CITED], max(0, len(cited) - MAX_CITED)
    if not kept or not readable(pm.source):  # stdin, a folder of logs: no context, the cited text alone
        reason = "stdin" if pm.source in ("-", "<stdin>") else "not_a_file"
        return Appendix(available=False, context=context, excerpts=(),
                        cited=tuple(dataclasses.replace(e, anchor=f"L{e.line}") for e in kept), omitted=omitted,
                        cited_by=cited_by, reason=reason if kept else None)
    try:
        blocks = excerpts(pm.source, [e.line for e in kept if e.line is not None], context)
    except OSError:
        return Appendix(available=False, context=context, excerpts=(),
                        cited=tuple(dataclasses.replace(e, anchor=f"L{e.line}") for e in kept), omitted=omitted,
                        cited_by=cited_by, reason="unreadable")
    blocks = tuple(dataclasses.replace(b, refs=tuple(dict.fromkeys(i for n in b.cited for i in cited_by.get(n, ()))))
                   for b in blocks)
    found = {n for b in blocks for n in b.cited}
    return Appendix(available=True, context=context, excerpts=blocks,
                    cited=tuple(EvidenceView(e.line, e.step, e.text, f"L{e.line}" if e.line in found else None)
                                for e in kept), omitted=omitted, cited_by=cited_by)


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
        "input": {"truncated": truncation(pm)},
    }


def _json_float(v: float | None) -> float | str | None:
    if v is None:
        return None
    if math.isnan(v) or math.isinf(v):
        return str(v)  # JSON has no nan; keep it visible as a string
    return v
