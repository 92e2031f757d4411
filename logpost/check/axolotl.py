"""Read an Axolotl YAML config into dataset specs: what each dataset entry asks of its data.

The semantics follow Axolotl 0.19 (src/axolotl/...):

- ``prompt_strategies/chat_template.py``: ``field_messages`` defaults to ``messages``;
  ``message_property_mappings`` defaults to ``{role: role, content: content}`` and the deprecated
  ``message_field_role`` / ``message_field_content`` fill it (``utils/schemas/utils.py``); ``roles``
  *replaces* the default role map ``human→user, user→user, gpt→assistant, assistant→assistant,
  system→system, tool→tool`` (it is not merged); a role the map does not know passes through
  unchanged; ``roles_to_train`` (default ``["assistant"]``) is itself mapped through the role map;
  a turn is trained when its ``message_field_training`` flag says so, else when ``train_on_inputs``
  (top level, default false) or its mapped role is in ``roles_to_train``; ``train_on_eos`` defaults to
  ``turn``.
- ``utils/schemas/validation.py``: ``type: sharegpt*`` is rejected ("Please use `type: chat_template`").
- ``utils/data/shared.py``: the format is ``ds_type``, else the extension (parquet, arrow, csv, txt),
  else json; a path that does not exist locally is looked up on the Hub, in cloud storage or at a URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logpost.model import InputError

DEFAULT_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "gpt": "assistant",
                 "system": "system", "tool": "tool"}
KNOWN_ROLES = ("system", "user", "assistant", "tool")

# Instruction-style types: the fields each reads from a row (prompt_tokenizers.py, prompt_strategies/*),
# which must be present, and which one is supervised when train_on_inputs is false.
INSTRUCTION_TYPES: dict[str, dict[str, Any]] = {
    "alpaca": {"required": ("instruction", "output"), "optional": ("input",), "output": "output"},
    "alpaca_chat": {"required": ("instruction", "output"), "optional": ("input",), "output": "output"},
    "alpaca_chat.load_qa": {"required": ("question", "answer"), "output": "answer"},
    "alpaca_chat.load_camel_ai": {"required": ("message_1", "message_2"), "output": "message_2"},
    "alpaca_instruct": {"required": ("instruction", "output"), "optional": ("input",), "output": "output"},
    "alpaca_w_system": {"required": ("instruction", "output", "system"), "optional": ("input",),
                        "output": "output"},
    "alpaca_w_system.load_open_orca": {"required": ("question", "response", "system_prompt"),
                                       "output": "response"},
    "alpaca_w_system.load_open_orca_chatml": {"required": ("question", "response", "system_prompt"),
                                              "output": "response"},
    "orcamini": {"required": ("question", "response", "system_prompt"), "output": "response"},
    "gpteacher": {"required": ("instruction", "response"), "optional": ("input",), "output": "response"},
    "oasst": {"required": ("INSTRUCTION", "RESPONSE"), "output": "RESPONSE"},
    "jeopardy": {"required": ("question", "category", "answer"), "output": "answer"},
    "summarizetldr": {"required": ("article", "summary"), "output": "summary"},
    "explainchoice": {"required": ("question", "choices", "explanation"), "output": "explanation"},
    "concisechoice": {"required": ("question", "choices", "explanation"), "output": "explanation"},
    "reflection": {"required": ("instruction", "output", "reflection", "corrected"), "optional": ("input",),
                   "output": "corrected"},
    "context_qa": {"required": ("article", "question", "answer"), "output": "answer"},
    "context_qa.load_v2": {"required": ("context", "question", "answer"), "output": "answer"},
    "context_qa.load_404": {"required": ("article", "unanswerable_question"), "output": None},
    "metharme": {"required": ("prompt", "generation"), "output": "generation"},
}
CHAT_TYPES = ("chat_template", "messages")
RL_KEYS = ("rl",)
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "oci://", "hf://", "http://", "https://")
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class DatasetSpec:
    """One entry of ``datasets`` / ``test_datasets`` with Axolotl's defaults applied."""

    section: str  # "datasets" | "test_datasets"
    index: int
    path: str
    kind: str  # chat | sharegpt | instruction | custom | completion | input_output | pretrain | pygmalion | rl | unknown
    type_name: str
    ds_type: str | None = None
    data_files: tuple[str, ...] = ()
    split: str | None = None
    field_messages: str = "messages"
    role_key: str = "role"
    content_key: str = "content"
    roles: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ROLES))  # source -> target
    roles_explicit: dict[str, list[str]] | None = None  # the config's `roles`, as written
    roles_to_train: tuple[str, ...] = ("assistant",)  # already mapped through `roles`
    roles_to_train_raw: tuple[str, ...] = ("assistant",)
    train_on_inputs: bool = False
    train_on_eos: str = "turn"
    message_field_training: str | None = None
    chat_template: str | None = None
    fields_required: tuple[str, ...] = ()
    fields_optional: tuple[str, ...] = ()
    output_field: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None  # how findings name the entry (default: datasets[i])
    role_keys_alt: tuple[str, ...] = ()  # `type: messages` also looks for these keys, in order
    content_keys_alt: tuple[str, ...] = ()
    sequence_len: int | None = None  # top-level sequence_len
    excess_length_strategy: str = "drop"  # Axolotl 0.19 default: longer samples are dropped

    @property
    def entry(self) -> str:
        return self.label or f"{self.section}[{self.index}]"

    @property
    def known_roles(self) -> tuple[str, ...]:
        extra = tuple(sorted({*(self.roles_explicit or {}), *self.roles.values()} - set(KNOWN_ROLES)))
        return KNOWN_ROLES + extra

    def map_role(self, value: Any) -> Any:
        return self.roles.get(value, value) if isinstance(value, str) else value


