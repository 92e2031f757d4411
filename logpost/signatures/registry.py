"""The signature catalogue: one TOML file per id (the texts, params, patterns), plus detectors.

Code decides, data speaks: a detector (``@detector("ZERO_LOSS")``) looks at the RunLog and returns
hits with evidence and facts; the catalogue entry supplies severity, titles, explanations and
remediation in both languages, and formats its summary with the hit's facts. A signature with
``[[patterns]]`` and no detector is matched against the log's events by the generic pattern
detector, so text signatures need no Python.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from logpost.model import LANGS, Evidence, Finding, InputError, RunLog, Severity

CATALOGUE = Path(__file__).with_name("catalogue")
REGEX_TIMEOUT = 0.25  # seconds per pattern per event: a user regex that backtracks must not hang a run
STATUSES = ("stable", "preview")


@dataclass(frozen=True)
class Pattern:
    regex: Any  # compiled `regex` pattern
    source: str
    kinds: tuple[str, ...]
    samples: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    """One remediation step; ``frameworks`` limits it to logs of those frameworks."""

    text: Mapping[str, str]
    frameworks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clue:
    """A log message that points at the cause of a signature (e.g. Axolotl's "Last turn is not trainable")."""

    regex: Any
    note: Mapping[str, str]


@dataclass(frozen=True)
class Signature:
    id: str
    severity: Severity
    status: str
    title: Mapping[str, str]
    summary: Mapping[str, str]
    why: Mapping[str, str]
    remediation: tuple[Step, ...]
    params: Mapping[str, Any]
    consequences: tuple[str, ...] = ()
    patterns: tuple[Pattern, ...] = ()
    clues: tuple[Clue, ...] = ()
    path: str = ""

    def steps_for(self, frameworks: Iterable[str]) -> dict[str, tuple[str, ...]]:
        fw = set(frameworks)
        chosen = [s for s in self.remediation if not s.frameworks or fw & set(s.frameworks)]
        if not any(s.frameworks for s in chosen):  # unknown framework: show every concrete variant
            chosen = list(self.remediation)
        return {lang: tuple(s.text[lang] for s in chosen) for lang in LANGS}


@dataclass
class Hit:
    """What a detector found; the catalogue turns it into a Finding."""

    evidence: list[Evidence]
    confidence: float
    first_step: int | None = None
    first_line: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=lambda: {lang: [] for lang in LANGS})


Detector = Callable[[RunLog, Mapping[str, Any]], Iterable[Hit]]
_DETECTORS: dict[str, Detector] = {}


def detector(sig_id: str) -> Callable[[Detector], Detector]:
    """Register a frame heuristic for a catalogue id."""

    def wrap(fn: Detector) -> Detector:
        _DETECTORS[sig_id] = fn
        return fn

    return wrap


# ------------------------------------------------------------------------------------ loading


