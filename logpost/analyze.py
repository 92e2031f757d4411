"""``analyze(source) -> Postmortem``: the library entry point behind ``logpost analyze``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from logpost.model import Evidence, Finding, InputError, Postmortem, RunLog, Severity, Verdict
from logpost.parsers import parse
from logpost.signatures.lifecycle import ended_normally
from logpost.signatures.registry import Signature, load_catalogue, run_signatures

# An excerpt with no sign of its end is "healthy" only with at least this many finite training losses (or
# DeepSpeed steps) and a loss that did not rise. Corpus (fixtures/corpus, 2026-12): the excerpts users paste hold
# 0-14 metric rows (median 0, 24 of 36 at most 2), failing ones as few as healthy ones; the whole logs and
# generated runs hold 37-202. 2-8 rows cannot tell a run that trains from one about to fail (#13: "too little to judge").
MIN_EXCERPT_RECORDS = 9
# "a sound loss trend": the median of the last third of the losses at most this much above the first third's
# (healthy excerpts and runs in the corpus end 5-60% below where they start; LOSS_SPIKE/DIVERGENCE catch the rest).
SOUND_TREND_RISE = 1.1


@dataclass(frozen=True)
class Options:
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    rules: tuple[str, ...] = field(default_factory=tuple)
    config: str | None = None  # the run's Axolotl config: names the cause of a ZERO_LOSS finding


def analyze(source: str, options: Options | None = None) -> Postmortem:
    """Parse one log source and diagnose it.

    Args:
        source: a path, ``-`` for stdin, or a ``.gz`` file.
        options: signature selection and user rule folders.

    Raises:
        InputError: unreadable input, unknown signature ids or invalid rules.
    """
    options = options or Options()
    sigs, consequences = signatures(options)
    return diagnose(parse(source), sigs, consequences, options.config)


def signatures(options: Options) -> tuple[dict[str, Signature], dict[str, tuple[str, ...]]]:
    """The catalogue's signatures the options select, and what each explains (for :func:`order`).

    Raises:
        InputError: unknown signature ids or invalid rules.
    """
    catalogue = load_catalogue(options.rules)
    unknown = [i for i in (*options.select, *options.ignore) if i not in catalogue]
    if unknown:
        raise InputError(f"unknown signature id(s): {', '.join(unknown)} (see `logpost signatures`)")
    sigs = {k: v for k, v in catalogue.items()
            if (not options.select or k in options.select) and k not in options.ignore}
    return sigs, {k: v.consequences for k, v in catalogue.items()}


def diagnose(run: RunLog, sigs: Mapping[str, Signature], consequences: dict[str, tuple[str, ...]],
             config: str | None = None, extra: Iterable[Finding] = ()) -> Postmortem:
    """The postmortem of a parsed run: its signatures' findings (plus ``extra`` ones, e.g. a pre-flight's)."""
    findings = order([*run_signatures(run, sigs), *extra], consequences)
    findings = with_config(findings, config)
    findings = cite_files(findings, run)
    return Postmortem(source=run.source, verdict=verdict(run, findings), findings=tuple(findings), run=run)


def with_config(findings: list[Finding], config: str | None) -> list[Finding]:
    """ZERO_LOSS gains the cause the config and its data confirm (``logpost check``), in both languages."""
    if not config:
        return findings
    from logpost.check.enrich import explain_zero_loss

    return list(explain_zero_loss(tuple(findings), config))


def cite_files(findings: list[Finding], run: RunLog) -> list[Finding]:
    """Name the file of every evidence line: the source itself, or in a run directory the file whose
    record, event or printed setting has that line and text (line numbers restart in every file)."""
    sources = run.facts.sources or (run.source,)
    if len(sources) == 1:
        one = sources[0]
        return [replace(f, evidence=tuple(replace(e, file=one) if e.line is not None else e for e in f.evidence))
                for f in findings]
    where: dict[int, list[tuple[str, str]]] = {}  # line -> (file, text) of what is on it
    frame = run.frame
    for i, (line, src) in enumerate(zip(frame["line"], frame["source"], strict=False)):
        if pd.notna(line) and pd.notna(src):
            where.setdefault(int(line), []).append((str(src), run.text(i)[:500]))
    for e in run.events:
        src = (e.data or {}).get("source")
        if src:
            where.setdefault(e.line, []).append((str(src), e.text[:500]))
    files = run.meta.get("_line_files", {})
    for key, v in run.facts.stated.items():
        if key in files and isinstance(v, tuple | list) and len(v) == 2:
            where.setdefault(int(v[0]), []).append((files[key], str(v[1])))

    def file_of(e: Evidence) -> str | None:
        there = where.get(e.line) if e.line is not None else None
        if not there:
            return None
        named = {src for src, text in there if text and e.text.startswith(text)}
        if len(named) != 1:
            named = {src for src, _ in there}
        return named.pop() if len(named) == 1 else None

    return [replace(f, evidence=tuple(replace(e, file=file_of(e)) for e in f.evidence)) for f in findings]


def order(findings: Iterable[Finding], consequences: dict[str, tuple[str, ...]]) -> list[Finding]:
    """Roots first: every finding lists the found ids its signature explains (``consequences``),
    and findings are sorted by their depth in that cause graph (a root, then what it explains,
    then what those explain: the longest chain counts), then severity, confidence and position in the log.

    A cycle (A explains B explains A) is broken in favour of the more severe, more confident one.
    """
    found = list(findings)
    ids = {f.id for f in found}
    rank = {f.id: (-int(f.severity), -f.confidence) for f in found}
    edges = {i: sorted(c for c in consequences.get(i, ()) if c in ids and c != i) for i in ids}
    # keep an edge A -> B only if B does not also explain A, or A wins the tie-break
    for a in ids:
        edges[a] = [b for b in edges[a] if a not in edges.get(b, ()) or rank[a] <= rank[b]]
    # depth = the longest chain of explanations above a finding, so a chain reads in order (CUDA OOM ->
    # NCCL timeout -> early termination, even when the OOM also explains the termination directly);
    # bounded by the number of findings, so a longer cycle cannot loop
    depth = dict.fromkeys(ids, 0)
    for _ in range(len(ids)):
        changed = False
        for a in sorted(ids):
            for b in edges[a]:
                if depth[a] + 1 > depth[b] and depth[a] + 1 < len(ids):
                    depth[b], changed = depth[a] + 1, True
        if not changed:
            break
    linked = [replace(f, explains=tuple(edges[f.id])) for f in found]
    return sorted(linked, key=lambda f: (depth[f.id], -int(f.severity), -f.confidence,
                                         f.first_line if f.first_line is not None else 1 << 62, f.id))


def verdict(run: RunLog, findings: list[Finding]) -> Verdict:
    """failed: a finding at error or above; degraded: warnings; healthy: nothing above info and the
    log shows a run that trained (:func:`trained`); unknown: too little in the log to judge."""
    if any(f.severity >= Severity.ERROR for f in findings):
        return Verdict.FAILED
    if any(f.severity >= Severity.WARNING for f in findings):
        return Verdict.DEGRADED
    return Verdict.HEALTHY if trained(run) else Verdict.UNKNOWN


def trained(run: RunLog) -> bool:
    """The log shows a normal run: it ended normally (final summary, ``TrainOutput``, "Training
    completed", last step = total steps), or it is an excerpt with enough steps to judge
    (:data:`MIN_EXCERPT_RECORDS` finite losses whose trend is sound, or as many DeepSpeed steps
    mostly not skipped). A false all-clear is the worst answer: anything less is ``unknown``."""
    if ended_normally(run):
        return True
    train = run.facts.train
    finite = train[train["loss"].notna() & ~train["nonfinite"].fillna("").str.contains("loss")]
    if len(finite) >= MIN_EXCERPT_RECORDS:
        loss = finite["loss"].astype(float)
        k = max(1, len(loss) // 3)
        return float(loss.iloc[-k:].median()) <= SOUND_TREND_RISE * float(loss.iloc[:k].median())
    opt = run.frame[run.frame["kind"] == "optimizer"].dropna(subset=["step"])
    if len(opt) >= MIN_EXCERPT_RECORDS:
        skipped = opt["skipped_steps"].dropna()
        return skipped.empty or float(skipped.iloc[-1]) < 0.5 * float(opt["step"].iloc[-1])
    return False
