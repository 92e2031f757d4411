"""``logpost watch``: follow a log being written (or a run directory) and report findings as they appear.

Each file is followed like ``tail -F``: its existing content first, then what is appended; a file that does
not exist yet is waited for; when the name points to a new file (rotation) the old one is read to its end
and the new one continues the same stream; a file that shrinks (``copytruncate``) is read again from its
start, continuing the stream too (line numbers then count across the pieces). Every byte goes once
through one :class:`logpost.live.Live` per file. A run directory's log files (as ``analyze DIR`` picks them)
are each followed; a ``.json`` file (``trainer_state.json``, rewritten whole) is read again when it changes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from logpost.analyze import Options, analyze
from logpost.live import Live, describe, write_postmortem
from logpost.model import Finding, Postmortem, RunLog, Severity

SLOW = 0.5  # seconds: a diagnosis that takes longer delays the next one (see Watch.check)
CHUNK = 1 << 24  # bytes read from one file per poll at most (a large existing log is read in such pieces)


@dataclass
class WatchOptions:
    """How ``watch`` reports and when it ends.

    ``exit_on``: end with exit code 1 at the first finding at or above it; ``fail_on``: the exit code at the
    end otherwise (as ``analyze --fail-on``); ``on_finding``: a shell command run for each new finding with its
    JSON on stdin; ``report_dir``: where the postmortem (md, html, json) is written at the end;
    ``idle_timeout``: end after this many seconds without a new byte; ``poll``: seconds between looks at
    the files; ``settle``: seconds of quiet after a traceback that ends the log before the run counts as dead.
    """

    exit_on: Severity | None = None
    fail_on: Severity = Severity.ERROR
    on_finding: str | None = None
    report_dir: str | None = None
    idle_timeout: float | None = None
    poll: float = 0.1
    settle: float = 1.0
    lang: str = "en"
    analysis: Options = field(default_factory=Options)


class Follower:
    """One path followed like ``tail -F``."""

    def __init__(self, path: str, whole: bool = False):
        self.path = path
        self.whole = whole  # read again entirely when it changes (a JSON file rewritten in place)
        self.fh: Any = None
        self.ident: tuple[int, int] | None = None
        self.pos = 0
        self.stamp: tuple[int, float] | None = None
        self.notes: list[str] = []  # what happened to the file (rotated, truncated), for the user

    def read(self) -> tuple[bytes, bool]:
        """The bytes appended since the last call, and True when they replace everything read before."""
        if self.whole:
            return self._whole()
        if self.fh is None and not self._open():
            return b"", False
        data = self.fh.read(CHUNK)
        self.pos += len(data)
        if data:
            return data, False
        try:
            st = os.stat(self.path)
        except OSError:  # removed (rotation in progress): keep the old file until a new one appears
            return b"", False
        if (st.st_dev, st.st_ino) != self.ident:
            self.notes.append(f"{self.path}: replaced by a new file (rotated); following the new one")
            self.fh.close()
            self.fh = None
            if not self._open():
                return b"", False
            data = self.fh.read(CHUNK)
            self.pos += len(data)
            return data, False
        if st.st_size < self.pos:
            self.notes.append(f"{self.path}: truncated; reading it again from the start")
            self.fh.seek(0)
            self.pos = 0
            data = self.fh.read(CHUNK)
            self.pos += len(data)
        return data, False

    def _open(self) -> bool:
        try:
            self.fh = open(self.path, "rb")  # noqa: SIM115 - kept open while followed
        except OSError:
            return False
        st = os.fstat(self.fh.fileno())
        self.ident, self.pos = (st.st_dev, st.st_ino), 0
        return True

    def _whole(self) -> tuple[bytes, bool]:
        try:
            st = os.stat(self.path)
        except OSError:
            return b"", False
        stamp = (st.st_size, st.st_mtime)
        if stamp == self.stamp:
            return b"", False
        self.stamp = stamp
        try:
            with open(self.path, "rb") as fh:
                return fh.read(), True
        except OSError:
            return b"", False

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def ended(run: RunLog, quiet: float, settle: float) -> str | None:
    """Why the log shows the run over, or None: its summary, a launcher's exit line, or an uncaught
    traceback as its last line with ``settle`` seconds of quiet after it."""
    if run.facts.finished:
        return "the run finished (its summary is logged)"
    if any(e.data.get("tag") == "exit" for e in run.events):
        return "the launcher reported the exit of the run"
    if quiet >= settle and run.lines:
        last = max((e.line for e in run.events if e.kind == "traceback"), default=None)
        if last is not None and last >= run.lines - 1:
            return "the log ends with a traceback"
    return None


class Watch:
    """The state of one ``logpost watch``; :meth:`run` loops until the run ends."""

    def __init__(self, path: str, options: WatchOptions, out: TextIO | None = None, err: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.options = options
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.clock = clock
        self.is_dir = os.path.isdir(path)
        self.followers: dict[str, Follower] = {}
        self.lives: dict[str, Live] = {}
        self.reported: set[str] = set()
        self.children: list[subprocess.Popen[bytes]] = []
        self.last_byte = clock()
        self.fresh: set[str] = set()  # files with bytes not yet diagnosed
        self.waiting_noted = False
        self.behind = False  # a file had more than one poll's worth of bytes: read on before diagnosing
        self.next_check = 0.0

    # ------------------------------------------------------------------ files
    def _files(self) -> list[str]:
        if not self.is_dir:
            return [self.path]
        from logpost.parsers import run_files

        try:
            return run_files(self.path)
        except Exception:  # noqa: BLE001 - a folder that cannot be listed right now is looked at again
            return []

    def _live(self, name: str) -> Live:
        live = self.lives.get(name)
        if live is None:
            live = self.lives[name] = Live(name, self.options.analysis)
            live.reported = self.reported  # each id reported once across the files
        return live

    def poll(self) -> bool:
        """Read what the files gained; True when any byte came."""
        got = False
        self.behind = False
        for name in self._files():
            f = self.followers.get(name)
            if f is None:
                f = self.followers[name] = Follower(name, whole=name.endswith(".json"))
            data, replace = f.read()
            for note in f.notes:
                print(f"logpost watch: {note}", file=self.err, flush=True)
            f.notes.clear()
            if replace:
                self.lives.pop(name, None)
            self.behind = self.behind or len(data) >= CHUNK
            if data:
                self._live(name).feed(data)
                got = True
                self.fresh.add(name)
        if got:
            self.last_byte = self.clock()
        return got

    # ------------------------------------------------------------------ findings
    def check(self) -> list[Finding]:
        """New findings of the files that gained bytes. A diagnosis costs more as the run grows (the catalogue
        runs on the whole frame): past :data:`SLOW`, the next one waits half the excess, so a long run's watch
        does not take a whole core however fast lines come."""
        if self.behind or not self.fresh or self.clock() < self.next_check:
            return []
        start = self.clock()
        new: list[Finding] = []
        for name in sorted(self.fresh):
            new += self.lives[name].new_findings()
        self.fresh.clear()
        took = self.clock() - start
        self.next_check = self.clock() + max(0.0, took - SLOW) / 2
        return new

    def report(self, finding: Finding) -> None:
        print(describe(finding, self.options.lang if self.options.lang in ("en", "zh") else "en"), file=self.out,
              flush=True)
        if self.options.on_finding:
            self._hook(finding)

    def _hook(self, finding: Finding) -> None:
        payload = json.dumps(finding.to_json(), ensure_ascii=False).encode() + b"\n"
        try:
            child = subprocess.Popen(self.options.on_finding or "", shell=True, stdin=subprocess.PIPE)  # noqa: S602
            assert child.stdin is not None
            try:
                child.stdin.write(payload)
                child.stdin.close()
            except BrokenPipeError:
                pass
            self.children.append(child)
        except OSError as exc:
            print(f"logpost watch: --on-finding could not run: {exc}", file=self.err, flush=True)

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        """Follow until the run ends, a finding reaches ``exit_on``, the idle timeout, or Ctrl-C; write the
        postmortem; return the exit code (1: a finding at or above ``exit_on`` / ``fail_on``, else 0)."""
        o = self.options
        previous = signal.getsignal(signal.SIGTERM)
        if _main_thread():
            signal.signal(signal.SIGTERM, _interrupt)
        why = None
        try:
            while True:
                self.poll()
                if not self.followers or all(f.fh is None and f.stamp is None for f in self.followers.values()):
                    if not self.waiting_noted:
                        print(f"logpost watch: waiting for {self.path} to appear", file=self.err, flush=True)
                        self.waiting_noted = True
                for finding in self.check():
                    self.report(finding)
                    if o.exit_on is not None and finding.severity >= o.exit_on:
                        print(f"logpost watch: {finding.id} is {finding.severity.label} (--exit-on "
                              f"{o.exit_on.label}): stopping", file=self.err, flush=True)
                        self.finish(final=bool(o.report_dir))
                        return 1
                quiet = self.clock() - self.last_byte
                why = self._ended(quiet)
                if why is None and o.idle_timeout is not None and quiet >= o.idle_timeout:
                    why = f"no new line for {o.idle_timeout:g} s (--idle-timeout)"
                if why is not None:
                    break
                if not self.behind:
                    time.sleep(o.poll)
        except KeyboardInterrupt:
            why = "interrupted: the postmortem of the log so far"
        finally:
            if _main_thread():
                signal.signal(signal.SIGTERM, previous)
        print(f"logpost watch: {why}", file=self.err, flush=True)
        pm = self.finish()
        for finding in self.check_final(pm):
            self.report(finding)
        worst = pm.worst if pm is not None else None
        return 1 if worst is not None and worst >= o.fail_on else 0

    def _ended(self, quiet: float) -> str | None:
        for live in self.lives.values():
            if live.last is not None:
                why = ended(live.last.run, quiet, self.options.settle)
                if why is not None:
                    return why
        return None

    def finish(self, final: bool = True) -> Postmortem | None:
        """The final postmortem (written to ``report_dir``): each file's stream ended; a run directory is
        analysed as ``analyze DIR`` does (its files merged). ``final=False``: none (an early exit)."""
        if final:
            self.poll()
        for f in self.followers.values():
            f.close()
        pm = None
        if final:
            for live in self.lives.values():
                pm = live.close()
            if self.is_dir and self.lives:
                pm = analyze(self.path, self.options.analysis)
        if pm is not None and self.options.report_dir:
            for p in write_postmortem(pm, self.options.report_dir):
                print(f"logpost watch: wrote {p}", file=self.err, flush=True)
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"logpost watch: --on-finding command {child.pid} still running", file=self.err, flush=True)
        self.children.clear()
        return pm

    def check_final(self, pm: Postmortem | None) -> list[Finding]:
        """Findings of the final postmortem not reported yet (the last lines, a traceback closed at the end)."""
        if pm is None:
            return []
        new = [f for f in pm.findings if f.id not in self.reported]
        self.reported.update(f.id for f in new)
        return new


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def watch(path: str, options: WatchOptions | None = None) -> int:
    """Follow ``path`` (a log file, possibly not there yet, or a run directory) until its run ends; the exit
    code as :meth:`Watch.run` gives it."""
    return Watch(path, options or WatchOptions()).run()