def _texts(entry: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = entry.get(key)
    if not isinstance(value, dict) or any(not isinstance(value.get(lang), str) or not value[lang].strip()
                                          for lang in LANGS):
        raise InputError(f"{where}: [{key}] needs non-empty 'en' and 'zh' strings")
    return {lang: value[lang].strip() for lang in LANGS}


def load_signature(path: Path) -> Signature:
    """Parse and validate one catalogue file; every problem is an InputError naming the file."""
    where = str(path)
    try:
        entry = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: invalid TOML ({exc})") from None
    sig_id = entry.get("id")
    if not isinstance(sig_id, str) or not regex.fullmatch(r"[A-Z][A-Z0-9_]{2,40}", sig_id):
        raise InputError(f"{where}: 'id' must be UPPER_SNAKE_CASE")
    severity = Severity.parse(str(entry.get("severity", "")))
    status = entry.get("status", "stable")
    if status not in STATUSES:
        raise InputError(f"{where}: status must be one of {', '.join(STATUSES)}")
    steps = []
    for i, item in enumerate(entry.get("remediation", [])):
        texts = _texts({"s": item}, "s", f"{where}: remediation #{i + 1}")
        steps.append(Step(texts, tuple(item.get("frameworks", ()))))
    if not steps:
        raise InputError(f"{where}: at least one [[remediation]] step is required")
    patterns = []
    for i, item in enumerate(entry.get("patterns", [])):
        src = item.get("regex")
        if not isinstance(src, str) or not src:
            raise InputError(f"{where}: patterns #{i + 1} needs a 'regex'")
        try:
            compiled = regex.compile(src)
        except regex.error as exc:
            raise InputError(f"{where}: patterns #{i + 1}: bad regex ({exc})") from None
        samples = tuple(item.get("samples", ()))
        for sample in samples:
            if not _search(compiled, sample):
                raise InputError(f"{where}: patterns #{i + 1}: sample does not match: {sample[:80]!r}")
        kinds = tuple(item.get("kinds", ("error", "traceback", "warning")))
        patterns.append(Pattern(compiled, src, kinds, samples))
    clues = []
    for i, item in enumerate(entry.get("clues", [])):
        try:
            compiled = regex.compile(item["regex"])
        except (KeyError, regex.error) as exc:
            raise InputError(f"{where}: clues #{i + 1}: bad or missing regex ({exc})") from None
        clues.append(Clue(compiled, _texts(item, "note", f"{where}: clues #{i + 1}")))
    params = entry.get("params", {})
    if not isinstance(params, dict):
        raise InputError(f"{where}: [params] must be a table")
    return Signature(
        id=sig_id, severity=severity, status=status,
        title=_texts(entry, "title", where), summary=_texts(entry, "summary", where),
        why=_texts(entry, "why", where), remediation=tuple(steps), params=params,
        consequences=tuple(entry.get("consequences", ())), patterns=tuple(patterns),
        clues=tuple(clues), path=where)


def load_catalogue(extra_dirs: Iterable[str] = ()) -> dict[str, Signature]:
    """The built-in catalogue plus user rule folders (a user file may replace a built-in id)."""
    from logpost.signatures import loss  # noqa: F401  - registers the detectors

    sigs: dict[str, Signature] = {}
    for folder in (CATALOGUE, *map(Path, extra_dirs)):
        if not folder.is_dir():
            raise InputError(f"{folder}: rules folder not found")
        for path in sorted(folder.glob("*.toml")):
            sig = load_signature(path)
            if folder is not CATALOGUE and not sig.patterns and sig.id not in _DETECTORS:
                raise InputError(f"{path}: a user rule needs [[patterns]] (no detector exists for {sig.id})")
            sigs[sig.id] = sig
    return sigs


# ------------------------------------------------------------------------------------ running


def _search(pattern: Any, text: str) -> Any:
    try:
        return pattern.search(text, timeout=REGEX_TIMEOUT)
    except TimeoutError:
        return None


def pattern_hits(run: RunLog, sig: Signature) -> list[Hit]:
    evidence: list[Evidence] = []
    total = 0
    for event in run.events:
        for pat in sig.patterns:
            if event.kind not in pat.kinds:
                continue
            if _search(pat.regex, event.text):
                total += event.count
                if len(evidence) < 5:
                    evidence.append(Evidence(event.line, event.text[:500]))
                break
    if not evidence:
        return []
    first = min(e.line for e in evidence if e.line is not None)
    return [Hit(evidence=evidence, confidence=0.9, first_line=first, facts={"count": total})]


def run_signatures(run: RunLog, sigs: Mapping[str, Signature]) -> list[Finding]:
    findings = []
    for sig in sigs.values():
        fn = _DETECTORS.get(sig.id)
        hits = list(fn(run, sig.params) if fn else ()) or (pattern_hits(run, sig) if sig.patterns else [])
        for hit in hits:
            findings.append(make_finding(sig, hit, run))
    return findings


def make_finding(sig: Signature, hit: Hit, run: RunLog) -> Finding:
    facts = {"first_step": hit.first_step, "first_line": hit.first_line, **hit.facts}
    summary = {}
    for lang in LANGS:
        text = sig.summary[lang].format_map(_Facts(facts))
        extra = list(hit.notes.get(lang) or [])
        for clue in sig.clues:
            hits = [e for e in run.events if _search(clue.regex, e.text)]
            if hits:
                count, line = sum(e.count for e in hits), min(e.line for e in hits)
                extra.append(clue.note[lang].format_map(_Facts({"count": count, "line": line})))
        summary[lang] = ("" if lang == "zh" else " ").join([text, *extra])
    return Finding(
        id=sig.id, severity=sig.severity, confidence=max(0.0, min(1.0, hit.confidence)),
        title=sig.title, summary=summary, why=sig.why,
        remediation=sig.steps_for((run.framework,) if run.framework else ()), evidence=tuple(hit.evidence),
        first_step=hit.first_step, first_line=hit.first_line, facts=facts)


class _Facts(dict):  # type: ignore[type-arg]
    """str.format_map that prints numbers compactly and leaves unknown keys visible."""

    def __missing__(self, key: str) -> str:
        return "?"

    def __getitem__(self, key: str) -> Any:
        value = dict.get(self, key)
        if value is None:
            return "?"
        if isinstance(value, float):
            return fmt_number(value)
        return value


def fmt_number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"
