"""Analysing runs: the per-run worker (spawn-safe, module level) and the ways to run it in parallel.

:func:`analyze_task` is what a worker process (or a Dask worker) executes for one run. It never
raises: a run that cannot be analysed comes back as an outcome with status ``error`` and the reason,
so one bad run never stops a scan. :func:`run_local` fans tasks over a process pool; :func:`run_dask`
over an existing Dask cluster. Both yield outcomes as they finish; the caller commits each one.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from logpost import __version__, storage
from logpost.analyze import Options
from logpost.model import InputError, Postmortem
from logpost.scan.discovery import RunSpec, primary_log

# The memory one analysis may add to a worker (MiB): a soft RLIMIT_DATA (the heap and anonymous mappings, which
# track RSS closely here) at the worker's data size when the run starts plus this. A worker starts at ~110 MiB
# (the analysis stack imported); a run's records take ~1 KiB each (a dense logging_steps-1 log of 400 MB holds
# ~1.6 M), so 1,024 MiB analyses ~0.9 M metric records. A run that needs more is reported as an error (status
# ``error``, saying so) instead of taking the machine's memory. LOGPOST_SCAN_MEMORY_MB changes it (0: none).
MEMORY_MB = 1024


def memory_ceiling() -> int:
    """The data size (bytes) a worker may reach while it analyses one run: its size now plus the budget
    (LOGPOST_SCAN_MEMORY_MB, else :data:`MEMORY_MB`); 0: no ceiling."""
    budget = budget_mb() << 20
    return budget and budget + _data_size()


def budget_mb() -> int:
    raw = os.environ.get("LOGPOST_SCAN_MEMORY_MB", "")
    return int(raw) if raw.strip().isdigit() else MEMORY_MB


def _data_size() -> int:
    """This process's data size (VmData, bytes); 0 where /proc does not say."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class _Ceiling:
    """Hold this process's data size under ``limit`` bytes while inside (a soft RLIMIT_DATA, restored after);
    a no-op where the platform has no such limit or the hard limit is already lower."""

    def __init__(self, limit: int):
        self.limit = limit
        self.saved: tuple[int, int] | None = None

    def __enter__(self) -> _Ceiling:
        try:
            import resource
        except ImportError:  # pragma: no cover - not POSIX
            return self
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if self.limit and (hard == resource.RLIM_INFINITY or self.limit <= hard) \
                and (soft == resource.RLIM_INFINITY or self.limit < soft):
            resource.setrlimit(resource.RLIMIT_DATA, (self.limit, hard))
            self.saved = (soft, hard)
        return self

    @staticmethod
    def peak() -> int:
        """This process's peak resident size so far, in bytes (0 where unknown)."""
        try:
            import resource
        except ImportError:  # pragma: no cover - not POSIX
            return 0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_DATA, self.saved)


WINDOW = 4  # tasks queued per worker: enough to keep workers busy, few enough to stay small in memory
MAX_ATTEMPTS = 2  # a run in flight when a worker process dies is retried once in a fresh pool


@dataclass(frozen=True)
class Task:
    """One run to analyse, with everything a worker needs (picklable)."""

    spec: RunSpec
    options: Options
    analysis_sig: str
    report_format: str | None = None  # one of REPORT_FORMATS
    report_lang: str = "both"
    storage: tuple[tuple[str, Any], ...] = ()  # object storage options (logpost.storage), never recorded


@dataclass
class Outcome:
    """What a worker returns: the catalog row, the findings, and the rendered report (if asked)."""

    run: dict[str, Any]
    findings: list[dict[str, Any]] = field(default_factory=list)
    report: str | None = None
    timing: dict[str, float] = field(default_factory=dict)  # worker pid, wall and CPU seconds, start and end


# ------------------------------------------------------------------ what a worker does with a run


def analyze_run(spec: RunSpec, options: Options) -> Postmortem:
    """Analyse one run: its primary log (see :func:`primary_log`). ``analyze`` can merge a whole run
    directory (:func:`logpost.parsers.parse_dir`); a scan keeps to one file per run (switching is
    ``analyze(spec.path, options)`` here)."""
    from logpost.analyze import analyze

    return analyze(primary_log(spec), options)


def render_report(pm: Postmortem, fmt: str, lang: str = "both") -> str:
    """The per-run postmortem in ``fmt`` (one of :data:`REPORT_FORMATS`)."""
    from logpost.report import render

    if fmt == "md":
        return render.render_markdown(pm, lang)
    renderer = getattr(render, f"render_{fmt}", None)
    if renderer is None:
        raise InputError(f"per-run reports in {fmt!r} are not available (choose md)")
    return str(renderer(pm, lang))


REPORT_FORMATS = ("md", "html")


