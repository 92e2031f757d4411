"""The metrics frame: one declared schema for every source.

One row per logged metric record (a printed HF dict, a ``log_history`` entry, a JSONL line, a
``***** train metrics *****`` table). The declared columns below always exist with these dtypes;
any other metric key a framework logs is kept as an extra column under its own name (float64 when
every value is numeric, otherwise string). Aliases (``lr`` -> ``learning_rate``) are folded here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    unit: str
    help: str


COLUMNS: tuple[Column, ...] = (
    Column("step", "Int64", "optimizer step", "global step of the record; how it was derived is in step_source"),
    Column("step_source", "string", "", "logged | epoch | progress | interval | ordinal | previous"),
    Column("kind", "string", "", "train | eval | summary | optimizer (DeepSpeed step=N, skipped=M lines: not "
           "training losses)"),
    Column("epoch", "float64", "epoch", "fractional epoch as logged"),
    Column("loss", "float64", "", "training loss (HF: mean since the previous log)"),
    Column("grad_norm", "float64", "", "total gradient norm before clipping"),
    Column("learning_rate", "float64", "", "learning rate of the first param group"),
    Column("eval_loss", "float64", "", "evaluation loss"),
    Column("tokens_trainable", "float64", "tokens", "Axolotl tokens/trainable: running count of labels != -100"),
    Column("tokens_total", "float64", "tokens", "Axolotl tokens/total"),
    Column("loss_scale", "float64", "", "fp16 dynamic loss scale where the log shows it (Megatron's loss scale; on "
           "DeepSpeed optimizer rows the next_scale of the last OVERFLOW line before it)"),
    Column("skipped_steps", "float64", "steps", "cumulative optimizer steps skipped (DeepSpeed)"),
    Column("samples_per_second", "float64", "samples/s", "throughput (DeepSpeed throughput timer, Megatron)"),
    Column("train_runtime", "float64", "s", "summary: wall time of train()"),
    Column("train_loss", "float64", "", "summary: mean loss over the whole run"),
    Column("nonfinite", "string", "", "keys logged as nan/inf in this record, comma-separated (NaN in a "
           "metric column is otherwise 'not logged')"),
    Column("rank", "Int64", "", "rank that printed the record, when the log says"),
    Column("line", "Int64", "", "1-based line number of the record in its source"),
    Column("source", "string", "", "file the record came from"),
)

# Keys folded onto declared columns. Left: as logged; right: column.
ALIASES = {
    "lr": "learning_rate",
    "tokens/trainable": "tokens_trainable",
    "tokens/total": "tokens_total",
    "current_steps": "step",
    "global_step": "step",
    "loss_scale": "loss_scale",
    "scale": "loss_scale",
    "gnorm": "grad_norm",
}


def to_number(value: Any) -> float | str | None:
    """A logged value as a float when it is one (``'0'``, ``'1e+05'``, ``nan``, ``inf``), else str."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().strip("'\"")
    try:
        return float(text)
    except ValueError:
        low = text.lower()
        if low in ("nan", "-nan"):
            return math.nan
        return text


