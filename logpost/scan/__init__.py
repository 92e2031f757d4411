"""Batch scan of historical runs: find runs under a tree, analyse them in parallel, keep a catalog.

Library entry points (the ``logpost scan`` command is a thin layer over them)::

    from logpost.scan import ScanOptions, scan, query
    result = scan(["/mnt/runs"], ScanOptions(db="runs.sqlite", jobs=8))
    failed = query("runs.sqlite", parse_filters(signature="ZERO_LOSS", verdict="failed"))

Modules: :mod:`.discovery` (what a run is), :mod:`.catalog` (SQLite), :mod:`.runner` (the per-run
worker, process pool and Dask), :mod:`.outputs` (table, csv, json, md, html).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from logpost import storage
from logpost.analyze import Options
from logpost.model import InputError, Severity
from logpost.outputs import write_atomic
from logpost.scan.catalog import VERDICT_ORDER, Catalog, Filters, Row, default_db
from logpost.scan.discovery import DEFAULT_EXCLUDES, DEFAULT_GLOBS, RunSpec, discover, primary_log
from logpost.scan.runner import REPORT_FORMATS, Outcome, Task, analysis_fingerprint, run_dask, run_local

__all__ = ["DEFAULT_EXCLUDES", "DEFAULT_GLOBS", "Filters", "Row", "RunSpec", "ScanOptions", "ScanResult",
           "default_db", "discover", "parse_filters", "primary_log", "query", "scan"]

Progress = Callable[[int, int, Outcome | None], None]  # (done, total, outcome just committed)


@dataclass(frozen=True)
class ScanOptions:
    """How to scan.

    Attributes:
        db: catalog path (``None``: :func:`default_db`; ``":memory:"``: no catalog kept).
        jobs: worker processes (``None``: every core available to this process).
        dask: address of a Dask scheduler; the analysis then runs on its workers.
        analysis: signature selection and user rules, as for ``analyze``.
        globs / excludes: which file names are logs, which folder names are skipped.
        report_dir: write each analysed run's postmortem here (``report_format``, ``report_lang``).
        force: re-analyse every run, changed or not.
        filters: which rows the result keeps (the catalog still records every run).
        storage: options of the fsspec file systems for URL paths (``s3://...``): endpoint, profile,
            credentials. Sent to the workers with each task, never written to the catalog or outputs.
    """

    db: str | None = None
    jobs: int | None = None
    dask: str | None = None
    analysis: Options = field(default_factory=Options)
    globs: tuple[str, ...] = DEFAULT_GLOBS
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES
    report_dir: str | None = None
    report_format: str = "md"
    report_lang: str = "both"
    force: bool = False
    filters: Filters = field(default_factory=Filters)
    storage: tuple[tuple[str, Any], ...] = ()  # object storage options (``logpost.storage.parse_options``)


@dataclass(frozen=True)
class ScanResult:
    """The rows of a scan or a query, most urgent first, and what the scan did."""

    rows: list[Row]
    db: str
    base: str | None = None  # the scanned folder, when there was one: outputs show paths relative to it
    discovered: int = 0
    analyzed: int = 0
    errors: int = 0
    seconds: float = 0.0
    timings: dict[str, Any] = field(default_factory=dict)  # where the time went: see :func:`scan`

    @property
    def cached(self) -> int:
        return self.discovered - self.analyzed

    def worst(self) -> Severity | None:
        return max((Severity.parse(r.worst) for r in self.rows if r.worst), default=None)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICT_ORDER, 0)
        for r in self.rows:
            out[r.state] += 1
        return out


def report_name(run_path: str, fmt: str) -> str:
    """A stable, unique file name for a run's postmortem: ``<folder or file name>-<hash>.<fmt>``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(run_path.rstrip(os.sep)))[:60] or "run"
    digest = hashlib.sha256(run_path.encode()).hexdigest()[:8]
    return f"{base}-{digest}.{fmt}"


def scan(paths: Iterable[str], options: ScanOptions | None = None, progress: Progress | None = None) -> ScanResult:
    """Find the runs under ``paths``, analyse the new and changed ones, and return every run's row.

    Each analysed run is committed to the catalog in its own transaction as soon as it finishes.
    ``ScanResult.timings`` says where the time went: seconds per phase in this process (``discover``,
    ``catalog_read``, ``analyse`` from the first task sent to the last result, of which ``store``
    is spent writing the catalog and reports, and ``finish``), this process's CPU seconds, and per
    worker process the runs it analysed, their wall and CPU seconds, and how long it sat idle
    between its first and last run.

    Raises:
        InputError: a path does not exist, the catalog cannot be opened, bad options.
    """
    o = options or ScanOptions()
    start = time.perf_counter()
    roots = list(paths)
    if not roots:
        raise InputError("nothing to scan: give a folder or a log file (or query a catalog with --db)")
    if o.report_format not in REPORT_FORMATS:
        raise InputError(f"unknown report format {o.report_format!r} (choose from {', '.join(REPORT_FORMATS)})")
    report_dir = os.path.abspath(o.report_dir) if o.report_dir else None
    if report_dir and not os.path.isdir(report_dir):
        try:
            os.makedirs(report_dir)
        except OSError as exc:
            raise InputError(f"{o.report_dir}: cannot create the report folder ({exc.strerror or exc})") from None
    # absolute rule folders: workers (a fork server, Dask) need not share this process's cwd
    analysis = replace(o.analysis, rules=tuple(os.path.abspath(r) for r in o.analysis.rules))
    fingerprint = analysis_fingerprint(analysis)
    if analysis.select or analysis.ignore:
        _check_selection(analysis)
    storage.configure(o.storage)
    cpu0 = time.process_time()
    clock = time.perf_counter()
    specs = discover(roots, o.globs, o.excludes)
    phases = {"discover": time.perf_counter() - clock}
    if not specs:
        shown = ", ".join(o.globs[:6]) + (", ..." if len(o.globs) > 6 else "")
        raise InputError(f"no runs found in {', '.join(roots)} (no log files named {shown}; see --glob)")
    db = o.db or default_db()
    workers: dict[int, dict[str, float]] = {}
    with Catalog.open(db) as cat:
        clock = time.perf_counter()
        known = cat.known()
        tasks = []
        for spec in specs:
            k = known.get(spec.path)
            report = os.path.join(report_dir, report_name(spec.path, o.report_format)) if report_dir else None
            stale = (o.force or k is None or k[0] != spec.files_sig or k[1] != fingerprint
                     or k[2] == "error"  # retried: the cause may have been passing (NFS, a killed worker)
                     or (report is not None and (k[3] != report or not os.path.exists(report))))
            if stale:
                tasks.append(Task(spec, analysis, fingerprint, o.report_format if report else None,
                                  o.report_lang, o.storage))
        phases["catalog_read"] = time.perf_counter() - clock
        clock = time.perf_counter()
        outcomes = run_dask(tasks, o.dask) if o.dask else run_local(tasks, o.jobs)
        errors = 0
        store = 0.0
        with contextlib.closing(outcomes):
            for done, outcome in enumerate(outcomes, 1):
                stored = time.perf_counter()
                if outcome.report is not None and report_dir:
                    path = os.path.join(report_dir, report_name(outcome.run["path"], o.report_format))
                    write_atomic(path, outcome.report)
                    outcome.run["report"] = path
                errors += outcome.run["status"] == "error"
                cat.store(outcome.run, outcome.findings)
                store += time.perf_counter() - stored
                _count(workers, outcome.timing)
                if progress:
                    progress(done, len(tasks), outcome)
        phases["analyse"], phases["store"] = time.perf_counter() - clock, store
        clock = time.perf_counter()
        found = {s.path for s in specs}
        cat.mark_present(roots, found)
        rows = cat.rows(o.filters, paths=found)
        phases["finish"] = time.perf_counter() - clock
    if len(roots) == 1 and storage.is_url(roots[0]):
        only: str | None = roots[0].rstrip("/")
    else:
        only = os.path.abspath(roots[0]) if len(roots) == 1 and os.path.isdir(roots[0]) else None
    per_worker = [{"runs": w["runs"], "wall": w["wall"], "cpu": w["cpu"],
                   "idle": max(0.0, w["ended"] - w["began"] - w["wall"])}
                  for w in sorted(workers.values(), key=lambda w: w["began"])]
    timings = {"phases": phases, "cpu": time.process_time() - cpu0, "workers": per_worker}
    return ScanResult(rows=rows, db=db, base=only, discovered=len(specs), analyzed=len(tasks), errors=errors,
                      seconds=time.perf_counter() - start, timings=timings)


def _count(workers: dict[int, dict[str, float]], timing: dict[str, float]) -> None:
    if not timing:
        return
    w = workers.setdefault(int(timing["worker"]), {"runs": 0, "wall": 0.0, "cpu": 0.0, "began": timing["began"],
                                                   "ended": timing["ended"]})
    w["runs"] += 1
    w["wall"] += timing["wall"]
    w["cpu"] += timing["cpu"]
    w["began"] = min(w["began"], timing["began"])
    w["ended"] = max(w["ended"], timing["ended"])


def query(db: str | None = None, filters: Filters | None = None) -> ScanResult:
    """Answer from the catalog alone (no log is read).

    Raises:
        InputError: there is no catalog at ``db``.
    """
    path = db or default_db()
    with Catalog.open(path, create=False) as cat:
        rows = cat.rows(filters)
    return ScanResult(rows=rows, db=path)


def _check_selection(options: Options) -> None:
    from logpost.signatures.registry import load_catalogue

    catalogue = load_catalogue(options.rules)
    unknown = [i for i in (*options.select, *options.ignore) if i not in catalogue]
    if unknown:
        raise InputError(f"unknown signature id(s): {', '.join(unknown)} (see `logpost signatures`)")


def parse_filters(signature: str | None = None, verdict: str | None = None, framework: str | None = None,
                  since: str | None = None, until: str | None = None) -> Filters:
    """Filters from the command line's comma-separated values and ISO dates (UTC).

    Raises:
        InputError: an unknown verdict or a date that is not ISO 8601.
    """
    def split(v: str | None) -> tuple[str, ...]:
        return tuple(x.strip() for x in (v or "").split(",") if x.strip())

    verdicts = tuple(v.lower() for v in split(verdict))
    bad = [v for v in verdicts if v not in VERDICT_ORDER]
    if bad:
        raise InputError(f"unknown verdict {bad[0]!r} (choose from {', '.join(VERDICT_ORDER)})")
    return Filters(signatures=tuple(s.upper() for s in split(signature)), verdicts=verdicts,
                   frameworks=split(framework), since_ns=_date_ns(since, "--since"),
                   until_ns=_date_ns(until, "--until"))


def _date_ns(text: str | None, what: str) -> int | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a date (use YYYY-MM-DD or an ISO 8601 time)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ns = int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
    return max(-(1 << 63), min(ns, (1 << 63) - 1))  # SQLite integers are 64-bit (nanoseconds end in 2262)
