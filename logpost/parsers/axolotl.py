"""Axolotl's own log lines, in its three prefix eras (see shared formats/axolotl.md):

A ``[time] [LEVEL] [axolotl.func:42] [PID:1] msg``, B the same with ``[RANK:n]``, C
``[time] [LEVEL] [axolotl.module] msg``. We key on message text, never on the logger path or the
level name (the token-count lines are DEBUG in source but have been seen tagged INFO).
"""

from __future__ import annotations

import re

from logpost.model import Line
from logpost.parsers.base import Builder, LineParser

# not the logger's name "[axolotl.calculate_total_num_steps:299]" (its source line)
_COUNT = re.compile(r"(?<![\w.])`?(total_num_tokens|total_supervised_tokens|data_loader_len|total_num_steps):\s*([\d_,]+)`?")
_BASE_MODEL = re.compile(r"""["']?base_model["']?\s*[:=]\s*["']?([^"',\s}]+)""")
_STEPS_SET = re.compile(r"Maximum number of steps set at (\d+)")
_COMPLETED = re.compile(r"Training [Cc]ompleted")


class AxolotlParser(LineParser):
    # Every Axolotl line holds "[axolotl": far too common to be a marker; it is counted in the first 32 MiB.
    # "Training Completed!!!" / "Training completed! Saving ..."
    markers = ("Training completed", "Training Completed", "total_", "data_loader_len", "base_model",
               "Maximum number of steps")
    counters = ("[axolotl",)

    def feed(self, line: Line, out: Builder) -> None:
        if out.is_claimed(line):  # a metric record of another parser
            return
        text = line.text
        if "total_" in text or "data_loader_len" in text:
            for key, raw in _COUNT.findall(text):
                value = int(raw.replace("_", "").replace(",", ""))
                out.set_meta(key, value, line)
                out.event("info", line, key=key, value=value)
        if "base_model" in text and "base_model_config" not in text:
            m = _BASE_MODEL.search(text)
            if m:
                out.set_meta("model", m.group(1), line)
        if "ompleted" in text and _COMPLETED.search(text):
            out.set_meta("completed", True, line)
        m = _STEPS_SET.search(text)
        if m:
            out.set_meta("max_steps", int(m.group(1)), line)

    def finish(self, out: Builder) -> None:
        n = out.counts.get("[axolotl", 0)
        if n:
            out.saw("axolotl", 3 * n)
