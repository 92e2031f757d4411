"""The scan catalog: an embedded SQLite database of runs, their findings and metric summaries.

stdlib ``sqlite3`` in WAL mode; every analysed run is written in its own transaction, so a scan that
is killed loses at most the runs in flight, and the next scan resumes from what is committed.
Queries (``--signature``, ``--since`` ...) answer from here without reading a log.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from logpost import storage
from logpost.model import InputError

SCHEMA_VERSION = 1
VERDICT_ORDER = ("error", "failed", "degraded", "unknown", "healthy")  # most urgent first

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    path TEXT PRIMARY KEY,          -- absolute path of the run folder or single log file
    kind TEXT NOT NULL,             -- dir | file
    primary_log TEXT,               -- the file analysed
    files TEXT NOT NULL,            -- JSON [[path, size, mtime_ns], ...]
    files_sig TEXT NOT NULL,        -- digest of files: unchanged runs are not re-analysed
    analysis_sig TEXT NOT NULL,     -- logpost version + catalogue + selection
    status TEXT NOT NULL,           -- ok | error
    error TEXT,
    verdict TEXT,                   -- failed | degraded | healthy | unknown (NULL on error)
    worst TEXT,                     -- highest finding severity (critical ... info) or NULL
    framework TEXT,
    model TEXT,
    first_step INTEGER,
    last_step INTEGER,
    train_records INTEGER,
    loss_first REAL,
    loss_min REAL,
    loss_last REAL,
    duration REAL,                  -- train_runtime in seconds, when the log has it
    completed INTEGER,
    mtime_ns INTEGER,               -- latest modification of the run's logs
    report TEXT,                    -- path of the per-run postmortem, when written
    present INTEGER NOT NULL DEFAULT 1,  -- 0: not found by the last scan of its tree
    logpost_version TEXT,
    analyzed_at TEXT,
    seconds REAL                    -- analysis time
);
CREATE TABLE IF NOT EXISTS findings (
    run TEXT NOT NULL,
    ord INTEGER NOT NULL,           -- 0 = most important
    id TEXT NOT NULL,
    severity TEXT NOT NULL,
    confidence REAL,
    first_step INTEGER,
    first_line INTEGER,
    title_en TEXT,
    title_zh TEXT,
    PRIMARY KEY (run, ord)
);
CREATE INDEX IF NOT EXISTS findings_id ON findings(id);
CREATE INDEX IF NOT EXISTS runs_mtime ON runs(mtime_ns);
"""

_RUN_COLUMNS = ("path", "kind", "primary_log", "files", "files_sig", "analysis_sig", "status", "error",
                "verdict", "worst", "framework", "model", "first_step", "last_step", "train_records",
                "loss_first", "loss_min", "loss_last", "duration", "completed", "mtime_ns", "report",
                "present", "logpost_version", "analyzed_at", "seconds")


def default_db() -> str:
    """``$LOGPOST_DB``, else ``$XDG_DATA_HOME/logpost/runs.sqlite`` (``~/.local/share/logpost/runs.sqlite``)."""
    if os.environ.get("LOGPOST_DB"):
        return os.environ["LOGPOST_DB"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "logpost", "runs.sqlite")


@dataclass(frozen=True)
class FindingRow:
    id: str
    severity: str
    confidence: float | None
    first_step: int | None
    first_line: int | None
    title: dict[str, str]


