"""The checks: each sampled row against what its dataset entry asks of it.

A :class:`Tally` collects one problem (an id plus what it is about, e.g. the role value ``model``)
over all sampled rows: how many rows, the first few row numbers with the offending key or value,
and the facts its texts need. :func:`check_rows` also decides, per row, whether anything in it would
be supervised, which gives the share of samples that train nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from logpost.check.axolotl import KNOWN_ROLES, DatasetSpec
from logpost.check.readers import Row
from logpost.model import Evidence

IGNORE_INDEX = -100
EVIDENCE_ROWS = 3  # row numbers quoted per problem; the count covers every sampled row

# Role names seen in public chat datasets, and the role each one means (for suggesting a `roles` map).
ROLE_GUESSES = {
    "assistant": ("assistant", "gpt", "model", "bot", "chatbot", "ai", "agent", "response", "chatgpt", "gpt4",
                  "gpt-4", "llm", "output", "answer", "answerer", "助手"),
    "user": ("user", "human", "prompter", "question", "customer", "usr", "instruction", "input", "用户"),
    "system": ("system", "sys", "context"),
    "tool": ("tool", "function", "ipython", "observation", "tool_response", "function_response", "tool_result"),
}
NO_ROLE = "(no role)"
ROLE_KEYS = ("role", "from", "speaker", "author", "sender", "type")
CONTENT_KEYS = ("content", "value", "text", "message", "utterance", "body")


def guess_role(value: str) -> str | None:
    low = value.strip().lower()
    return next((target for target, names in ROLE_GUESSES.items() if low in names), None)


def _clip(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value,
                                                                                               ensure_ascii=False)
    return text if len(text) <= width else text[: width - 2] + "…\""


def _keys(obj: Any) -> str:
    return ", ".join(map(str, obj)) if isinstance(obj, dict) and obj else "none"


@dataclass
class Tally:
    id: str
    key: str
    rows: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the file of each evidence row
    facts: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Counter[str]] = field(default_factory=dict)
    row_ids: set[tuple[str, int]] = field(default_factory=set)

    def add(self, row: Row, text: str, **counts: Any) -> None:
        rid = (row.file, row.row)
        if rid not in self.row_ids:
            self.row_ids.add(rid)
            self.rows += 1
            if len(self.evidence) < EVIDENCE_ROWS:
                self.evidence.append(Evidence(row.row, text))
                self.files.append(row.file)
        for name, value in counts.items():
            if value is not None:
                self.counters.setdefault(name, Counter())[str(value)] += 1


@dataclass
class Outcome:
    """What the sampled rows of one dataset showed."""

    rows: int = 0
    unsupervised: int = 0  # rows in which nothing at all would be trained
    eos_only: int = 0  # rows in which only an end-of-sequence / end-of-turn token would be trained
    files: list[str] = field(default_factory=list)
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)
    turn_keys: Counter[str] = field(default_factory=Counter)
    list_fields: Counter[str] = field(default_factory=Counter)
    turn_keys_by_field: dict[str, Counter[str]] = field(default_factory=dict)
    raw_roles: Counter[str] = field(default_factory=Counter)
    row_keys: Counter[str] = field(default_factory=Counter)

    def tally(self, sig: str, key: str = "") -> Tally:
        return self.tallies.setdefault((sig, key), Tally(sig, key))


def check_rows(spec: DatasetSpec, rows: Iterable[Row]) -> Outcome:
    out = Outcome()
    for row in rows:
        out.rows += 1
        if row.file not in out.files:
            out.files.append(row.file)
        if not isinstance(row.data, dict):
            out.tally("CHECK_ROW_NOT_OBJECT").add(row, f"row is {type(row.data).__name__}: {_clip(row.data)}")
            out.unsupervised += 1
            continue
        out.row_keys.update(map(str, row.data))
        _note_lists(out, row.data)
        kind = spec.kind
        if _is_tokenized(row.data):  # Axolotl uses pre-tokenized rows as they are, whatever the type
            verdict = _tokenized_row(row, out)
        elif kind in ("chat", "sharegpt", "pygmalion"):
            verdict = _chat_row(spec, row, out)
        elif kind in ("instruction", "custom", "completion", "prompt_completion"):
            verdict = _fields_row(spec, row, out)
        elif kind == "input_output":
            verdict = _segments_row(spec, row, out)
        else:
            verdict = "yes"  # rl / unknown types: read, not judged
        if spec.sequence_len and spec.kind != "rl":
            _length(spec, row, out)
        if verdict == "no":
            out.unsupervised += 1
        elif verdict == "eos":
            out.eos_only += 1
    return out


# A lower bound on tokens from characters, to flag only rows that are surely longer than sequence_len:
# BPE tokenizers of current models average ~4 characters per token on English text and 1-1.5 CJK
# characters per token; dividing by 6 and 3 undercounts both, so a flagged row is long on any of them.
CHARS_PER_TOKEN_MAX = 6
CJK_CHARS_PER_TOKEN_MAX = 3
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def min_tokens(text: str) -> int:
    cjk = len(_CJK.findall(text))
    return (len(text) - cjk) // CHARS_PER_TOKEN_MAX + cjk // CJK_CHARS_PER_TOKEN_MAX


def _row_text(spec: DatasetSpec, data: dict[str, Any]) -> str:
    if _is_tokenized(data):
        return ""
    parts: list[str] = []
    if spec.kind in ("chat", "sharegpt", "pygmalion"):
        for t in _as_turns(data.get(spec.field_messages)) or []:
            c = t.get(spec.content_key)
            parts.append(c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) if c is not None else "")
    elif spec.kind == "input_output":
        parts = [str(s.get("text", "")) for s in _as_turns(data.get("segments")) or []]
    else:
        parts = [str(data[k]) for k in (*spec.fields_required, *spec.fields_optional)
                 if isinstance(data.get(k), str)]
    return "\n".join(parts)


def _length(spec: DatasetSpec, row: Row, out: Outcome) -> None:
    assert spec.sequence_len is not None
    est = min_tokens(_row_text(spec, row.data))
    if est > spec.sequence_len:
        out.tally("CHECK_SEQUENCE_TOO_LONG").add(
            row, f"at least ~{est} tokens > sequence_len {spec.sequence_len}", tokens=est)


def _is_tokenized(data: dict[str, Any]) -> bool:
    return all(isinstance(data.get(k), list) for k in ("input_ids", "attention_mask", "labels"))


def _tokenized_row(row: Row, out: Outcome) -> str:
    labels = row.data["labels"]
    if any(isinstance(v, int) and v != IGNORE_INDEX for v in labels):
        return "yes"
    t = out.tally("CHECK_NO_TRAINABLE_TURN")
    t.add(row, f"labels: all {len(labels)} are {IGNORE_INDEX}")
    t.counters.setdefault("tokenized", Counter())["rows"] += 1
    return "no"


def _note_lists(out: Outcome, data: dict[str, Any]) -> None:
    """Remember which keys hold a list of objects, and the keys inside them (to suggest a mapping)."""
    for key, value in data.items():
        turns = _as_turns(value)
        if turns:
            out.list_fields[str(key)] += 1
            keys = out.turn_keys_by_field.setdefault(str(key), Counter())
            for t in turns:
                keys.update(map(str, t))


def _as_turns(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)  # Axolotl json-decodes a string messages field
        except ValueError:
            return None
    if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
        return value
    return None


def _chat_row(spec: DatasetSpec, row: Row, out: Outcome) -> str:
    data = row.data
    fm = spec.field_messages
    if data.get(fm) is None:
        out.tally("CHECK_MESSAGES_FIELD_MISSING", fm).add(
            row, f"no key {json.dumps(fm)} (row keys: {_keys(data)})" if fm not in data
            else f"{fm} = null")
        return "no"
    value = data[fm]
    turns = _as_turns(value)
    if turns is None:
        shape = type(value).__name__
        if isinstance(value, list):
            shape = "list of " + "/".join(sorted({type(t).__name__ for t in value})) if value else "empty list"
        out.tally("CHECK_MESSAGES_NOT_LIST", fm).add(row, f"{fm} = {_clip(value)} ({shape})", shape=shape)
        return "no"
    trained = eos = False
    for i, turn in enumerate(turns):
        out.turn_keys.update(map(str, turn))
        role = next((turn[k] for k in (spec.role_key, *spec.role_keys_alt) if turn.get(k) is not None), None)
        content = next((turn[k] for k in (spec.content_key, *spec.content_keys_alt) if turn.get(k) is not None),
                       None)
        if role is None:
            what = (f"{fm}[{i}].{spec.role_key} = null" if spec.role_key in turn
                    else f"{fm}[{i}] has no {json.dumps(spec.role_key)} (keys: {_keys(turn)})")
            out.tally("CHECK_TURN_KEY_MISSING", f"role:{spec.role_key}").add(row, what)
        if content is None:
            what = (f"{fm}[{i}].{spec.content_key} = null" if spec.content_key in turn
                    else f"{fm}[{i}] has no {json.dumps(spec.content_key)} (keys: {_keys(turn)})")
            out.tally("CHECK_TURN_KEY_MISSING", f"content:{spec.content_key}").add(row, what)
        mapped = spec.map_role(role)
        if role is not None:
            out.raw_roles[str(role)] += 1
            if mapped not in spec.known_roles:
                out.tally("CHECK_ROLE_UNMAPPED", str(role)).add(
                    row, f"{fm}[{i}].{spec.role_key} = {_clip(role)}")
        flag = turn.get(spec.message_field_training) if spec.message_field_training else None
        if isinstance(flag, bool):
            should = flag
        else:
            should = spec.train_on_inputs or (mapped is not None and mapped in spec.roles_to_train)
        if should:
            if _has_text(content):
                trained = True
            else:
                eos = True
    if trained:
        return "yes"
    if spec.train_on_eos == "all" or eos:
        _no_trainable(spec, row, out, turns, eos_only=True)
        return "eos"
    _no_trainable(spec, row, out, turns, eos_only=False)
    return "no"


def _no_trainable(spec: DatasetSpec, row: Row, out: Outcome, turns: list[dict[str, Any]], eos_only: bool) -> None:
    raw = [t.get(spec.role_key) for t in turns]
    mapped = [spec.map_role(r) for r in raw]
    shown = ", ".join(NO_ROLE if r is None else str(r) if r == m else f"{r}→{m}"
                      for r, m in zip(raw, mapped, strict=True))
    t = out.tally("CHECK_NO_TRAINABLE_TURN")
    t.add(row, f"roles [{shown}]; roles_to_train {flow(list(spec.roles_to_train))}")
    for r in raw:
        t.counters.setdefault("roles", Counter())[NO_ROLE if r is None else str(r)] += 1
    if eos_only:
        t.counters.setdefault("eos_only", Counter())["rows"] += 1


def _has_text(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):  # content parts: [{"type": "text", "text": ...}]
        return any(_has_text(p.get("text") if isinstance(p, dict) else p) for p in value)
    return True


def _fields_row(spec: DatasetSpec, row: Row, out: Outcome) -> str:
    data = row.data
    missing = False
    for name in spec.fields_required:
        if name not in data or data[name] is None:
            out.tally("CHECK_FIELD_MISSING", name).add(row, f"no key {json.dumps(name)} (row keys: {_keys(data)})")
            missing = True
        elif not _has_text(data[name]):
            out.tally("CHECK_FIELD_EMPTY", name).add(row, f"{name} = {_clip(data[name])}")
    if missing:
        return "no"  # Axolotl raises KeyError on this row
    if spec.train_on_inputs:
        return "yes"
    if spec.output_field and not _has_text(data.get(spec.output_field)):
        return "eos"  # Axolotl's instruction strategies and TRL append EOS to the response: only it is trained
    return "yes"


def _segments_row(spec: DatasetSpec, row: Row, out: Outcome) -> str:
    segs = row.data.get("segments")
    if segs is None:
        out.tally("CHECK_FIELD_MISSING", "segments").add(row, f"no key \"segments\" (row keys: {_keys(row.data)})")
        return "no"
    turns = _as_turns(segs)
    if turns is None:
        out.tally("CHECK_MESSAGES_NOT_LIST", "segments").add(row, f"segments = {_clip(segs)}",
                                                              shape=type(segs).__name__)
        return "no"
    for i, seg in enumerate(turns):
        if "text" not in seg:
            out.tally("CHECK_TURN_KEY_MISSING", "content:text").add(
                row, f"segments[{i}] has no \"text\" (keys: {_keys(seg)})")
    if spec.train_on_inputs or any(s.get("label") and _has_text(s.get("text")) for s in turns):
        return "yes"
    t = out.tally("CHECK_NO_TRAINABLE_TURN")
    t.add(row, "no segment has label: true")
    return "no"


# ------------------------------------------------------------------------------------ fixes


def flow(value: Any) -> str:
    """YAML flow style as people write it in a config: ``{role: from, content: value}``, ``["bot"]``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json.dumps(str(v), ensure_ascii=False) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def config_change(changes: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {flow(v)}" for k, v in changes.items())


def best_turn_keys(keys: Counter[str], want_role: str, want_content: str) -> tuple[str | None, str | None]:
    """The role and content keys the turns actually use (the configured ones when present)."""
    role = want_role if keys.get(want_role) else next((k for k in ROLE_KEYS if keys.get(k)), None)
    content = want_content if keys.get(want_content) else next((k for k in CONTENT_KEYS if keys.get(k)), None)
    return role, content


def roles_fix(spec: DatasetSpec, values: Iterable[str]) -> dict[str, list[str]] | None:
    """A `roles:` map that sends every observed role value where it belongs.

    `roles` replaces Axolotl's default map, so the suggestion keeps every non-identity mapping the
    data needs (e.g. ``human`` and ``gpt`` too), plus what the config already had.
    """
    out: dict[str, list[str]] = {k: list(v) for k, v in (spec.roles_explicit or {}).items()}
    changed = False
    for value in sorted(set(values)):
        target: str | None = spec.roles[value] if value in spec.roles else guess_role(value)
        if target is None:
            continue
        if target == value:
            continue
        if value not in out.setdefault(target, []):
            out[target].append(value)
            changed = changed or spec.map_role(value) != target
    order = {r: i for i, r in enumerate(KNOWN_ROLES)}
    result = {k: v for k, v in sorted(out.items(), key=lambda kv: (order.get(kv[0], 9), kv[0])) if v}
    return result if changed else None
