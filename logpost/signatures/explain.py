"""What ``logpost explain ID`` prints, and the labels the signature pages use (tools/signature_docs.py)."""

from __future__ import annotations

from typing import Any

from logpost.signatures.registry import Signature
from logpost.texts import strings


def labels(lang: str) -> dict[str, str]:
    """The labels of the signature pages and ``explain`` in ``lang`` (the ``doc_*`` strings)."""
    return {key[4:]: forms[lang] for key, forms in strings().items() if key.startswith("doc_")}


def _steps(steps: Any, lang: str) -> list[str]:
    return [f"{i}.{' [' + ', '.join(s.frameworks) + ']' if s.frameworks else ''} {s.text[lang]}"
            for i, s in enumerate(steps, 1)]


def explain_text(sig: Signature, lang: str) -> str:
    """What ``logpost explain ID`` prints: title, why, what it explains, the steps, and each variant's texts."""
    t = labels(lang)
    colon = "：" if lang == "zh" else ": "
    out = [f"{sig.id} · {sig.severity.label} · {sig.title[lang]}", "", sig.why[lang], ""]
    if sig.consequences:
        out += [t["explains"] + colon + ", ".join(sig.consequences), ""]
    out += _steps(sig.remediation, lang) + [""]
    for name, var in sig.variants.items():
        out += [f"{t['variant']} {name}{colon}{t['variant_intro']}", ""]
        if var.title:
            out += [var.title[lang], ""]
        if var.why:
            out += [var.why[lang], ""]
        if var.remediation:
            out += _steps(var.remediation, lang) + [""]
    return "\n".join(out)
