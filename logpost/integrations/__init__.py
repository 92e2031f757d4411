"""logpost inside a training run: the HF Trainer / TRL callback (:mod:`logpost.integrations.transformers`) and
the Axolotl plugin (:mod:`logpost.integrations.axolotl`). Each imports its framework only when used
(``pip install 'logpost[hf]'``)."""

from __future__ import annotations

from logpost.model import Finding


class LogpostStop(RuntimeError):
    """A run stopped by logpost: a finding at or above the ``stop_on`` severity (its ``findings``), before
    training (the pre-flight, the Axolotl config check) or at the end of a run stopped at a step boundary.
    ``report`` is the folder with the postmortem, when one was written."""

    def __init__(self, message: str, findings: tuple[Finding, ...] = (), report: str | None = None):
        super().__init__(message)
        self.findings = findings
        self.report = report
