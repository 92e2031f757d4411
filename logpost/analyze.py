"""``analyze(source) -> Postmortem``: the library entry point behind ``logpost analyze``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from logpost.model import Finding, InputError, Postmortem, RunLog, Severity, Verdict
from logpost.parsers import parse
from logpost.signatures.registry import load_catalogue, run_signatures

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
    catalogue = load_catalogue(options.rules)
    unknown = [i for i in (*options.select, *options.ignore) if i not in catalogue]
    if unknown:
        raise InputError(f"unknown signature id(s): {', '.join(unknown)} (see `logpost signatures`)")
    sigs = {k: v for k, v in catalogue.items()
            if (not options.select or k in options.select) and k not in options.ignore}
    run = parse(source)
    findings = order(run_signatures(run, sigs), {k: v.consequences for k, v in catalogue.items()})
    findings = with_config(findings, options.config)
    return Postmortem(source=run.source, verdict=verdict(run, findings), findings=tuple(findings), run=run)


def with_config(findings: list[Finding], config: str | None) -> list[Finding]:
    """ZERO_LOSS gains the cause the config and its data confirm (``logpost check``), in both languages."""
    if not config:
        return findings
    from logpost.check.enrich import explain_zero_loss

    return list(explain_zero_loss(tuple(findings), config))


def order(findings: Iterable[Finding], consequences: dict[str, tuple[str, ...]]) -> list[Finding]:
    """Roots first: a finding that explains others leads them; then severity, confidence, position."""
    found = list(findings)
    ids = {f.id for f in found}
    linked = []
    for f in found:
        explains = tuple(sorted(c for c in consequences.get(f.id, ()) if c in ids and c != f.id))
        linked.append(Finding(**{**f.__dict__, "explains": explains}))
    explained = {c for f in linked for c in f.explains}
    return sorted(linked, key=lambda f: (f.id in explained, -int(f.severity), -f.confidence,
                                         f.first_line if f.first_line is not None else 1 << 62, f.id))


def verdict(run: RunLog, findings: list[Finding]) -> Verdict:
    if any(f.severity >= Severity.ERROR for f in findings):
        return Verdict.FAILED
    if findings:
        return Verdict.DEGRADED
    train = run.train_rows()
    finite = train["loss"].notna() & ~train["nonfinite"].fillna("").str.contains("loss")
    if int(finite.sum()) >= MIN_HEALTHY_RECORDS:
        return Verdict.HEALTHY
    return Verdict.UNKNOWN
