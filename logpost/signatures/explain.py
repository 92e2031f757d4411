"""What ``logpost explain ID`` prints, and the labels the signature pages use (tools/signature_docs.py)."""

from __future__ import annotations

from typing import Any

from logpost.signatures.registry import Signature

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
