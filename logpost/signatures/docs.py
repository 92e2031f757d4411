"""Generate docs/signatures.en.md and docs/signatures.zh.md from the catalogue (``make docs``).

The pages are derived data: tests/test_catalogue.py fails when they differ from what this module
renders, so edit the TOML files and regenerate, never the Markdown.

Run: ``python3 -m logpost.signatures.docs [--check]``.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

from logpost.signatures.registry import Signature, load_catalogue

DOCS = Path(__file__).resolve().parents[2] / "docs"

TEXT: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Signature catalogue",
        "intro": "Generated from `logpost/signatures/catalogue/*.toml` by `make docs`; do not edit by hand. "
                 "`logpost explain ID` prints the same text in the terminal. Findings are ordered root first: "
                 "a signature lists the ids it explains, and a report leads with the finding that explains the others.",
        "id": "id", "severity": "severity", "status": "status", "name": "title",
        "explains": "Explains", "why": "Why it happens", "fix": "What to do", "params": "Parameters",
        "patterns": "Log markers", "samples": "sample", "cases": "Test cases", "found": "found",
        "not_found": "not found", "all": "all frameworks",
        "summary": "Summary template", "field": "reads",
        "variant": "Variant", "variant_intro": "a finding that shows this way uses these texts instead",
    },
    "zh": {
        "title": "故障特征目录",
        "intro": "本页由 `make docs` 根据 `logpost/signatures/catalogue/*.toml` 生成，请勿手工修改。"
                 "`logpost explain ID --lang zh` 在终端里输出同样的内容。诊断结果按“根因在前”排序："
                 "每个特征列出它能解释的其他特征，报告以能解释其他结果的那一条开头。",
        "id": "ID", "severity": "级别", "status": "状态", "name": "标题",
        "explains": "可一并解释", "why": "原因", "fix": "处理建议", "params": "参数",
        "patterns": "日志标记", "samples": "样例", "cases": "测试用例", "found": "应检出",
        "not_found": "不应检出", "all": "所有框架",
        "summary": "摘要模板", "field": "匹配字段",
        "variant": "变体", "variant_intro": "以这种形式出现的诊断结果改用下面的文字",
    },
}


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


def _steps(steps: Any, lang: str) -> list[str]:
    return [f"{i}.{' [' + ', '.join(s.frameworks) + ']' if s.frameworks else ''} {s.text[lang]}"
            for i, s in enumerate(steps, 1)]


def explain_text(sig: Signature, lang: str) -> str:
    """What ``logpost explain ID`` prints: title, why, what it explains, the steps, and each variant's texts."""
    t = TEXT[lang]
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
            from logpost.outputs import write_atomic

            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(str(path), text)
            print(f"wrote {path}")
    if stale:
        print("stale: " + ", ".join(stale) + " (run `make docs`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
