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
DECLARED = {c.name: c for c in COLUMNS}

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

STEP_SOURCES = ("logged", "epoch", "progress", "interval", "ordinal", "previous")


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

        try:
            import pyarrow  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            raise InputError("Parquet output needs pyarrow (pip install 'logpost[parquet]')") from None
        buf = io.BytesIO()
        frame.to_parquet(buf, engine="pyarrow", index=False)
        return buf.getvalue()
    raise InputError(f"unknown frame format {fmt!r} (choose from {', '.join(FRAME_FORMATS)})")


# --------------------------------------------------------------------------- step derivation


def assign_steps(records: list[dict[str, Any]], steps_per_epoch: float | None,
                 total_steps: int | None, completed: bool) -> str:
    """Give every record without a logged step a derived one, in place; return how.

    Printed HF dicts carry no step. HF logs when ``global_step % logging_steps == 0``, so train
    records sit at ``L * (k0 + i)`` for the i-th record. We estimate each record's step from the
    epoch (times update steps per epoch, when the header says it) or from the last tqdm bar
    before it, infer the interval L and offset k0 as medians (robust to a lagging bar), and fall
    back to ``T // n`` (completed run with T total steps and n records) or to the ordinal.
    """
    train = [r for r in records if r.get("kind") == "train" and r.get("step") is None]
    method = "logged"
    if train:
        estimates: list[tuple[int, float]] = []
        source = "ordinal"
        if steps_per_epoch:
            estimates = [(i, r["epoch"] * steps_per_epoch) for i, r in enumerate(train)
                         if _finite(r.get("epoch"))]
            source = "epoch"
            if not _near_integers([e for _, e in estimates]):
                estimates = []
        if len(estimates) < max(2, len(train) // 2):
            bar = [(i, float(r["_progress"])) for i, r in enumerate(train) if r.get("_progress")]
            if len(bar) >= max(2, len(train) // 2):
                estimates, source = bar, "progress"
        interval, offset = 1, 1
        if len(estimates) >= 2:
            diffs = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(estimates, estimates[1:], strict=False)
                     if b[0] > a[0]]
            interval = max(1, round(_median(diffs))) if diffs else 1
            # a train record is logged at global_step >= 1: a bar that lags by one redraw cannot put it at 0
            offset = max(1, round(_median([e / interval - i for i, e in estimates])))
        elif total_steps and completed and len(train) <= total_steps:
            interval, source = max(1, total_steps // len(train)), "interval"
        for i, r in enumerate(train):
            r["step"] = max(0, interval * (offset + i))
            r["step_source"] = source
        if source == "ordinal":
            method = "no step in the log: records numbered in order (interval assumed 1)"
        elif source == "interval":
            method = f"steps from total optimization steps {total_steps} / {len(train)} records (interval {interval})"
        elif source == "epoch":
            method = f"steps from epoch x {steps_per_epoch:g} update steps per epoch (logging interval {interval})"
        else:
            method = f"steps from the tqdm progress bar before each record (logging interval {interval})"
    last_step: int | None = None
    for r in records:
        if r.get("step") is not None:
            last_step = int(r["step"])
            r["step_source"] = r.get("step_source") or "logged"
        else:
            if r.get("kind") == "summary" and total_steps and completed:
                r["step"] = max(total_steps, last_step or 0)
            else:
                r["step"] = last_step
            r["step_source"] = "previous" if r["step"] is not None else None
        r.pop("_progress", None)
    return method


def _near_integers(values: list[float]) -> bool:
    """Epoch x steps-per-epoch lands on whole steps only when the epoch was printed precisely
    enough: transformers 4.x rounds the console epoch to 2 decimals, which on a long epoch is
    many steps off. Then the estimate is useless and we say so by refusing it."""
    if not values:
        return False
    off = sorted(abs(v - round(v)) for v in values)
    return off[int(0.9 * (len(off) - 1))] <= 0.25


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
