"""Metric plots for the HTML/PDF report: matplotlib (Agg, no pyplot state), SVG, deterministic.

One figure of stacked panels sharing the step axis (loss with eval loss, grad_norm, learning rate,
loss scale, skipped steps: each where logged), so a finding's step is one vertical line through all
of them. Long runs are downsampled per interval to its min and max (spikes survive) before drawing:
a 60,000-step run draws ~1,000 points per series.

Chinese labels need a CJK font. matplotlib's font cache can be stale or built before the font was
installed, and then it silently draws boxes; so the Noto CJK file is registered explicitly with
``font_manager.addfont``. Without a CJK font the labels fall back to English rather than to boxes.
"""

from __future__ import annotations

import glob
import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from logpost.model import LANGS, Postmortem, Severity

MAX_POINTS = 1000  # per series; above this a series is reduced to per-interval min/max
FIG_WIDTH = 9.6  # inches; wide and short, so three panels and the summary fit on the first A4 page
PNG_DPI = 200  # the PDF's chart: 9.6 in wide on ~7.2 in of A4 text width, so ~270 dpi on paper
MAX_MARKS = 60  # nan/inf markers (or runs) drawn per series: each is an SVG element
CJK_FONT_GLOBS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/opentype/noto/NotoSansCJK*-Regular.*",
    "/usr/share/fonts/noto-cjk/NotoSansCJK*-Regular.*",  # Fedora, Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK*-Regular.*",
    "/usr/share/fonts/**/NotoSansCJK*-Regular.*",
    "/System/Library/Fonts/PingFang.ttc",
)
CJK_FAMILIES = ("Noto Sans CJK SC", "PingFang SC")
SEVERITY_COLOUR = {Severity.CRITICAL: "#b3261e", Severity.ERROR: "#d1453b", Severity.WARNING: "#c77700",
                   Severity.INFO: "#2f6fb0"}
SERIES_COLOUR = {"loss": "#1f5fa8", "eval_loss": "#e07b00", "grad_norm": "#2e8b57", "learning_rate": "#6a4c93",
                 "loss_scale": "#8c564b", "skipped_steps": "#7f7f7f"}


@dataclass(frozen=True)
class Panel:
    key: str
    series: tuple[str, ...]  # frame columns drawn on this panel (first is the main one)
    kinds: tuple[str, ...]  # the record kind each series is read from


PANELS = (
    Panel("loss", ("loss", "eval_loss"), ("train", "eval")),
    Panel("grad_norm", ("grad_norm",), ("train",)),
    Panel("learning_rate", ("learning_rate",), ("train",)),
    Panel("loss_scale", ("loss_scale",), ("train",)),
    Panel("skipped_steps", ("skipped_steps",), ("train",)),
)


@cache
def cjk_font() -> str | None:
    """Register a CJK font file with matplotlib and return its family name (None when absent)."""
    from matplotlib import font_manager

    override = os.environ.get("LOGPOST_CJK_FONT")
    candidates = [override] if override else []
    for pattern in CJK_FONT_GLOBS:
        candidates += sorted(glob.glob(pattern, recursive=True))
    for path in candidates:
        if not path or not os.path.isfile(path):
            continue
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError, ValueError):
            continue
        names = {f.name for f in font_manager.fontManager.ttflist if f.fname == path}
        bold = path.replace("-Regular.", "-Bold.")
        if bold != path and os.path.isfile(bold):  # bold titles in the same family, not a faked weight
            try:
                font_manager.fontManager.addfont(bold)
            except (OSError, RuntimeError, ValueError):
                pass
        for family in CJK_FAMILIES:
            if family in names:
                return family
        if names:
            return sorted(names)[0]
    return None


def chart_langs(langs: Sequence[str]) -> tuple[str, ...]:
    """The languages the chart can speak: Chinese only with a CJK font."""
    if "zh" in langs and cjk_font() is None:
        return tuple(lg for lg in langs if lg != "zh") or ("en",)
    return tuple(langs)


def label(table: Mapping[str, Mapping[str, str]], key: str, langs: Sequence[str]) -> str:
    forms = []
    for lg in langs:
        text = table[key][lg]
        if text not in forms:
            forms.append(text)
    return " / ".join(forms)


