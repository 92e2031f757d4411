"""The signature catalogue: one TOML file per id (the texts, params, patterns), plus detectors.

Code decides, data speaks: a detector (``@detector("ZERO_LOSS")``) looks at the RunLog and returns
hits with evidence and facts; the catalogue entry supplies severity, titles, explanations and
remediation in both languages, and formats its summary with the hit's facts. A signature with
``[[patterns]]`` and no detector is matched against the log's events by the generic pattern
detector, so text signatures need no Python.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import regex

from logpost.model import LANGS, Event, Finding, InputError, RunLog, Severity
from logpost.signatures.base import DETECTORS, Hit, event_evidence, fmt_number

CATALOGUE = Path(__file__).with_name("catalogue")
REGEX_TIMEOUT = 0.25  # seconds per pattern per event: a user regex that backtracks must not hang a run
# A pattern that timed out once is dropped for the rest of the run, so a catastrophic user regex
# costs at most one REGEX_TIMEOUT per pattern, not one per event (5000 events x 0.25 s = 20 min).
STATUSES = ("stable", "preview")
FIELDS = ("text", "frames", "message")
DEFAULT_KINDS = ("error", "traceback", "warning")


@dataclass(frozen=True)
class Pattern:
    """A text marker of a signature.

    ``tags`` name the structured events (``Event.data["tag"]``) that match without the regex;
    ``field`` picks what the regex reads (the event text, a traceback's frames or its message);
    ``confidence`` ranks a direct marker above an inference; ``severity`` overrides the entry's
    (a per-sample warning is milder than a fatal error); ``min_count`` asks for a flood;
    ``exclude`` names look-alike lines that are not the failure (pip's resolver notes, ...);
    ``variant`` names the entry's ``[variants.NAME]`` whose texts a hit of this pattern uses.
    """

    regex: Any  # compiled `regex` pattern
    source: str
    kinds: tuple[str, ...]
    samples: tuple[str, ...]
    tags: tuple[str, ...] = ()
    field: str = "text"
    confidence: float = 0.9
    severity: Severity | None = None
    min_count: int = 1
    exclude: Any = None  # compiled regex: a matching line that also matches this is not the failure
    variant: str | None = None


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
class Variant:
    """Texts for one way a signature shows (``[variants.NAME]``): a hang with no watchdog line is
    still NCCL_TIMEOUT, but its summary and explanation say what the log shows instead. A text the
    variant leaves out is the signature's own; ``remediation``, when given, replaces the steps."""

    title: Mapping[str, str] | None = None
    summary: Mapping[str, str] | None = None
    why: Mapping[str, str] | None = None
    remediation: tuple[Step, ...] = ()


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
    tests: tuple[Mapping[str, Any], ...] = ()  # [[tests]] cases: a corpus log or inline text, found or not
    fatal: bool = False  # a crash: when the log shows the run training on to its end, it was survived
    variants: Mapping[str, Variant] = field(default_factory=dict)

    def steps_for(self, frameworks: Iterable[str], variant: str | None = None) -> dict[str, tuple[str, ...]]:
        var = self.variants.get(variant) if variant else None
        steps = var.remediation if var is not None and var.remediation else self.remediation
        fw = set(frameworks)
        chosen = [s for s in steps if not s.frameworks or fw & set(s.frameworks)]
        if not any(s.frameworks for s in chosen):  # unknown framework: show every concrete variant
            chosen = list(steps)
        return {lang: tuple(s.text[lang] for s in chosen) for lang in LANGS}


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
    try:
        severity = Severity.parse(str(entry.get("severity", "")))
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    status = entry.get("status", "stable")
    if status not in STATUSES:
        raise InputError(f"{where}: status must be one of {', '.join(STATUSES)}")
    steps = _steps(entry.get("remediation", []), where)
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
            try:
                found = compiled.search(sample, timeout=REGEX_TIMEOUT)
            except TimeoutError:
                raise InputError(f"{where}: patterns #{i + 1}: regex takes over {REGEX_TIMEOUT}s on its own "
                                 "sample (catastrophic backtracking?)") from None
            if not found:
                raise InputError(f"{where}: patterns #{i + 1}: sample does not match: {sample[:80]!r}")
        patterns.append(_pattern_options(item, compiled, src, samples, f"{where}: patterns #{i + 1}"))
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
    tests = entry.get("tests", [])
    for i, case in enumerate(tests):
        if not isinstance(case, dict) or not isinstance(case.get("found"), bool) \
                or sum(isinstance(case.get(k), str) for k in ("log", "text")) != 1:
            raise InputError(f"{where}: tests #{i + 1} needs one of 'log' or 'text' and a boolean 'found'")
    variants = entry.get("variants", {})
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise InputError(f"{where}: [variants.NAME] must be tables")
    for i, pat in enumerate(patterns):
        if pat.variant is not None and pat.variant not in variants:
            raise InputError(f"{where}: patterns #{i + 1}: no [variants.{pat.variant}] in this file")
    return Signature(
        id=sig_id, severity=severity, status=status,
        title=_texts(entry, "title", where), summary=_texts(entry, "summary", where),
        why=_texts(entry, "why", where), remediation=tuple(steps), params=params,
        consequences=tuple(entry.get("consequences", ())), patterns=tuple(patterns),
        clues=tuple(clues), path=where, tests=tuple(tests), fatal=bool(entry.get("fatal", False)),
        variants={name: _variant(v, f"{where}: variants.{name}") for name, v in variants.items()})


def _steps(items: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(items, list):
        raise InputError(f"{where}: [[remediation]] must be a list of tables")
    steps = []
    for i, item in enumerate(items):
        texts = _texts({"s": item}, "s", f"{where}: remediation #{i + 1}")
        steps.append(Step(texts, tuple(item.get("frameworks", ()))))
    return tuple(steps)


def _variant(entry: Mapping[str, Any], where: str) -> Variant:
    unknown = set(entry) - {"title", "summary", "why", "remediation"}
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    texts = {k: _texts(entry, k, where) for k in ("title", "summary", "why") if k in entry}
    return Variant(**texts, remediation=_steps(entry.get("remediation", []), where))


def _pattern_options(item: Mapping[str, Any], compiled: Any, src: str, samples: tuple[str, ...],
                     where: str) -> Pattern:
    kinds = item.get("kinds", DEFAULT_KINDS)
    tags = item.get("tags", ())
    if not isinstance(kinds, list | tuple) or not isinstance(tags, list | tuple):
        raise InputError(f"{where}: 'kinds' and 'tags' must be lists")
    fld = item.get("field", "text")
    if fld not in FIELDS:
        raise InputError(f"{where}: 'field' must be one of {', '.join(FIELDS)}")
    conf = item.get("confidence", 0.9)
    if not isinstance(conf, int | float) or not 0 < conf <= 1:
        raise InputError(f"{where}: 'confidence' must be a number in (0, 1]")
    count = item.get("min_count", 1)
    if not isinstance(count, int) or count < 1:
        raise InputError(f"{where}: 'min_count' must be a positive integer")
    try:
        sev = Severity.parse(str(item["severity"])) if "severity" in item else None
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    exclude = None
    if "exclude" in item:
        try:
            exclude = regex.compile(str(item["exclude"]))
        except regex.error as exc:
            raise InputError(f"{where}: bad 'exclude' regex ({exc})") from None
    variant = item.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise InputError(f"{where}: 'variant' must be a name")
    return Pattern(compiled, src, tuple(kinds), samples, tuple(tags), fld, float(conf), sev, count, exclude, variant)


# The detector families; importing one registers its detectors (they import only `base`, never this module).
DETECTOR_MODULES = ("loss", "optim", "lifecycle", "distributed", "exceptions")


def _register_detectors() -> None:
    for name in DETECTOR_MODULES:
        importlib.import_module(f"logpost.signatures.{name}")


_BUILTIN: dict[Path, tuple[tuple[int, int], Signature]] = {}


def _builtin(path: Path) -> Signature:
    """A built-in signature, parsed (and its regexes compiled) once per process while its file is
    unchanged: a batch scan calls :func:`load_catalogue` once per log."""
    st = path.stat()
    key = (st.st_mtime_ns, st.st_size)
    cached = _BUILTIN.get(path)
    if cached is None or cached[0] != key:
        cached = _BUILTIN[path] = (key, load_signature(path))
    return cached[1]


def load_catalogue(extra_dirs: Iterable[str] = ()) -> dict[str, Signature]:
    """The built-in catalogue plus user rule folders. A user file may replace a built-in id; any other
    second file with an id already loaded is a load error (it would silently replace the first)."""
    _register_detectors()
    sigs: dict[str, Signature] = {}
    for folder in (CATALOGUE, *map(Path, extra_dirs)):
        if not folder.is_dir():
            raise InputError(f"{folder}: rules folder not found")
        for path in sorted(folder.glob("*.toml")):
            sig = _builtin(path) if folder is CATALOGUE else load_signature(path)
            if folder is not CATALOGUE and not sig.patterns and sig.id not in DETECTORS:
                raise InputError(f"{path}: a user rule needs [[patterns]] (no detector exists for {sig.id})")
            old = sigs.get(sig.id)
            if old is not None:
                if folder is CATALOGUE or Path(old.path).parent != CATALOGUE:
                    raise InputError(f"{path}: id {sig.id} is already defined in {old.path}")
                # a user file replacing a built-in keeps the detector's default params
                sig = replace(sig, params={**old.params, **sig.params})
            sigs[sig.id] = sig
    return sigs


# ------------------------------------------------------------------------------------ running


def _search(pattern: Any, text: str) -> Any:
    try:
        return pattern.search(text, timeout=REGEX_TIMEOUT)
    except TimeoutError:
        return None


class _Matcher:
    """Runs a signature's patterns over events; a pattern that times out once is dropped."""

    def __init__(self, patterns: Iterable[Pattern]):
        self.live = list(patterns)
        self.timed_out: list[str] = []

    def match(self, pat: Pattern, event: Event) -> Any:
        tag = event.data.get("tag") if event.data else None
        if tag is not None and tag in pat.tags:
            return True
        if event.kind not in pat.kinds or pat not in self.live:
            return None
        text = _field(event, pat.field)
        if not text:
            return None
        try:
            m = pat.regex.search(text, timeout=REGEX_TIMEOUT)
            if m and pat.exclude is not None and pat.exclude.search(text, timeout=REGEX_TIMEOUT):
                return None
            return m
        except TimeoutError:
            self.live.remove(pat)
            self.timed_out.append(pat.source)
            return None


def _field(event: Event, name: str) -> str:
    if name == "frames":
        return "\n".join(event.data.get("frames", ())) if event.data else ""
    if name == "message":
        return str(event.data.get("message") or "") if event.data else ""
    return event.text


def pattern_hits(run: RunLog, sig: Signature, max_evidence: int = 5) -> list[Hit]:
    """The generic detector: events matching any of the signature's patterns, as one hit.

    Confidence and severity come from the strongest pattern that matched (enough times).
    Named groups of the first match, and the first matching event's structured data, become facts.
    """
    matcher = _Matcher(sig.patterns)
    per_pattern: dict[int, list[tuple[Event, Any]]] = {}
    for event in run.events:
        for i, pat in enumerate(sig.patterns):
            m = matcher.match(pat, event)
            if m:
                per_pattern.setdefault(i, []).append((event, m))
                break
    chosen = [(sig.patterns[i], hits) for i, hits in sorted(per_pattern.items())
              if sum(e.count for e, _ in hits) >= sig.patterns[i].min_count]
    if not chosen:
        return []
    matched = sorted(((e, m) for _, hits in chosen for e, m in hits), key=lambda em: em[0].line)
    best = max(chosen, key=lambda ph: ph[0].confidence)[0]
    severities = [p.severity or sig.severity for p, _ in chosen]
    facts: dict[str, Any] = {"count": sum(e.count for e, _ in matched), "events": len(matched)}
    first_event, first_match = matched[0]
    if first_event.data:
        facts.update({k: v for k, v in first_event.data.items() if isinstance(v, int | float | str)})
    for pat in sig.patterns:  # named groups of any pattern, from the first matched event that has them
        if not pat.regex.groupindex:
            continue
        for event, _ in matched:
            m = _search(pat.regex, _field(event, pat.field))
            if m:
                for k, v in m.groupdict().items():
                    if v is not None:
                        facts.setdefault(k, v)
                break
    ranks = sorted({e.rank for e, _ in matched if e.rank is not None})
    facts["ranks"] = list(ranks) if ranks else None
    evidence = [event_evidence(e) for e, _ in matched[:max_evidence]]
    hit = Hit(evidence=evidence, confidence=best.confidence, first_line=first_event.line, facts=facts,
              severity=max(severities), variant=best.variant)
    if matcher.timed_out:
        for lang, msg in (("en", "A pattern timed out (over {t}s) and was skipped: {p}"),
                          ("zh", "有一条正则匹配超时（超过 {t} 秒），已跳过：{p}")):
            hit.notes[lang].append(msg.format(t=REGEX_TIMEOUT, p=matcher.timed_out[0][:80]))
    return [hit]


def run_signatures(run: RunLog, sigs: Mapping[str, Signature]) -> list[Finding]:
    """Every signature's hits as findings: its detector's, else (or merged into them) its patterns'."""
    findings = []
    for sig in sigs.values():
        fn = DETECTORS.get(sig.id)
        hits = list(fn(run, sig.params) if fn else ())
        phits = pattern_hits(run, sig) if sig.patterns else []
        if hits and phits:
            merge(hits[0], phits[0])
        elif phits:
            hits = phits
        for hit in hits:
            if sig.fatal:
                survived(run, hit)
            findings.append(make_finding(sig, hit, run))
    return findings


def survived(run: RunLog, hit: Hit) -> None:
    """A crash message the run trained past to a normal end (a retried OOM with auto_find_batch_size,
    an optional import that fell back) is a warning, not the failure of the run."""
    last_line = max((e.line for e in hit.evidence if e.line is not None), default=None)
    train_lines = run.facts.train["line"].dropna()
    if not run.facts.finished or last_line is None or train_lines.empty or int(train_lines.max()) <= last_line:
        return
    hit.severity = Severity.WARNING
    hit.confidence = min(hit.confidence, 0.5)
    hit.notes["en"].append("The run kept training after this message and finished normally, so it was not fatal.")
    hit.notes["zh"].append("出现这条信息之后训练还在继续，并且正常结束了，所以它并不致命。")


def merge(hit: Hit, other: Hit) -> None:
    """Add a pattern hit's evidence and confidence to a detector's hit for the same id."""
    seen = {(e.line, e.text) for e in hit.evidence}
    hit.evidence.extend(e for e in other.evidence if (e.line, e.text) not in seen)
    hit.evidence.sort(key=lambda e: e.line if e.line is not None else 0)
    hit.confidence = max(hit.confidence, other.confidence)
    if other.severity is not None and (hit.severity is None or other.severity > hit.severity):
        hit.severity = other.severity
    if hit.first_line is None or (other.first_line is not None and other.first_line < hit.first_line):
        hit.first_line = other.first_line
    for k, v in other.facts.items():
        hit.facts.setdefault(k, v)
    if hit.variant is None:  # a pattern that names how the failure shows (heartbeat, ...) keeps its texts
        hit.variant = other.variant


def step_at(run: RunLog, line: int) -> int | None:
    """The step of the last training record logged at or before ``line`` (a crash message belongs to the
    step after it); None before the first one, or in a run directory (lines of different files)."""
    if run.facts.sources:
        return None
    train = run.frame.loc[run.frame["kind"] == "train", ["line", "step"]].dropna()  # in line order
    before = train[train["line"] <= line]
    return int(before["step"].iloc[-1]) if len(before) else None


def make_finding(sig: Signature, hit: Hit, run: RunLog) -> Finding:
    if hit.first_step is None and hit.first_line is not None:  # a message: at the step logged before it
        hit.first_step = step_at(run, hit.first_line)
    facts = {"first_step": hit.first_step, "first_line": hit.first_line, **hit.facts}
    var = sig.variants.get(hit.variant) if hit.variant else None  # a user file may lack it: base texts
    title = (var.title if var else None) or sig.title
    why = (var.why if var else None) or sig.why
    template = (var.summary if var else None) or sig.summary
    summary = {}
    for lang in LANGS:
        text = render_summary(template[lang], facts, lang)
        extra = list(hit.notes.get(lang) or [])
        for clue in sig.clues:
            hits = [e for e in run.events if _search(clue.regex, e.text)]
            if hits:
                count, line = sum(e.count for e in hits), min(e.line for e in hits)
                extra.append(clue.note[lang].format_map(_Facts({"count": count, "line": line})))
        summary[lang] = ("" if lang == "zh" else " ").join(p for p in (text, *extra) if p)
    return Finding(
        id=sig.id, severity=hit.severity or sig.severity, confidence=max(0.0, min(1.0, hit.confidence)),
        title=title, summary=summary, why=why,
        remediation=sig.steps_for((run.framework,) if run.framework else (), hit.variant),
        evidence=tuple(hit.evidence),
        first_step=hit.first_step, first_line=hit.first_line, facts=facts)


_OPTIONAL = regex.compile(r"\[\[(.*?)\]\]", regex.S)
_PLACEHOLDER = regex.compile(r"\{(\w+)\}")


def render_summary(template: str, facts: Mapping[str, Any], lang: str = "en") -> str:
    """Fill a summary with a hit's facts. A ``[[...]]`` segment is kept only when every fact it
    names is known, so a log without ranks or exit codes reads naturally instead of showing "?".
    A list-valued fact is joined the way the language lists things (``a, b`` / ``a、b``)."""

    def optional(m: Any) -> str:
        names = _PLACEHOLDER.findall(m.group(1))
        return m.group(1) if all(facts.get(n) is not None for n in names) else ""

    sep = "、" if lang == "zh" else ", "
    joined = {k: sep.join(map(str, v)) if isinstance(v, list | tuple) else v for k, v in facts.items()}
    return _OPTIONAL.sub(optional, template).format_map(_Facts(joined))


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
