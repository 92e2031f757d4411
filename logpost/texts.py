"""How logpost speaks: every user-visible sentence is data (TOML string tables with ``en`` and ``zh``),
filled from facts by one formatter.

The tables: ``templates/strings.toml`` (reports, terminal, ``explain``, the signature pages),
``check/texts.toml`` (``logpost check``) and the signature catalogue (``signatures/catalogue``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from logpost.model import LANGS, fmt_number


def strings() -> dict[str, dict[str, str]]:
    """The fixed strings of every output, ``{key: {"en": .., "zh": ..}}``."""
    text = resources.files("logpost.templates").joinpath("strings.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def tr(table: Mapping[str, Mapping[str, str]], key: str, lang: str, *args: Any, **kw: Any) -> str:
    """A fixed string in ``lang``; ``{}`` takes ``args``, ``{name}`` takes ``kw``."""
    text = table[key][lang]
    return text.format(*args, **kw) if (args or kw) else text


class Facts(dict):  # type: ignore[type-arg]
    """``str.format_map`` over a finding's facts: a missing or None fact prints ``?``, a fact that is an
    ``{"en": .., "zh": ..}`` pair prints in ``lang``, and (with ``numbers``) a float prints compactly."""

    def __init__(self, facts: Mapping[str, Any], lang: str = "en", numbers: bool = True) -> None:
        super().__init__(facts)
        self.lang = lang
        self.numbers = numbers

    def __missing__(self, key: str) -> str:
        return "?"

    def __getitem__(self, key: str) -> Any:
        value = dict.get(self, key)
        if value is None:
            return "?"
        if isinstance(value, dict) and set(value) == set(LANGS):
            return value[self.lang]
        if self.numbers and isinstance(value, float):
            return fmt_number(value)
        return value


def fill(template: str, facts: Mapping[str, Any], lang: str = "en", numbers: bool = True) -> str:
    """``template`` with its ``{name}`` placeholders filled from ``facts`` (see :class:`Facts`)."""
    return template.format_map(Facts(facts, lang, numbers))