# ------------------------------------------------------------------ the worker


def analysis_fingerprint(options: Options) -> str:
    """What, besides the logs, decides a run's analysis: the logpost version, the catalogue files
    (built-in and ``--rules``) and the signature selection. A change re-analyses every run.

    Raises:
        InputError: a rules folder does not exist.
    """
    from logpost.signatures.registry import CATALOGUE

    h = hashlib.sha256(f"logpost {__version__}\n".encode())
    for folder in (CATALOGUE, *map(Path, options.rules)):
        if not folder.is_dir():
            raise InputError(f"{folder}: rules folder not found")
        for path in sorted(folder.glob("*.toml")):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(repr((sorted(options.select), sorted(options.ignore))).encode())
    return h.hexdigest()[:32]


def base_row(task: Task) -> dict[str, Any]:
    spec = task.spec
    return {"path": spec.path, "kind": spec.kind, "files": [f.signature() for f in spec.files],
            "files_sig": spec.files_sig, "analysis_sig": task.analysis_sig, "mtime_ns": spec.mtime_ns,
            "logpost_version": __version__,
            "analyzed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def error_outcome(task: Task, message: str) -> Outcome:
    return Outcome({**base_row(task), "status": "error", "error": storage.redact(message)})


def analyze_task(task: Task) -> Outcome:
    """Analyse one run; never raises (a failure is an outcome with status ``error``)."""
    start, cpu, began = time.perf_counter(), time.process_time(), time.time()
    outcome = _analyze(task)
    took = time.perf_counter() - start
    if outcome.run.get("status") == "ok":
        outcome.run["seconds"] = round(took, 4)
    # where the time goes (ScanResult.timings, `scan --timings`); not written to the catalog
    outcome.timing = {"worker": os.getpid(), "wall": took, "cpu": time.process_time() - cpu, "began": began,
                      "ended": time.time()}
    return outcome


def _analyze(task: Task) -> Outcome:
    limit = memory_ceiling()
    peak = _Ceiling.peak()
    try:
        storage.configure(task.storage)
        if task.spec.error:
            return error_outcome(task, task.spec.error)
        with _Ceiling(limit):
            pm = analyze_run(task.spec, task.options)
            outcome = outcome_of(task, pm)
            if task.report_format:
                outcome.report = render_report(pm, task.report_format, task.report_lang)
    except InputError as exc:
        return error_outcome(task, str(exc))
    except Exception as exc:  # a parser bug on one run must not stop the scan; the row says what broke
        # an allocation refused under the ceiling: a MemoryError, or from some C code a bare SystemError
        if isinstance(exc, MemoryError) or limit and _Ceiling.peak() > max(peak, 0.9 * limit):
            return error_outcome(task, f"{_where(task.spec)}: needs more memory than a scan worker may use for "
                                       f"one run ({budget_mb()} MiB, LOGPOST_SCAN_MEMORY_MB); analyse it alone "
                                       "with `logpost analyze`")
        return error_outcome(task, f"{_where(task.spec)}: internal error: {type(exc).__name__}: {exc}")
    return outcome


def _where(spec: RunSpec) -> str:
    try:
        return primary_log(spec)
    except InputError:
        return spec.path


def outcome_of(task: Task, pm: Postmortem) -> Outcome:
    from logpost.report.context import run_summary

    s = run_summary(pm)
    runtime = pm.run.frame["train_runtime"].dropna()
    duration = float(runtime.max()) if len(runtime) else None
    worst = pm.worst
    run = {**base_row(task), "status": "ok", "error": None, "primary_log": pm.source,
           "verdict": pm.verdict.value, "worst": worst.label if worst is not None else None,
           "framework": s.framework, "model": s.model, "first_step": s.first_step, "last_step": s.last_step,
           "train_records": s.train_records, "loss_first": _finite(s.loss_first), "loss_min": _finite(s.loss_min),
           "loss_last": _finite(s.loss_last), "duration": _finite(duration),
           "completed": None if s.completed is None else int(s.completed)}
    findings = [{"id": f.id, "severity": f.severity.label, "confidence": round(f.confidence, 3),
                 "first_step": f.first_step, "first_line": f.first_line, "title": dict(f.title)}
                for f in pm.findings]
    return Outcome(run, findings)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


# ------------------------------------------------------------------ running many


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def pool_context() -> multiprocessing.context.BaseContext:
    """How worker processes start.

    ``fork`` when it is safe: on Linux, from a process with no other thread (the CLI), children
    inherit the imported analysis stack and start at once. Otherwise (threads, macOS) a fork server
    that imports the analysis stack once, or ``spawn`` where there is none (Windows). The worker is a
    module-level function, so every method works.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["logpost.scan.runner"])  # pandas & co. imported once, not per worker
        return ctx
    return multiprocessing.get_context("spawn")


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_init(scan_pid: int) -> None:
    """Runs in each worker process as it starts: the worker dies with its scan, whatever kills the scan.

    On Linux the kernel sends the worker SIGKILL when its parent, the scan, dies (``PR_SET_PDEATHSIG``);
    the scan may have died before that was set, so its pid is checked after. A worker whose parent is
    not the scan (a fork server's), and every worker where there is no ``PR_SET_PDEATHSIG``, has a
    thread that checks four times a second that the scan is still there. Ctrl-C is
    the scan's to handle (it stops the workers), and SIGTERM kills a worker outright (a forked worker
    inherits the scan's handler otherwise).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A fork server's workers are its children, and it exits only once they have closed the pipe that
    # tells it the scan is alive: they watch the scan themselves.
    if not _die_with_parent() or os.getppid() != scan_pid:
        threading.Thread(target=_watch_scan, args=(scan_pid,), daemon=True, name="logpost-watch-scan").start()
    if not _alive(scan_pid):
        os._exit(1)


def _die_with_parent() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        return False


def _alive(pid: int) -> bool:
    """Whether the process runs (a killed scan stays a zombie until its own parent reaps it)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone (or the pid reused by another user's process)
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rpartition(b")")[2][1:2] not in (b"Z", b"X")
    except OSError:  # no /proc: the signal check is all there is
        return True


def _watch_scan(pid: int) -> None:
    while _alive(pid):
        time.sleep(0.25)
    os._exit(1)


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's worker processes now: on Ctrl-C or SIGTERM a run in flight is abandoned (the scan
    writes the catalog, so nothing is half-written) rather than waited for."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(ProcessLookupError, ValueError, AttributeError):  # already gone
            proc.kill()


def run_local(tasks: list[Task], jobs: int | None = None) -> Generator[Outcome, None, None]:
    """Analyse ``tasks`` over ``jobs`` worker processes, yielding outcomes as they finish.

    With one job (or one task) the work runs in this process. A worker process that dies (killed,
    out of memory, a crash in native code) breaks the pool: the runs that were in flight are retried
    once in a fresh pool, then reported as errors. Workers die with the scan (:func:`worker_init`);
    when the scan is interrupted (Ctrl-C, SIGTERM, the caller closing this generator) they are
    killed at once instead of being waited for.
    """
    jobs = jobs or default_jobs()
    if jobs <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield analyze_task(t)
        return
    # Largest runs first: a long run started last would keep one worker busy while the other has nothing left.
    pending = deque(sorted(tasks, key=lambda t: -max((f.size for f in t.spec.files), default=0)))
    attempts: dict[str, int] = {}
    ctx = pool_context()
    if ctx.get_start_method() == "fork":
        # Forked workers share this process's memory until they write to it; the collector walking the
        # inherited objects writes to every page it visits. Frozen objects are not walked (it is undone below).
        gc.freeze()
    while pending:
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=ctx, initializer=worker_init,
                                   initargs=(os.getpid(),))
        inflight: dict[Future[Outcome], Task] = {}
        broken = False
        try:
            while (pending or inflight) and not broken:
                while pending and len(inflight) < jobs * WINDOW:
                    t = pending.popleft()
                    inflight[pool.submit(analyze_task, t)] = t
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    t = inflight.pop(fut)
                    try:
                        outcome = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        inflight[fut] = t  # handled with the rest of the in-flight runs below
                        continue
                    yield outcome
            if broken:
                for fut, t in inflight.items():
                    if fut.done() and not fut.cancelled() and fut.exception() is None:
                        yield fut.result()
                        continue
                    attempts[t.spec.path] = attempts.get(t.spec.path, 0) + 1
                    if attempts[t.spec.path] < MAX_ATTEMPTS:
                        pending.appendleft(t)
                    else:
                        yield error_outcome(t, "the worker process died while analysing this run"
                                               " (killed, out of memory or crashed)")
        except BaseException:  # KeyboardInterrupt, SystemExit, GeneratorExit: stop now
            stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            gc.unfreeze()


def run_dask(tasks: list[Task], address: str, timeout: float = 30) -> Generator[Outcome, None, None]:
    """Analyse ``tasks`` on an existing Dask cluster (``dask.distributed``); the workers must see
    the same paths (a shared file system) and have logpost installed.

    Raises:
        InputError: dask.distributed is missing or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError("--dask needs dask.distributed (pip install 'logpost[dask]')") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        futures = client.map(analyze_task, tasks, pure=False)
        task_of = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # a worker died repeatedly on this run (KilledWorker) or similar
                yield error_outcome(task_of[fut.key], f"dask: {type(exc).__name__}: {exc}")
    finally:
        client.close()
