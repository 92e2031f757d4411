"""Generate docs/signatures.en.md and docs/signatures.zh.md from the catalogue (``make docs``; a dev
tool over the repository, not shipped).

The pages are derived data: tests/test_catalogue.py fails when they differ from what this module
renders, so edit the TOML files and regenerate, never the Markdown.

Run: ``python3 tools/signature_docs.py [--check]``.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from logpost.outputs import write_atomic
from logpost.signatures.explain import TEXT
from logpost.signatures.registry import Signature, load_catalogue

DOCS = Path(__file__).resolve().parents[1] / "docs"

def _param_comments(path: str) -> dict[str, str]:
    """``key = value  # why`` lines of the [params] table: the data behind each threshold."""
    out: dict[str, str] = {}
    in_params = False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_params = stripped == "[params]"
            continue
        if in_params and "=" in stripped and not stripped.startswith("#"):
            key = stripped.split("=", 1)[0].strip()
            out[key] = stripped.split("#", 1)[1].strip() if "#" in stripped else ""
    return out


def _code(text: str) -> str:
    text = text.replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_entry(sig: Signature, lang: str) -> list[str]:
    t = TEXT[lang]
    out = [f"## {sig.id}", "", f"**{sig.title[lang]}** · {t['severity']}: `{sig.severity.label}` · "
                               f"{t['status']}: `{sig.status}`", ""]
    if sig.consequences:
        out += [f"{t['explains']}: " + ", ".join(f"[{c}](#{c.lower()})" for c in sig.consequences), ""]
    out += [f"### {t['why']}", "", sig.why[lang], "", f"### {t['fix']}", ""]
    for i, step in enumerate(sig.remediation, 1):
        scope = f" *({', '.join(step.frameworks)})*" if step.frameworks else ""
        out.append(f"{i}.{scope} {step.text[lang]}")
    out += ["", f"{t['summary']}: {_code(sig.summary[lang])}", ""]
    for name, var in sig.variants.items():
        out += [f"### {t['variant']} `{name}`", "", f"*{t['variant_intro']}*", ""]
        if var.title:
            out += [f"**{var.title[lang]}**", ""]
        if var.why:
            out += [var.why[lang], ""]
        for i, step in enumerate(var.remediation, 1):
            scope = f" *({', '.join(step.frameworks)})*" if step.frameworks else ""
            out.append(f"{i}.{scope} {step.text[lang]}")
        if var.remediation:
            out.append("")
        if var.summary:
            out += [f"{t['summary']}: {_code(var.summary[lang])}", ""]
    raw = tomllib.loads(Path(sig.path).read_text(encoding="utf-8")).get("params", {})
    if raw:
        comments = _param_comments(sig.path)
        out += [f"### {t['params']}", ""]
        for key, value in raw.items():
            note = comments.get(key, "")
            out.append(f"- `{key} = {value!r}`" + (f": {note}" if note else ""))
        out.append("")
    if sig.patterns:
        out += [f"### {t['patterns']}", ""]
        for pat in sig.patterns:
            extra = f" ({t['field']} `{pat.field}`)" if pat.field != "text" else ""
            tags = f" · tags: {', '.join(pat.tags)}" if pat.tags else ""
            out.append(f"- {_code(pat.source)}{extra}{tags}")
            for sample in pat.samples:
                out.append(f"  - {t['samples']}: {_code(sample[:200])}")
        out.append("")
    if sig.tests:
        out += [f"### {t['cases']}", ""]
        for case in sig.tests:
            what = f"`{case['log']}`" if "log" in case else _code(case["text"].strip().splitlines()[-1][:120])
            verdict = t["found"] if case["found"] else t["not_found"]
            note = f" — {case['note']}" if case.get("note") else ""
            out.append(f"- {verdict}: {what}{note}")
        out.append("")
    return out


def render(lang: str) -> str:
    sigs = load_catalogue()
    t = TEXT[lang]
    out = [f"# {t['title']}", "", t["intro"], "", f"| {t['id']} | {t['severity']} | {t['status']} | {t['name']} |",
           "|---|---|---|---|"]
    for sig in sigs.values():
        out.append(f"| [{sig.id}](#{sig.id.lower()}) | {sig.severity.label} | {sig.status} | {sig.title[lang]} |")
    out.append("")
    for sig in sigs.values():
        out += render_entry(sig, lang)
    return "\n".join(out).rstrip() + "\n"


def paths() -> dict[str, Path]:
    return {lang: DOCS / f"signatures.{lang}.md" for lang in TEXT}


def main(argv: list[str]) -> int:
    stale = []
    for lang, path in paths().items():
        text = render(lang)
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(str(path), text)
            print(f"wrote {path}")
    if stale:
        print("stale: " + ", ".join(stale) + " (run `make docs`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