@dataclass
class AxolotlConfig:
    path: Path
    datasets: list[DatasetSpec]
    sequence_len: int | None
    sample_packing: bool
    train_on_inputs: bool
    chat_template: str | None
    rl: str | None


def load_config(path: str) -> AxolotlConfig:
    """Safe-load an Axolotl YAML and describe its datasets.

    Raises:
        InputError: the file cannot be read, is not YAML, or has no dataset entries.
    """
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: not an Axolotl config (expected a YAML mapping at the top level)")
    specs = []
    train_on_inputs = bool(doc.get("train_on_inputs") or False)
    rl = doc.get("rl") or None
    for section in ("datasets", "test_datasets"):
        entries = doc.get(section) or []
        if not isinstance(entries, list):
            raise InputError(f"{path}: `{section}` must be a list of dataset entries")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("path"):
                raise InputError(f"{path}: {section}[{i}] needs a `path`")
            spec = dataset_spec(section, i, entry, train_on_inputs, doc.get("chat_template"), rl)
            seq_len = doc.get("sequence_len")
            spec.sequence_len = seq_len if isinstance(seq_len, int) and seq_len > 0 else None
            spec.excess_length_strategy = str(doc.get("excess_length_strategy") or "drop").lower()
            specs.append(spec)
    if not specs:
        raise InputError(f"{path}: no `datasets` or `test_datasets` entries to check")
    seq = doc.get("sequence_len")
    return AxolotlConfig(path=p, datasets=specs, sequence_len=seq if isinstance(seq, int) else None,
                         sample_packing=bool(doc.get("sample_packing") or False),
                         train_on_inputs=train_on_inputs,
                         chat_template=_str(doc.get("chat_template")), rl=_str(rl))


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _strs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int | float):
        return (str(value),)
    return tuple(str(v) for v in value)