def build_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Make the frame from records (dicts of column -> value) with the declared dtypes."""
    columns: dict[str, list[Any]] = {}
    n = 0
    for i, rec in enumerate(records):
        for key, value in rec.items():
            col = columns.get(key)
            if col is None:
                col = columns[key] = [None] * i
            col.append(value)
        n = i + 1
        for col in columns.values():
            if len(col) < n:
                col.append(None)
    return frame_from_columns(columns, n)


def frame_from_columns(columns: dict[str, Any], n: int) -> pd.DataFrame:
    """Make the frame from column lists of length ``n`` (missing columns are all-null). ``columns`` is
    emptied as it is read, so each source column is freed once converted (the peak stays near one copy)."""
    out = {}
    for col in COLUMNS:
        out[col.name] = _cast(_series(columns.pop(col.name, [None] * n)), col.dtype)
    for name in sorted(columns):
        series = _series(columns.pop(name))
        numeric = pd.to_numeric(series, errors="coerce")
        if numeric.notna().sum() == series.notna().sum():
            out[name] = numeric.astype("float64")
        else:
            out[name] = series.astype("string")
    return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)


def _series(values: Any) -> pd.Series:
    """A column as a Series: float arrays stay float64 (NaN = not logged), the rest object."""
    if getattr(values, "dtype", None) is not None and values.dtype.kind == "f":
        return pd.Series(values, dtype="float64")
    return pd.Series(values, dtype="object")


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == "float64":
        return pd.to_numeric(series, errors="coerce").astype("float64")
    if dtype == "Int64":
        return pd.to_numeric(series, errors="coerce").round().astype("Int64")
    return series.astype("string")


def logged_nonfinite(frame: pd.DataFrame, column: str) -> pd.Series:
    """True where ``column`` was logged as nan/inf (as opposed to not logged at all)."""
    flags = frame["nonfinite"]
    out = pd.Series(False, index=frame.index, name=flags.name, dtype=bool)
    logged = flags.notna().to_numpy(dtype=bool)
    if logged.any():  # only the few rows with a nan/inf are split (a row-wise apply costs ~2 us a row)
        out.iloc[logged.nonzero()[0]] = [column in keys.split(",") for keys in flags[logged]]
    return out


FRAME_FORMATS = (".csv", ".parquet", ".json")


def frame_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """The frame as CSV, Parquet (through pyarrow; keeps the declared dtypes) or JSON (pandas' "table"
    orient: a schema with every column's type, then the rows).

    Raises:
        InputError: unknown format, or Parquet without pyarrow installed.
    """
    from logpost.model import InputError

    if fmt == ".csv":
        return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    if fmt == ".json":
        return frame.to_json(orient="table", index=False, double_precision=15).encode("utf-8")
    if fmt == ".parquet":
        import io

        buf = io.BytesIO()
        frame.to_parquet(buf, engine="pyarrow", index=False)
        return buf.getvalue()
    raise InputError(f"unknown frame format {fmt!r} (choose from {', '.join(FRAME_FORMATS)})")


# --------------------------------------------------------------------------- step derivation


def assign_steps(columns: dict[str, Any], steps_per_epoch: float | None, total_steps: int | None,
                 completed: bool) -> str:
    """Give every record without a logged step a derived one, in place on the record columns (numpy arrays
    as :meth:`~logpost.parsers.base.Records.columns` makes them: ``kind``, ``step``, ``epoch``, ``_progress``,
    ``step_source``); return how. ``step`` becomes a float array (NaN: none), ``step_source`` an object array.

    Printed HF dicts carry no step. HF logs when ``global_step % logging_steps == 0``, so train
    records sit at ``L * (k0 + i)`` for the i-th record. We estimate each record's step from the
    epoch (times update steps per epoch, when the header says it) or from the last tqdm bar
    before it, infer the interval L and offset k0 as medians (robust to a lagging bar), and fall
    back to ``T // n`` (completed run with T total steps and n records) or to the ordinal.
    Records still without a step take the previous record's (a summary: the total steps of a completed run).
    """
    kind = columns["kind"]
    n = len(kind)
    step = _numbers(columns.get("step"), n)
    source = np.array(columns["step_source"], dtype=object) if "step_source" in columns else np.full(n, None, object)
    train = np.flatnonzero((kind == "train") & np.isnan(step))
    method = "logged"
    if len(train):
        m = len(train)
        at, estimate = np.zeros(0, np.int64), np.zeros(0)
        how = "ordinal"
        if steps_per_epoch:
            epoch = _numbers(columns.get("epoch"), n)[train]
            at = np.flatnonzero(np.isfinite(epoch))
            estimate, how = epoch[at] * steps_per_epoch, "epoch"
            if not _near_integers(estimate.tolist()):
                at, estimate = np.zeros(0, np.int64), np.zeros(0)
        if len(at) < max(2, m // 2):
            progress = _numbers(columns.get("_progress"), n)[train]
            bar = np.flatnonzero(~np.isnan(progress) & (progress != 0))
            if len(bar) >= max(2, m // 2):
                at, estimate, how = bar, progress[bar], "progress"
        interval, offset = 1, 1
        if len(at) >= 2:
            interval = max(1, round(_median(((estimate[1:] - estimate[:-1]) / (at[1:] - at[:-1])).tolist())))
            # a train record is logged at global_step >= 1: a bar that lags by one redraw cannot put it at 0
            offset = max(1, round(_median((estimate / interval - at).tolist())))
        elif total_steps and completed and m <= total_steps:
            interval, how = max(1, total_steps // m), "interval"
        step[train] = np.maximum(0, interval * (offset + np.arange(m)))
        source[train] = how
        if how == "ordinal":
            method = "no step in the log: records numbered in order (interval assumed 1)"
        elif how == "interval":
            method = f"steps from total optimization steps {total_steps} / {m} records (interval {interval})"
        elif how == "epoch":
            method = f"steps from epoch x {steps_per_epoch:g} update steps per epoch (logging interval {interval})"
        else:
            method = f"steps from the tqdm progress bar before each record (logging interval {interval})"
    has = ~np.isnan(step)
    source[has & np.array([not s for s in source], dtype=bool)] = "logged"
    # the rest: the last step before (a summary of a completed run: at least the total steps)
    last = np.maximum.accumulate(np.where(has, np.arange(n), -1))
    prev = np.where(last >= 0, step[np.maximum(last, 0)], np.nan)
    if total_steps and completed:
        summary = ~has & (kind == "summary")
        prev[summary] = np.maximum(total_steps, np.nan_to_num(prev[summary], nan=0.0))
    step[~has] = prev[~has]
    source[~has] = np.where(np.isnan(prev[~has]), np.array(None, dtype=object), "previous")
    columns["step"], columns["step_source"] = step, source
    return method


def _numbers(values: Any, n: int) -> np.ndarray:
    """A record column as float64 (NaN where missing or not a number)."""
    if values is None:
        return np.full(n, np.nan)
    if values.dtype.kind == "f":
        return np.array(values, dtype=float)
    return np.array([v if type(v) in (int, float) else np.nan for v in values], dtype=float)


def _near_integers(values: list[float]) -> bool:
    """Epoch x steps-per-epoch lands on whole steps only when the epoch was printed precisely
    enough: transformers 4.x rounds the console epoch to 2 decimals, which on a long epoch is
    many steps off. Then the estimate is useless and we say so by refusing it."""
    if not values:
        return False
    off = sorted(abs(v - round(v)) for v in values)
    return off[int(0.9 * (len(off) - 1))] <= 0.25


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
