"""The catalogue, live: the findings of a run still going (``logpost watch``, the trainer callback).

:class:`Live` holds one incremental parse (:class:`logpost.parsers.Incremental`: every byte read once) and
runs the catalogue on demand on a snapshot of it. The findings of the last snapshot are those ``analyze``
gives for the text so far; :meth:`Live.new_findings` reports each signature id once, the first time it is
found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from logpost.analyze import Options, diagnose, signatures
from logpost.model import Evidence, Finding, InputError, Postmortem, Severity
from logpost.parsers import Incremental
from logpost.signatures.registry import Hit, make_finding

REPORTS = ("md", "html", "json")  # the postmortem's files in a report folder
PREFLIGHT_LOW = 0.01  # under 1 % of the first batches' tokens supervised: a warning (SFT chat data: 10-50 %)


class Live:
    """Findings of a growing source.

    Args:
        source: the name shown in the postmortem (a path, or e.g. ``<trainer>``).
        options: signature selection and user rules, as for ``analyze``.
    """

    def __init__(self, source: str = "<live>", options: Options | None = None, framework: str | None = None):
        self.options = options or Options()
        self.sigs, self.consequences = signatures(self.options)
        self.parser = Incremental(source)
        if framework:  # what wrote the metrics fed (their own text does not say: a trainer's dicts)
            self.parser.out.saw(framework)
        self.source = source
        self.reported: set[str] = set()
        self.extra: list[Finding] = []  # findings made outside the log (a trainer's pre-flight)
        self.last: Postmortem | None = None

    def feed(self, data: bytes) -> None:
        """Bytes appended to the source."""
        self.parser.feed(data)

    def feed_metrics(self, logs: Mapping[str, Any], step: int | None = None) -> None:
        """One metric dict as a trainer logs it (``on_log``), at its step: a JSON line of the source."""
        values = {k: _plain(v) for k, v in logs.items()}
        if step is not None:
            values = {"step": int(step), **{k: v for k, v in values.items() if k != "step"}}
        self.parser.feed(json.dumps(values, ensure_ascii=False, allow_nan=True).encode() + b"\n")

    def postmortem(self) -> Postmortem:
        """The postmortem of the source so far."""
        if self.parser.closed is not None and self.last is not None:
            return self.last
        run = self.parser.snapshot()
        run.meta["live"] = True  # the run goes on: a detector may wait for more records than a short log has
        self.last = diagnose(run, self.sigs, self.consequences, self.options.config, self.extra)
        return self.last

    def new_findings(self) -> list[Finding]:
        """Findings of the source so far whose id was not reported before (each id once), most important first."""
        return self._new(self.postmortem().findings)

    def preflight(self, supervised: int, tokens: int, batches: int) -> Finding | None:
        """A trainer's count of the first ``batches`` it is about to train on: ZERO_LOSS (variant ``preflight``)
        when none of their ``tokens`` has a label other than -100, a warning (variant ``preflight_low``) under
        :data:`PREFLIGHT_LOW`; kept among the findings of the postmortem."""
        sig = self.sigs.get("ZERO_LOSS")
        if sig is None or tokens <= 0 or supervised / tokens >= PREFLIGHT_LOW:
            return None
        share = 100.0 * supervised / tokens
        text = (f"pre-flight: batches 1-{batches}: {supervised:,} of {tokens:,} tokens have a label other than "
                f"-100 ({share:.2f} %)")
        hit = Hit(evidence=[Evidence(None, text, 0)], confidence=0.99 if supervised == 0 else 0.6, first_step=0,
                  facts={"batches": batches, "supervised": f"{supervised:,}", "tokens": f"{tokens:,}",
                         "share": f"{share:.2f}"},
                  variant="preflight" if supervised == 0 else "preflight_low",
                  severity=None if supervised == 0 else Severity.WARNING)
        finding = make_finding(sig, hit, self.parser.snapshot())
        self.extra.append(finding)
        return finding

    def close(self) -> Postmortem:
        """The end of the source: its final postmortem (what ``analyze`` gives for the whole text)."""
        self.last = diagnose(self.parser.close(), self.sigs, self.consequences, self.options.config, self.extra)
        return self.last

    def _new(self, findings: Iterable[Finding]) -> list[Finding]:
        new = [f for f in findings if f.id not in self.reported]
        self.reported.update(f.id for f in new)
        return new


PREFLIGHT_LOW = 0.01  # under 1 % of the first batches' tokens supervised: a warning (SFT chat data: 10-50 %)


def describe(finding: Finding, lang: str = "en") -> str:
    """A finding as ``watch`` and the trainer callback print it: severity, id, where, title; its summary below."""
    from logpost.report.context import strings, tr

    sev = tr(strings(), f"sev_{finding.severity.label}", lang)
    if lang == "zh":
        where = "，".join(p for p in (f"第 {finding.first_step} 步" if finding.first_step is not None else "",
                                     f"第 {finding.first_line} 行" if finding.first_line is not None else "") if p)
        head = f"{sev} {finding.id}" + (f"（{where}）" if where else "") + "："
    else:
        where = ", ".join(p for p in (f"step {finding.first_step}" if finding.first_step is not None else "",
                                      f"line {finding.first_line}" if finding.first_line is not None else "") if p)
        head = f"{sev.upper()} {finding.id}" + (f" ({where})" if where else "") + ": "
    return f"{head}{finding.title[lang]}\n  {finding.summary[lang]}"


def _plain(value: Any) -> Any:
    """A logged value as JSON can hold it (a tensor or numpy scalar becomes its number)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _plain(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def write_postmortem(pm: Postmortem, folder: str, lang: str = "both") -> list[str]:
    """Write ``postmortem.md``, ``.html`` and ``.json`` into ``folder`` (made if missing), each atomically.

    Returns:
        The paths written.

    Raises:
        InputError: the folder cannot be made or written.
    """
    from logpost.outputs import write_atomic
    from logpost.report import render

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the report folder ({exc.strerror or exc})") from None
    paths = []
    for fmt in REPORTS:
        path = os.path.join(folder, f"postmortem.{fmt}")
        text = (render.render_markdown(pm, lang) if fmt == "md" else render.render_html(pm, lang) if fmt == "html"
                else render.render_json(pm))
        write_atomic(path, text)
        paths.append(path)
    return paths
