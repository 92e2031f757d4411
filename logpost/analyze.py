"""``analyze(source) -> Postmortem``: the library entry point behind ``logpost analyze``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from logpost.model import Finding, InputError, Postmortem, RunLog, Severity, Verdict
from logpost.parsers import parse
from logpost.signatures.registry import Signature, load_catalogue, run_signatures

MIN_HEALTHY_RECORDS = 2  # a verdict of "healthy" needs a run that logged at least this many finite losses


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
    return Postmortem(source=run.source, verdict=verdict(run, findings), findings=tuple(findings), run=run)


def with_config(findings: list[Finding], config: str | None) -> list[Finding]:
    """ZERO_LOSS gains the cause the config and its data confirm (``logpost check``), in both languages."""
    if not config:
        return findings
    from logpost.check.enrich import explain_zero_loss

    return list(explain_zero_loss(tuple(findings), config))


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
    log shows a run that trained; unknown: too little in the log to judge."""
    if any(f.severity >= Severity.ERROR for f in findings):
        return Verdict.FAILED
    if any(f.severity >= Severity.WARNING for f in findings):
        return Verdict.DEGRADED
    return Verdict.HEALTHY if trained(run) else Verdict.UNKNOWN


def trained(run: RunLog) -> bool:
    """The log shows a normal run: finite losses on several records, or DeepSpeed steps that were
    not skipped, or a final summary with a finite train_loss."""
    frame = run.frame
    train = run.facts.train
    finite = train["loss"].notna() & ~train["nonfinite"].fillna("").str.contains("loss")
    if int(finite.sum()) >= MIN_HEALTHY_RECORDS:
        return True
    opt = frame[frame["kind"] == "optimizer"]
    if len(opt) >= MIN_HEALTHY_RECORDS and opt["step"].notna().any():
        return True
    summary = frame[frame["kind"] == "summary"]
    return bool(summary["train_loss"].notna().any() and not summary["nonfinite"].fillna("").str.contains("loss").any())