def dataset_spec(section: str, index: int, entry: Mapping[str, Any], train_on_inputs: bool,
                 chat_template: Any, rl: Any) -> DatasetSpec:
    typ = entry.get("type")
    spec = DatasetSpec(section=section, index=index, path=str(entry["path"]), kind="unknown",
                       type_name=str(typ) if typ is not None else "", raw=dict(entry),
                       ds_type=_str(entry.get("ds_type")), data_files=_strs(entry.get("data_files")),
                       split=_str(entry.get("split")), train_on_inputs=train_on_inputs,
                       chat_template=_str(entry.get("chat_template") or chat_template))
    if rl:
        spec.kind = "rl"
        return spec
    if isinstance(typ, dict):
        spec.kind, spec.type_name = "custom", "custom"
        spec.fields_required = (str(typ.get("field_instruction") or "instruction"),)
        spec.fields_optional = tuple(str(typ.get(k) or d) for k, d in
                                     (("field_input", "input"), ("field_output", "output"),
                                      ("field_system", "system")))
        spec.output_field = str(typ.get("field_output") or "output")
        return spec
    name = str(typ or "")
    base = name.split(":")[0]
    if base == "messages":  # core/datasets/transforms/chat_builder.py: the first key present wins
        spec.kind = "chat"
        _chat_fields(spec, entry, defaults=("messages", "role", "content"))
        mapping = entry.get("message_property_mappings") or {}
        if not (entry.get("message_field_role") or mapping.get("role")):
            spec.role_keys_alt = ("from",)
        if not (entry.get("message_field_content") or mapping.get("content")):
            spec.content_key, spec.content_keys_alt = "value", ("text", "content")
        spec.roles.setdefault("ipython", "ipython")
    elif base in CHAT_TYPES or base.startswith("chat_template."):
        spec.kind = "chat"
        _chat_fields(spec, entry, defaults=("messages", "role", "content"))
    elif base.startswith("sharegpt"):
        spec.kind = "sharegpt"  # rejected by Axolotl >= 0.8; checked as its chat_template equivalent
        _chat_fields(spec, entry, defaults=("conversations", "from", "value"))
    elif base == "pygmalion":
        spec.kind = "pygmalion"
        spec.field_messages, spec.role_key, spec.content_key = "conversations", "role", "value"
    elif base == "completion":
        spec.kind = "completion"
        spec.fields_required = (str(entry.get("field") or "text"),)
        spec.output_field = spec.fields_required[0]
    elif base == "pretrain":
        spec.kind = "completion"
        spec.fields_required = (str(entry.get("text_column") or "text"),)
        spec.output_field = spec.fields_required[0]
    elif base == "input_output":
        spec.kind = "input_output"
        spec.fields_required = ("segments",)
    elif base in INSTRUCTION_TYPES or base.split(".")[0] in INSTRUCTION_TYPES:
        info = INSTRUCTION_TYPES.get(base) or INSTRUCTION_TYPES[base.split(".")[0]]
        spec.kind = "instruction"
        spec.fields_required = tuple(info["required"])
        spec.fields_optional = tuple(info.get("optional", ()))
        spec.output_field = info["output"]
    return spec


def _chat_fields(spec: DatasetSpec, entry: Mapping[str, Any], defaults: tuple[str, str, str]) -> None:
    spec.field_messages = str(entry.get("field_messages") or defaults[0])
    mapping = dict(entry.get("message_property_mappings") or {})
    role = entry.get("message_field_role") or mapping.get("role") or defaults[1]
    content = entry.get("message_field_content") or mapping.get("content") or defaults[2]
    spec.role_key, spec.content_key = str(role), str(content)
    roles = entry.get("roles")
    if isinstance(roles, dict) and roles:
        spec.roles_explicit = {str(t): [str(s) for s in _strs(srcs)] for t, srcs in roles.items()}
        spec.roles = {s: t for t, srcs in spec.roles_explicit.items() for s in srcs}
    rtt = entry.get("roles_to_train")
    spec.roles_to_train_raw = _strs(rtt) if rtt is not None else ("assistant",)
    spec.roles_to_train = tuple(spec.roles.get(r, r) for r in spec.roles_to_train_raw)
    spec.train_on_eos = str(entry.get("train_on_eos") or "turn")
    mft = entry.get("message_field_training")
    spec.message_field_training = str(mft) if mft else None


def resolve(spec: DatasetSpec, config_dir: Path) -> tuple[Path | None, bool]:
    """Where a dataset's path points: (local path or None, looks remote).

    A relative path is tried against the config's folder, then the working directory. A path that
    exists nowhere is remote when it has a URL scheme or looks like a Hub name (``owner/name``);
    otherwise it is a missing local path.
    """
    raw = os.path.expanduser(spec.path)
    if raw.startswith(REMOTE_SCHEMES):
        return None, True
    candidates = [Path(raw)] if os.path.isabs(raw) else [config_dir / raw, Path.cwd() / raw]
    for c in candidates:
        if c.exists():
            return c, False
    looks_local = raw.startswith((".", "/", "~")) or bool(re.search(r"\.(jsonl?|csv|parquet|arrow|txt)(\.gz)?$",
                                                                      raw, re.I))
    # "data/train" whose "data" folder exists here is a mistyped local path, not a Hub repo
    head = raw.split("/", 1)[0]
    looks_local = looks_local or any((base / head).is_dir() for base in (config_dir, Path.cwd()))
    if not looks_local and (HUB_NAME.match(raw) or "/" not in raw):
        return None, True
    return candidates[0], False