@dataclass(frozen=True)
class Row:
    """One run as the outputs see it (from the catalog)."""

    path: str
    kind: str
    status: str
    error: str | None
    verdict: str | None
    worst: str | None
    framework: str | None
    model: str | None
    first_step: int | None
    last_step: int | None
    train_records: int | None
    loss_first: float | None
    loss_min: float | None
    loss_last: float | None
    duration: float | None
    completed: bool | None
    mtime_ns: int | None
    report: str | None
    present: bool
    primary_log: str | None
    findings: tuple[FindingRow, ...] = ()

    @property
    def state(self) -> str:
        """The verdict, or ``error`` when the run could not be analysed."""
        return "error" if self.status == "error" else (self.verdict or "unknown")

    @property
    def finding_ids(self) -> list[str]:
        return [f.id for f in self.findings]

    @property
    def modified(self) -> str | None:
        """UTC date-time of the run's last log write, ISO 8601 to the second."""
        if self.mtime_ns is None:
            return None
        return datetime.fromtimestamp(self.mtime_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def sort_key(self) -> tuple[int, int, str]:
        return (VERDICT_ORDER.index(self.state), -(self.mtime_ns or 0), self.path)


@dataclass(frozen=True)
class Filters:
    """What a query keeps: any of the signature ids, verdicts (``error`` for failed analyses),
    frameworks, and a time window on the run's last log write (UTC, nanoseconds)."""

    signatures: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Catalog:
    """The SQLite catalog. Open with :meth:`open`; use as a context manager to close it."""

    def __init__(self, conn: sqlite3.Connection, path: str):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str, create: bool = True) -> Catalog:
        """Open (and create unless ``create`` is false) a catalog.

        Raises:
            InputError: the file is not a logpost catalog, is from a newer logpost, or cannot be created.
        """
        if path != ":memory:":
            if not create and not os.path.exists(path):
                raise InputError(f"{path}: no catalog here yet (run `logpost scan DIR --db {path}` first)")
            folder = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise InputError(f"{path}: cannot create the catalog folder ({exc.strerror or exc})") from None
        try:
            conn = sqlite3.connect(path, timeout=60, isolation_level=None)
            conn.row_factory = sqlite3.Row
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InputError(f"{path}: catalog written by a newer logpost (schema {version})")
            if version == 0 and not create:
                raise InputError(f"{path}: not a logpost catalog (no schema)")
            if create and path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed run survives the process being killed (not a power cut)
            conn.execute("PRAGMA synchronous=NORMAL")
            if version == 0:
                tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
                if tables and not {t[0] for t in tables} >= {"runs", "findings"}:
                    raise InputError(f"{path}: an SQLite database, but not a logpost catalog")
                conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: not a logpost catalog ({exc})") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot open the catalog ({exc.strerror or exc})") from None
        return cls(conn, path)

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ writing

    def known(self) -> dict[str, tuple[str, str, str, str | None]]:
        """``{path: (files_sig, analysis_sig, status, report)}`` of every catalogued run."""
        cur = self.conn.execute("SELECT path, files_sig, analysis_sig, status, report FROM runs")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in cur}

    def store(self, run: dict[str, Any], findings: Iterable[dict[str, Any]]) -> None:
        """Replace one run and its findings in one transaction."""
        values = {c: run.get(c) for c in _RUN_COLUMNS}
        values["present"] = 1
        for key in ("loss_first", "loss_min", "loss_last", "duration"):
            v = values[key]
            values[key] = v if isinstance(v, int | float) and math.isfinite(v) else None
        if isinstance(values["files"], list | tuple):
            values["files"] = json.dumps(values["files"], separators=(",", ":"))
        try:
            self._store(run, values, findings)
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: cannot write the catalog ({exc})") from None

    def _store(self, run: dict[str, Any], values: dict[str, Any], findings: Iterable[dict[str, Any]]) -> None:
        cols = ", ".join(_RUN_COLUMNS)
        marks = ", ".join(f":{c}" for c in _RUN_COLUMNS)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM findings WHERE run = ?", (run["path"],))
            conn.execute(f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})", values)
            conn.executemany(
                "INSERT INTO findings (run, ord, id, severity, confidence, first_step, first_line, title_en,"
                " title_zh) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run["path"], i, f["id"], f["severity"], f.get("confidence"), f.get("first_step"),
                  f.get("first_line"), f.get("title", {}).get("en"), f.get("title", {}).get("zh"))
                 for i, f in enumerate(findings)])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def mark_present(self, roots: Iterable[str], found: set[str]) -> None:
        """Flag the catalogued runs under ``roots`` that this scan did not find (deleted, moved)."""
        tops = [(r.rstrip("/"), "/") if storage.is_url(r) else (os.path.abspath(r), os.sep) for r in roots]
        gone, back = [], []
        for (path, present) in self.conn.execute("SELECT path, present FROM runs"):
            if not any(path == t or path.startswith(t.rstrip(sep) + sep) for t, sep in tops):
                continue
            if path in found and not present:
                back.append((path,))
            elif path not in found and present:
                gone.append((path,))
        if gone or back:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("UPDATE runs SET present = 0 WHERE path = ?", gone)
            self.conn.executemany("UPDATE runs SET present = 1 WHERE path = ?", back)
            self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ reading

    def rows(self, filters: Filters | None = None, paths: set[str] | None = None) -> list[Row]:
        """The runs matching ``filters`` (and among ``paths`` when given), most urgent first."""
        f = filters or Filters()
        where: list[str] = []
        args: list[Any] = []
        if f.signatures:
            marks = ", ".join("?" * len(f.signatures))
            where.append(f"EXISTS (SELECT 1 FROM findings x WHERE x.run = runs.path AND x.id IN ({marks}))")
            args += list(f.signatures)
        if f.verdicts:
            verdicts = [v for v in f.verdicts if v != "error"]
            parts = []
            if verdicts:
                parts.append(f"(status = 'ok' AND verdict IN ({', '.join('?' * len(verdicts))}))")
                args += verdicts
            if "error" in f.verdicts:
                parts.append("status = 'error'")
            where.append("(" + " OR ".join(parts) + ")")
        if f.frameworks:
            where.append(f"lower(framework) IN ({', '.join('?' * len(f.frameworks))})")
            args += [x.lower() for x in f.frameworks]
        if f.since_ns is not None:
            where.append("mtime_ns >= ?")
            args.append(f.since_ns)
        if f.until_ns is not None:
            where.append("mtime_ns < ?")
            args.append(f.until_ns)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        runs = [r for r in self.conn.execute(sql, args) if paths is None or r["path"] in paths]
        found: dict[str, list[FindingRow]] = {}
        if runs:
            cur = self.conn.execute("SELECT run, id, severity, confidence, first_step, first_line, title_en,"
                                    " title_zh FROM findings ORDER BY run, ord")
            wanted = {r["path"] for r in runs}
            for fr in cur:
                if fr[0] in wanted:
                    found.setdefault(fr[0], []).append(FindingRow(
                        fr[1], fr[2], fr[3], fr[4], fr[5], {"en": fr[6] or fr[1], "zh": fr[7] or fr[1]}))
        out = [Row(path=r["path"], kind=r["kind"], status=r["status"], error=r["error"], verdict=r["verdict"],
                   worst=r["worst"], framework=r["framework"], model=r["model"], first_step=r["first_step"],
                   last_step=r["last_step"], train_records=r["train_records"], loss_first=r["loss_first"],
                   loss_min=r["loss_min"], loss_last=r["loss_last"], duration=r["duration"],
                   completed=None if r["completed"] is None else bool(r["completed"]), mtime_ns=r["mtime_ns"],
                   report=r["report"], present=bool(r["present"]), primary_log=r["primary_log"],
                   findings=tuple(found.get(r["path"], ())))
               for r in runs]
        return sorted(out, key=Row.sort_key)
