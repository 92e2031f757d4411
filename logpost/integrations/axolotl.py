"""``LogpostPlugin``: logpost in an Axolotl run (the plugin API of Axolotl 0.19).

```yaml
plugins:
  - logpost.integrations.axolotl.LogpostPlugin
logpost_report_dir: postmortem/   # optional; default: <output_dir>/logpost
logpost_stop_on: critical         # optional; the severity that stops the run
```

Before Axolotl prepares the datasets (its ``load_datasets`` hook; again before the model loads, when a
prepared dataset was reused) the plugin runs ``logpost check`` on the config and its local data (100 rows per
dataset, streamed). A finding at or above ``logpost_stop_on`` on a training dataset, the founding
misconfiguration above all (roles that never map to the trained role, a messages field that is not there),
stops the run with :class:`~logpost.integrations.LogpostStop`, naming the cause and the config change, before
the model is loaded and any GPU time is spent. Then it adds :class:`LogpostCallback` to the trainer (the
pre-flight count of supervised tokens, the live diagnosis, the postmortem).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from logpost.integrations import LogpostStop
from logpost.model import Finding, InputError, Severity

try:  # inside Axolotl: its plugin base class; elsewhere (tests, docs) the hooks are plain methods
    from axolotl.integrations.base import BasePlugin
except ImportError:  # pragma: no cover - depends on what is installed
    BasePlugin = object

try:
    from pydantic import BaseModel

    class LogpostArgs(BaseModel):
        """The plugin's keys in an Axolotl config."""

        logpost_report_dir: str | None = None
        logpost_stop_on: str | None = None
except ImportError:  # pragma: no cover - Axolotl always has pydantic
    pass

CHECK_ROWS = 100


class LogpostPlugin(BasePlugin):  # type: ignore[misc,valid-type]
    """Check the config against its data before anything loads; then watch the training."""

    def __init__(self) -> None:
        super().__init__()
        self.checked = False

    def get_input_args(self) -> str:
        return "logpost.integrations.axolotl.LogpostArgs"

    def load_datasets(self, cfg: Any, preprocess: bool = False) -> None:
        self._check(cfg)
        return None  # Axolotl loads the datasets itself

    def pre_model_load(self, cfg: Any) -> None:
        self._check(cfg)

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[Any]:
        from logpost.integrations.transformers import LogpostCallback

        report = _get(cfg, "logpost_report_dir") or os.path.join(str(_get(cfg, "output_dir") or "."), "logpost")
        return [LogpostCallback(report_dir=report, stop_on=_stop_on(cfg))]

    def _check(self, cfg: Any) -> None:
        if self.checked:
            return
        self.checked = True
        path = _get(cfg, "axolotl_config_path")
        if not path or not os.path.isfile(str(path)):
            _say("logpost: the Axolotl config file is not known (a config given as a dict): no config check")
            return
        stops = stopping_findings(str(path), _stop_on(cfg))
        if stops:
            raise LogpostStop(stop_message(str(path), stops), tuple(stops))


def stopping_findings(config: str, stop_on: Severity | None) -> list[Finding]:
    """``logpost check`` on ``config``: its findings on training datasets at or above ``stop_on``, printed."""
    from logpost.check import CheckOptions, check_config

    try:
        report = check_config(config, CheckOptions(rows=CHECK_ROWS))
    except InputError as exc:
        _say(f"logpost: config check skipped ({exc})")
        return []
    found = [f for f in report.findings if not f.facts.get("entry_order", (False, 0))[0]]  # not test_datasets
    for f in found:
        _say(f"logpost check: {f.severity.label.upper()} {f.id}: {f.summary['en']}")
    if stop_on is None:
        return []
    return [f for f in found if f.severity >= stop_on]


def stop_message(config: str, findings: list[Finding]) -> str:
    """The cause and the config change, for the exception that stops the run."""
    worst = max(findings, key=lambda f: (int(f.severity), f.confidence))
    fix = " ".join(worst.remediation.get("en", ())[:1])
    return f"logpost stopped the run before the model loads ({config}). {worst.id}: {worst.summary['en']} Fix: {fix}"


def _stop_on(cfg: Any) -> Severity | None:
    value = _get(cfg, "logpost_stop_on")
    if value in (None, ""):
        return Severity.CRITICAL
    if str(value).lower() in ("none", "never", "false"):
        return None
    return Severity.parse(str(value))


def _get(cfg: Any, key: str) -> Any:
    getter = getattr(cfg, "get", None)
    return getter(key) if callable(getter) else getattr(cfg, key, None)


def _say(text: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # one rank speaks
        print(text, file=sys.stderr, flush=True)
