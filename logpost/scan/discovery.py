"""Finding the runs under a tree: which directories are runs, which files they hold, which log to read.

The rules (documented in docs/scan.md):

* A *log file* is a file whose name (without a trailing ``.gz``) matches one of the globs
  (:data:`DEFAULT_GLOBS`, replaced by ``--glob``).
* A directory whose log files belong together is **one run** (keyed by the directory): it holds a
  file with a standard run-file name (:data:`RUN_FILE_NAMES`: ``trainer_state.json``, ``debug.log``,
  ``stdout.log`` ...), or all its log files share one stem (``job.out`` + ``job.err``), or it has
  ``checkpoint-*/trainer_state.json`` below it (a Hugging Face ``output_dir``). The checkpoints belong
  to that run and are not runs of their own.
* A directory of unrelated captures (``slurm-1.out``, ``slurm-2.out`` ...) is a folder of
  **single-file runs**, each keyed by its file.
* Sub-directories are always searched (runs may nest), except ``checkpoint-*`` folders of a run and
  names matching an exclude pattern (:data:`DEFAULT_EXCLUDES`: hidden folders and ``wandb``).
  Symbolic links are followed, but a directory is entered once: a link loop (or a second link to the
  same folder) is not followed again.
* A path given on the command line that is a file is a single-file run whatever its name.

Until the parser reads a run directory itself, :func:`primary_log` chooses the one file analysed.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass

from logpost import storage
from logpost.model import InputError

DEFAULT_GLOBS = (
    "*.log", "*.out", "*.err", "*.stdout", "*.stderr", "stdout", "stderr", "stdout.txt", "stderr.txt",
    "*trainer_state.json", "*trainer_log.jsonl", "*running_log.txt",
)
DEFAULT_EXCLUDES = (".*", "wandb", "__pycache__", "node_modules")

# Names that mark the folder they sit in as a run folder (compared lower-case, without ".gz").
RUN_FILE_NAMES = frozenset({
    "trainer_state.json", "trainer_log.jsonl", "debug.log", "running_log.txt",
    "stdout", "stderr", "stdout.log", "stderr.log", "stdout.txt", "stderr.txt",
    "output.log", "train.log", "training.log", "log.txt",
})
STATE_FILES = ("trainer_state.json", "trainer_state.json.gz")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_EXTENSIONS = (".log", ".out", ".err", ".txt", ".json", ".jsonl", ".stdout", ".stderr")


@dataclass(frozen=True)
class LogFile:
    """One log file of a run, with what decides whether the run changed."""

    path: str
    size: int
    mtime_ns: int
    etag: str = ""  # an object's ETag (object storage): a rewrite of the same size and second shows here

    def signature(self) -> list[str | int]:
        """``[path, size, mtime_ns]``, and the ETag when there is one (kept in the catalog)."""
        return [self.path, self.size, self.mtime_ns, self.etag] if self.etag else [self.path, self.size, self.mtime_ns]


@dataclass(frozen=True)
class RunSpec:
    """A run found on disk: a directory (``kind="dir"``) or a single log file (``kind="file"``).

    ``error`` is set when the run could not even be listed (an unreadable folder); it then becomes a
    row with status ``error``.
    """

    path: str
    kind: str
    files: tuple[LogFile, ...]
    error: str | None = None

    @property
    def files_sig(self) -> str:
        """A digest of (path, size, mtime_ns) of every log file: equal digests mean an unchanged run."""
        data = json.dumps([f.signature() for f in self.files], separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()[:32]

    @property
    def mtime_ns(self) -> int | None:
        """When the run last wrote a log (its latest file modification)."""
        return max((f.mtime_ns for f in self.files), default=None)


def bare_name(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


@functools.cache
def _glob_regex(globs: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs) or "(?!)")


def is_log_name(name: str, globs: tuple[str, ...]) -> bool:
    return _glob_regex(globs).match(bare_name(name)) is not None


def stem(name: str) -> str:
    """``job.out`` and ``job.err.gz`` share the stem ``job``; standard run-file names share ``""``."""
    bare = bare_name(name)
    if bare.lower() in RUN_FILE_NAMES:
        return ""
    root, ext = os.path.splitext(bare)
    return root if ext.lower() in _EXTENSIONS else bare


def _excluded(name: str, excludes: tuple[str, ...]) -> bool:
    return _glob_regex(excludes).match(name) is not None


def _stat_file(path: str) -> LogFile | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # vanished or a broken link: not a log we can read
    if not stat.S_ISREG(st.st_mode):
        return None
    return LogFile(path, st.st_size, st.st_mtime_ns)


def discover(roots: list[str] | tuple[str, ...], globs: tuple[str, ...] = DEFAULT_GLOBS,
             excludes: tuple[str, ...] = DEFAULT_EXCLUDES) -> list[RunSpec]:
    """Every run under ``roots`` (directories are walked, files are single-file runs), sorted by path.

    Raises:
        InputError: a root does not exist.
    """
    runs: dict[str, RunSpec] = {}
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        if storage.is_url(root):
            _walk_objects(root, globs, excludes, runs)
            continue
        path = os.path.abspath(root)
        if not os.path.exists(path):
            raise InputError(f"{root}: no such file or directory")
        if os.path.isdir(path):
            _walk(path, globs, excludes, seen_dirs, runs)
        else:
            f = _stat_file(path)
            if f is None:
                raise InputError(f"{root}: not a regular file")
            runs[path] = RunSpec(path, "file", (f,))
    return [runs[k] for k in sorted(runs)]


def _walk(top: str, globs: tuple[str, ...], excludes: tuple[str, ...], seen: set[tuple[int, int]],
          runs: dict[str, RunSpec]) -> None:
    stack = [top]
    linked: list[str] = []  # symlinked folders are walked last, so a run is keyed by its real location
    while stack or linked:
        folder = stack.pop() if stack else linked.pop(0)
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in seen:  # a symlink loop, or a second link to a folder already scanned
                continue
            seen.add(key)
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            runs[folder] = RunSpec(folder, "dir", (), error=f"{folder}: cannot list ({exc.strerror or exc})")
            continue
        logs: list[LogFile] = []
        subdirs: list[tuple[str, str]] = []
        for e in entries:
            try:
                is_dir = e.is_dir()  # follows symlinks
            except OSError:
                continue
            if is_dir:
                if _excluded(e.name, excludes):
                    continue
                if e.is_symlink():
                    linked.append(e.path)
                else:
                    subdirs.append((e.name, e.path))
            elif is_log_name(e.name, globs):
                f = _stat_file(e.path)
                if f is not None:
                    logs.append(f)
        stack.extend(_group(folder, logs, subdirs, globs, _stat_file, runs))


def _walk_objects(root: str, globs: tuple[str, ...], excludes: tuple[str, ...], runs: dict[str, RunSpec]) -> None:
    """The runs under an object storage prefix, from one listing: ``/`` separates folders, and each
    folder is grouped as a local one is. A URL that names an object is a single-file run."""
    objects = storage.list_objects(root)
    top = root.rstrip("/")
    if len(objects) == 1 and objects[0].url == top:
        o = objects[0]
        runs[top] = RunSpec(top, "file", (LogFile(o.url, o.size, o.mtime_ns, o.etag),))
        return
    files = {o.url: LogFile(o.url, o.size, o.mtime_ns, o.etag) for o in objects}
    folders: dict[str, tuple[list[str], set[str]]] = {}  # folder -> (its objects, its sub-folder names)
    for o in objects:
        if not o.url.startswith(top + "/"):
            continue  # (a driver that lists "prefix-other/" under "prefix")
        *parts, _ = o.url[len(top) + 1:].split("/")
        folder = top
        for part in parts:
            folders.setdefault(folder, ([], set()))[1].add(part)
            folder = f"{folder}/{part}"
        folders.setdefault(folder, ([], set()))[0].append(o.url)
    stack = [top]
    while stack:
        folder = stack.pop()
        names, subs = folders.get(folder, ([], set()))
        logs = [files[u] for u in sorted(names) if is_log_name(u.rsplit("/", 1)[1], globs)]
        subdirs = [(n, f"{folder}/{n}") for n in sorted(subs) if n and not _excluded(n, excludes)]
        stack.extend(_group(folder, logs, subdirs, globs, files.get, runs))


def _group(folder: str, logs: list[LogFile], subdirs: list[tuple[str, str]], globs: tuple[str, ...],
           stat_file: Callable[[str], LogFile | None], runs: dict[str, RunSpec]) -> list[str]:
    """Record the run(s) of one folder (see the module's rules); return the sub-folders to search, last first."""
    checkpoints = _checkpoint_states(subdirs, globs, stat_file)
    stems = {stem(os.path.basename(f.path)) for f in logs}
    if checkpoints or (logs and ("" in stems or len(stems) == 1)):
        runs[folder] = RunSpec(folder, "dir", tuple(logs) + tuple(checkpoints))
        subdirs = [(n, p) for n, p in subdirs if not _CHECKPOINT.match(n)]
    else:
        for f in logs:
            runs[f.path] = RunSpec(f.path, "file", (f,))
    return [p for _, p in reversed(subdirs)]


def _checkpoint_states(subdirs: list[tuple[str, str]], globs: tuple[str, ...],
                       stat_file: Callable[[str], LogFile | None]) -> list[LogFile]:
    """``checkpoint-N/trainer_state.json`` of a Hugging Face output_dir, by step."""
    found = []
    for name, path in subdirs:
        m = _CHECKPOINT.match(name)
        if not m:
            continue
        for state in STATE_FILES:
            if not is_log_name(state, globs):
                continue
            f = stat_file(f"{path}/{state}")
            if f is not None:
                found.append((int(m.group(1)), f))
                break
    return [f for _, f in sorted(found, key=lambda x: x[0])]


def primary_log(spec: RunSpec) -> str:
    """The one file a scan analyses for a run (``logpost analyze DIR`` merges them all instead).

    A single-file run is its file. In a run directory, in this order: the largest stdout/stderr
    capture (``*.log``, ``*.out``, ``*.err`` ... other than ``debug.log``: it carries the console's
    metric dicts, warnings and tracebacks), then ``debug.log`` (Axolotl's DEBUG copy), then
    ``trainer_log.jsonl``, then a top-level ``trainer_state.json``, then the ``trainer_state.json``
    of the latest checkpoint. Ties go to the first name in sorted order.

    Raises:
        InputError: the run holds no log file.
    """
    if spec.kind == "file" or len(spec.files) == 1:
        if not spec.files:
            raise InputError(f"{spec.path}: no log file")
        return spec.files[0].path

    def rank(f: LogFile) -> tuple[int, int, int, str]:
        name = bare_name(os.path.basename(f.path)).lower()
        top = os.path.dirname(f.path) == spec.path
        if name.endswith("trainer_state.json"):
            kind = 3 if top else 4
        elif name.endswith("trainer_log.jsonl"):
            kind = 2
        elif name == "debug.log":
            kind = 1
        else:
            kind = 0
        # latest checkpoint first: its position in files is by step, so order by -index
        return (kind, -f.size if kind == 0 else 0, -spec.files.index(f) if kind == 4 else 0, f.path)

    candidates = sorted(spec.files, key=rank)
    if not candidates:
        raise InputError(f"{spec.path}: no log file")
    return candidates[0].path
