"""What every detector shares: the :class:`Hit` a detector returns, the ``@detector`` registration,
and the helpers several detector families use (evidence from rows and events, training rows in step
order, process exits). Detector modules import this module and the run facts below it, never the
registry nor each other; the registry imports the detector modules to register them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import regex

from logpost.model import LANGS, Event, Evidence, RunLog, Severity
from logpost.model import fmt_number as fmt_number  # detectors print numbers as findings do

LR_BEFORE_STEP = r"tried to get lr value before scheduler/optimizer started stepping"
# Keys only RL trainers log (TRL GRPO/PPO/RLOO): their loss is ~0 by construction (trl#3452).
RL_KEYS = ("reward", "reward_std", "kl", "frac_reward_zero_std", "completion_length", "completions/mean_length")
DPO_REWARDS = frozenset({"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"})


def is_rl(frame: pd.DataFrame) -> bool:
    """A GRPO/PPO-style log: it has reward or KL keys (DPO's rewards/* do not count)."""
    return any((c in RL_KEYS or (c.startswith("rewards/") and c not in DPO_REWARDS)) and frame[c].notna().any()
               for c in frame.columns)


def ordered_train(run: RunLog) -> pd.DataFrame:
    """The training rows by step, then line (a log is usually in that order already: then no second copy)."""
    return run.facts.train


def row_evidence(run: RunLog, rows: pd.DataFrame) -> list[Evidence]:
    out = []
    for idx, row in rows.iterrows():
        text = run.text(idx)
        line = None if pd.isna(row["line"]) else int(row["line"])
        step = None if pd.isna(row["step"]) else int(row["step"])
        out.append(Evidence(line, text[:500], step))
    return out


def first_value(rows: pd.DataFrame, col: str) -> int | None:
    """The first row's ``col`` as an int, None when there is none."""
    if rows.empty or pd.isna(rows.iloc[0][col]):
        return None
    return int(rows.iloc[0][col])


def note(hit: Hit, en: str, zh: str) -> None:
    """Add one sentence to a finding's summary, in both languages."""
    hit.notes["en"].append(en)
    hit.notes["zh"].append(zh)


@dataclass
class Hit:
    """What a detector found; the catalogue turns it into a Finding."""

    evidence: list[Evidence]
    confidence: float
    first_step: int | None = None
    first_line: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=lambda: {lang: [] for lang in LANGS})
    severity: Severity | None = None  # overrides the catalogue's severity for this hit
    variant: str | None = None  # a [variants.NAME] of the signature whose texts this hit uses


Detector = Callable[[RunLog, Mapping[str, Any]], Iterable[Hit]]
DETECTORS: dict[str, Detector] = {}


def detector(sig_id: str) -> Callable[[Detector], Detector]:
    """Register a frame heuristic for a catalogue id; a second detector for the same id is an error
    (it would silently replace the first)."""

    def wrap(fn: Detector) -> Detector:
        old = DETECTORS.get(sig_id)
        if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
            raise RuntimeError(f"two detectors for {sig_id}: {old.__module__}.{old.__qualname__} "
                               f"and {fn.__module__}.{fn.__qualname__}")
        DETECTORS[sig_id] = fn
        return fn

    return wrap


def event_evidence(event: Event) -> Evidence:
    """An event as evidence: its line and text, with the repeat count when it was folded."""
    text = event.text[:500]
    if event.count > 1:
        text += f"  [x{event.count}, last at line {event.last_line}]"
    return Evidence(event.line, text)


def find_events(run: RunLog, tags: Iterable[str] = (), regex_src: str | None = None,
                kinds: Iterable[str] = ("error", "traceback", "warning", "info")) -> list[Event]:
    """Events carrying one of ``tags`` (structured, after ingest) or whose text matches ``regex_src``."""
    tagset, kindset = set(tags), set(kinds)
    pat = regex.compile(regex_src) if regex_src else None
    out = []
    for e in run.events:
        tag = e.data.get("tag") if e.data else None
        if tag in tagset or (pat is not None and e.kind in kindset and pat.search(e.text)):
            out.append(e)
    return out


# ------------------------------------------------------------------------------------ process exits

_EXIT = regex.compile(
    r"failed \(exitcode: (?P<code>-?\d+)\)(?: local_rank: (?P<rank>\d+))?"
    r"|exits with return code = (?P<code>-?\d+)"
    r"|exitcode\s*:\s*(?P<code>-?\d+)"
    r"|returned non-zero exit status (?P<code>-?\d+)"
    r"|Signal (?P<signal>\d+) \(SIG\w+\) received by PID"
    r"|exited with (?:exit )?code (?P<code>\d+)"
    r"|Exited with exit code (?P<code>\d+)")
SIGNALS = {9: "SIGKILL", 6: "SIGABRT", 11: "SIGSEGV", 7: "SIGBUS", 15: "SIGTERM", 2: "SIGINT", 1: "SIGHUP"}


@dataclass(frozen=True)
class Exit:
    event: Event
    code: int
    signal: int | None  # the signal that killed the process, from a negative code or 128+N

    @property
    def signal_name(self) -> str | None:
        return SIGNALS.get(self.signal, f"signal {self.signal}") if self.signal else None


def exits(run: RunLog) -> list[Exit]:
    """Non-zero process exits the log reports, in line order."""
    out = []
    for e in run.events:
        data = e.data or {}
        code: int | None = None
        sig: int | None = None
        if data.get("tag") == "exit" and isinstance(data.get("code"), int):
            code = int(data["code"])
            sig = int(data["signal"]) if isinstance(data.get("signal"), int) else None
        elif e.kind in ("error", "traceback", "warning"):
            m = _EXIT.search(e.text)
            if not m:
                continue
            if m.group("signal"):
                sig = int(m.group("signal"))
                code = -sig
            elif m.group("code") is not None:
                code = int(m.group("code"))
        if code is None or code == 0:
            continue
        if sig is None:
            # Popen returns -N for a signal; shells and srun report 128+N
            sig = -code if code < 0 else (code - 128 if 128 < code < 160 else None)
        out.append(Exit(e, code, sig))
    out.sort(key=lambda x: x.event.line)  # events come in emission order: a traceback is emitted at its end
    return out


def distributed(run: RunLog) -> bool:
    """A multi-process launch: a launcher exit line, rank prefixes, or a ChildFailedError."""
    return any(e.rank is not None or "ChildFailedError" in e.text or "elastic" in e.text
               or "local_rank" in e.text or (e.data or {}).get("tag") == "exit" for e in run.events)


def multi_process(run: RunLog) -> bool:
    """Several ranks take part, so a hang sits in a collective: rank prefixes on records or events, a
    launcher, NCCL lines, Megatron/DeepSpeed, or an HF header whose total batch spans several processes."""
    if distributed(run) or set(run.frameworks) & {"megatron", "deepspeed", "torchrun", "torchtitan"}:
        return True
    if "rank" in run.frame and run.frame["rank"].notna().any():
        return True
    if any("NCCL" in e.text for e in run.events):
        return True
    h = run.facts.header
    per, acc, total = h.get("per_device_batch_size"), h.get("gradient_accumulation_steps"), h.get("total_batch_size")
    return bool(per and acc and total and total > per * acc)