def downsample(x: np.ndarray, y: np.ndarray, keep: np.ndarray | None = None,
               limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Reduce to the min and max of ``limit // 2`` equal intervals, plus the points in ``keep``.

    The first and last points always stay, so the series spans the same steps.
    """
    n = len(x)
    if n <= limit:
        return x, y
    buckets = max(1, limit // 2)
    size = math.ceil(n / buckets)
    pad = buckets * size - n
    yy = np.concatenate([y, np.full(pad, np.nan)]).reshape(buckets, size)
    hi = np.where(np.isnan(yy), -np.inf, yy).argmax(axis=1)
    lo = np.where(np.isnan(yy), np.inf, yy).argmin(axis=1)
    base = np.arange(buckets) * size
    idx = np.concatenate([base + lo, base + hi, [0, n - 1]])
    if keep is not None and len(keep):
        idx = np.concatenate([idx, keep])
    idx = np.unique(idx[idx < n])
    return x[idx], y[idx]


def constant_limits(values: np.ndarray) -> tuple[float, float] | None:
    """Y limits for a series that never changes (None when it does): 0 shown as 0 on a 0-1 axis, any
    other value in the middle of ±50%."""
    if not len(values) or values.min() != values.max():
        return None
    v = float(values[0])
    if v == 0:
        return -0.05, 1.0
    return v - abs(v) * 0.5, v + abs(v) * 0.5


def _scale(values: np.ndarray) -> str:
    """``log`` when a positive series spans more than three decades (an exploding loss), else linear."""
    v = values[np.isfinite(values)]
    if len(v) < 2 or (v <= 0).any():
        return "linear"
    return "log" if v.max() / v.min() > 1e3 else "linear"


def _steps(rows: pd.DataFrame, ordinal: bool) -> np.ndarray:
    if ordinal:  # no record has a step: plot against the record's ordinal
        return np.arange(1, len(rows) + 1, dtype="float64")
    return rows["step"].to_numpy(dtype="float64", na_value=np.nan)


def _nonfinite(rows: pd.DataFrame, col: str) -> np.ndarray:
    """Rows where ``col`` was logged as nan/inf. Few distinct flag strings: test each once."""
    codes, uniques = pd.factorize(rows["nonfinite"], use_na_sentinel=True)
    hit = np.array([col in str(u).split(",") for u in uniques] + [False], dtype=bool)
    return hit[codes]  # the sentinel -1 picks the trailing False


def nonfinite_runs(bad: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) positions of each run of consecutive flagged records."""
    pos = np.flatnonzero(bad)
    if not len(pos):
        return []
    cuts = np.flatnonzero(np.diff(pos) > 1)
    starts = np.concatenate([[pos[0]], pos[cuts + 1]])
    ends = np.concatenate([pos[cuts], [pos[-1]]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _mark_nonfinite(ax: Any, x: np.ndarray, bad: np.ndarray, name: str) -> None:
    """Records logged as nan/inf, along the top of the panel: a × each when few, else a bar per run.

    Thousands of markers would each be an SVG element (slow in WeasyPrint, unreadable anyway).
    """
    top = ax.get_xaxis_transform()
    style = {"color": "#b3261e", "clip_on": False, "label": name}
    if int(bad.sum()) <= MAX_MARKS:
        bx = x[bad]
        ax.plot(bx, np.full(len(bx), 0.96), transform=top, linestyle="none", marker="x", markersize=4, **style)
        return
    runs = nonfinite_runs(bad)
    if len(runs) > MAX_MARKS:  # scattered nan: thin them out, keep the first and the last
        runs = [runs[i] for i in np.unique(np.linspace(0, len(runs) - 1, MAX_MARKS).astype(int))]
    ax.hlines(np.full(len(runs), 0.96), [x[a] for a, _ in runs], [x[b] for _, b in runs], transform=top,
              linewidth=3.5, **style)


def metrics_figure(pm: Postmortem, langs: Sequence[str], table: Mapping[str, Mapping[str, str]],
                   wasted_from: int | None = None, fmt: str = "svg") -> Any:
    """The metrics figure, or None when nothing was logged over steps.

    ``fmt="svg"``: SVG markup (str, no XML prolog) for the screen. ``fmt="png"``: PNG bytes at
    ``PNG_DPI`` for the PDF, because WeasyPrint draws SVG element by element in Python (about 0.5 s
    for a 60,000-step chart, a third of the whole PDF) and embeds a PNG in milliseconds.
    """
    frame = pm.run.frame
    if frame.empty:
        return None
    frame = frame.sort_values(["step", "line"], kind="stable", na_position="last")
    # Records without a step cannot sit on a step axis; only when none has one, use the ordinal.
    ordinal = not frame["step"].notna().any()
    if not ordinal:
        frame = frame[frame["step"].notna()]
    by_kind = {k: frame[frame["kind"] == k] for k in ("train", "eval")}
    panels = []
    for p in PANELS:
        present, points = [], 0
        for col, kind in zip(p.series, p.kinds, strict=True):
            if col not in frame:
                continue
            n = int(by_kind[kind][col].notna().sum()) + int(_nonfinite(by_kind[kind], col).sum())
            if n:
                present.append((col, kind))
                points += n
        if points >= 2:  # one value is not a curve
            panels.append((p, present))
    if not panels:
        return None
    langs = chart_langs(langs)
    family = cjk_font()
    finding_steps = sorted({(f.first_step, f.severity, f.id) for f in pm.findings if f.first_step is not None},
                           key=lambda t: (t[0], -int(t[1]), t[2]))
    evidence_steps = np.array(sorted({e.step for f in pm.findings for e in f.evidence if e.step is not None}),
                              dtype="float64")

    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    rc: Any = {
        "svg.hashsalt": "logpost",  # stable element ids: same log, same bytes
        "svg.fonttype": "path",  # glyphs as paths: no font needed where the report is read
        # A list of families: glyphs DejaVu lacks (Chinese) fall back to the CJK font, per glyph.
        "font.family": ["DejaVu Sans", *([family] if family else [])],
        "font.size": 10,
        "axes.titlesize": 10.5,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#e3e3e3",
        "grid.linewidth": 0.6,
        "axes.edgecolor": "#888888",
        "xtick.color": "#555555",
        "ytick.color": "#555555",
        "legend.frameon": False,
        "legend.fontsize": 9,
        "path.simplify": True,
    }
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing-glyph and log-scale notices are not the reader's business
        n = len(panels)
        # Fixed margins in inches: constrained layout would draw the figure twice (a third of the time).
        panel, gap, top, bottom, width = 1.05, 0.42, 0.32, 0.5, FIG_WIDTH
        height = top + bottom + n * panel + (n - 1) * gap
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=0.85 / width, right=1 - 0.15 / width, top=1 - top / height, bottom=bottom / height,
                            hspace=gap / panel)
        axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
        last_step = float(np.nanmax(_steps(by_kind["train"], ordinal))) if len(by_kind["train"]) else None
        if ordinal:  # finding steps are not on this axis
            finding_steps, wasted_from = [], None
        for ax, (p, present) in zip(axes, panels, strict=True):
            main_values = np.array([], dtype="float64")
            for col, kind in present:
                rows = by_kind[kind]
                x = _steps(rows, ordinal)
                y = rows[col].to_numpy(dtype="float64", na_value=np.nan)
                bad = _nonfinite(rows, col)
                finite = np.isfinite(y)
                keep = np.flatnonzero(np.isin(x[finite], evidence_steps)) if len(evidence_steps) else None
                xs, ys = downsample(x[finite], y[finite], keep)
                name = "chart_train_loss" if (p.key == "loss" and len(present) > 1 and col == "loss") else "chart_" + col
                colour = SERIES_COLOUR[col]
                # Dots only on the sparse eval series: every marker is an SVG element WeasyPrint draws.
                style = {"marker": "o", "markersize": 3} if kind == "eval" else {}
                ax.plot(xs, ys, color=colour, linewidth=1.1, label=label(table, name, langs), **style)
                if bad.any():
                    _mark_nonfinite(ax, x, bad, label(table, "chart_nonfinite", langs))
                if col == p.series[0]:
                    main_values = y
            finite_main = main_values[np.isfinite(main_values)]
            if p.key == "loss_scale" and len(finite_main) and (finite_main > 0).all():
                # The dynamic loss scale moves by factors of 2: show it as powers of two.
                ax.set_yscale("log", base=2)
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"2^{math.log2(v):.0f}" if v > 0 else ""))
            else:
                ax.set_yscale(_scale(main_values))
            if ax.get_yscale() == "linear":  # "2e+05", never a detached "1e5" offset over the title
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
                flat = constant_limits(finite_main)
                if flat is not None:  # a constant series (a zero loss): its value on a plain axis, not ±0.05
                    ax.set_ylim(*flat)
            ax.set_title(label(table, "chart_" + p.key, langs), color="#222222")
            if wasted_from is not None and last_step is not None and wasted_from <= last_step:
                ax.axvspan(wasted_from, last_step, color="#b3261e", alpha=0.07, linewidth=0)
            for step, sev, _sid in finding_steps:
                ax.axvline(step, color=SEVERITY_COLOUR[sev], linestyle="--", linewidth=1.0)
            handles, names = ax.get_legend_handles_labels()
            if len(handles) > 1:
                unique = dict(zip(names, handles, strict=True))
                ax.legend(unique.values(), unique.keys(), loc="lower right", bbox_to_anchor=(1.0, 1.0),
                          ncols=min(3, len(unique)), borderaxespad=0.1, handlelength=1.6)
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole: no tick at 16.2
        top = axes[0]
        lo, hi = top.get_xlim()
        for i, (step, sev, sid) in enumerate(finding_steps[:6]):
            # Below the row of nan/inf marks, on a white backing so a curve behind stays readable; left of the
            # line in the right part of the panel, so a label at the last step is not cut by the edge.
            right = hi > lo and (step - lo) / (hi - lo) > 0.6
            top.annotate(sid, xy=(step, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(-4 if right else 4, -22 - 11 * i), ha="right" if right else "left",
                         textcoords="offset points", fontsize=8.5, color=SEVERITY_COLOUR[sev], fontweight="bold",
                         bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        axes[-1].set_xlabel(label(table, "chart_record" if ordinal else "chart_step", langs))
        if fmt == "figure":  # (tests look at the axes)
            return fig
        if fmt == "png":
            raw = io.BytesIO()
            fig.savefig(raw, format="png", dpi=PNG_DPI, metadata={"Software": None})
            return raw.getvalue()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def captions(table: Mapping[str, Mapping[str, str]], marked: bool = True, points: int = 0) -> dict[str, str]:
    """The caption explains the marks (a run without findings has none) and any downsampling."""
    out = {}
    for lg in LANGS:
        text = table["charts_note" if marked else "charts_note_plain"][lg]
        if points > MAX_POINTS:
            text += ("" if lg == "zh" else " ") + table["charts_sampled"][lg].format(n=f"{MAX_POINTS:,}")
        out[lg] = text
    return out
