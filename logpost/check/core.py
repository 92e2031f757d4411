"""``check(target) -> CheckReport``: an Axolotl config (or a plain data file) against its data.

For each dataset entry: resolve the path (never fetching anything remote), stream the first N rows,
run :mod:`logpost.check.rules` over them and turn each tally into a :class:`logpost.model.Finding`
whose texts come from ``texts.toml`` in both languages. Evidence lines are row positions in the data
file (the physical line for JSON Lines / CSV / text, the row index for Parquet / Arrow).
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from logpost.check import rules
from logpost.check.axolotl import (
    KNOWN_ROLES,
    REMOTE_SCHEMES,
    AxolotlConfig,
    DatasetSpec,
    load_config,
    resolve,
)
from logpost.check.readers import ReadError, Row, display, folder_files, format_of, iter_rows
from logpost.model import LANGS, Evidence, Finding, InputError, Severity, Verdict

DEFAULT_ROWS = 100
DATA_FORMATS = ("messages", "prompt-completion", "text")
CONFIG_SUFFIXES = (".yml", ".yaml")
LOG_SUFFIXES = (".log", ".out", ".err", ".txt", ".gz")  # names a training log usually has
TEXTS = Path(__file__).with_name("texts.toml")

INSTRUCTION_KEYS = ("instruction", "prompt", "question", "query", "input", "problem")
OUTPUT_KEYS = ("output", "response", "answer", "completion", "solution", "target", "chosen")
TEXT_KEYS = ("text", "content", "document", "body")


@dataclass(frozen=True)
class CheckOptions:
    """How much to read, and for a plain data file how to read it (TRL / HF conventions)."""

    rows: int = DEFAULT_ROWS
    data_format: str | None = None  # messages | prompt-completion | text; sniffed when None
    messages_field: str = "messages"
    role_key: str = "role"
    content_key: str = "content"
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    text_field: str = "text"
    assistant_only_loss: bool = False  # TRL: only assistant turns are trained
    train_on_prompt: bool = False  # TRL prompt-completion with completion_only_loss=False


@dataclass(frozen=True)
class DatasetResult:
    """One dataset entry: where it pointed, what was read, how much of it trains nothing."""

    entry: str
    path: str
    files: tuple[str, ...]
    format: str | None
    type: str
    status: str  # checked | remote | unreadable | empty
    rows: int = 0
    unsupervised: int = 0
    eos_only: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry, "path": self.path, "files": list(self.files), "format": self.format,
                "type": self.type, "status": self.status, "rows_sampled": self.rows,
                "rows_unsupervised": self.unsupervised, "rows_eos_only": self.eos_only,
                "unsupervised_share": round(self.unsupervised / self.rows, 3) if self.rows else None}


@dataclass(frozen=True)
class CheckReport:
    source: str
    mode: str  # axolotl | data
    verdict: Verdict
    findings: tuple[Finding, ...]
    datasets: tuple[DatasetResult, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    @property
    def checked(self) -> int:
        return sum(1 for d in self.datasets if d.status == "checked")


# ------------------------------------------------------------------------------------ texts


@cache
def texts() -> dict[str, Any]:
    return tomllib.loads(TEXTS.read_text(encoding="utf-8"))


class _Facts(dict):  # type: ignore[type-arg]
    """format_map over facts: a fact may be a {"en": .., "zh": ..} pair; unknown keys print '?'."""

    def __init__(self, facts: dict[str, Any], lang: str) -> None:
        super().__init__(facts)
        self.lang = lang

    def __missing__(self, key: str) -> str:
        return "?"

    def __getitem__(self, key: str) -> Any:
        value = dict.get(self, key)
        if isinstance(value, dict) and set(value) == set(LANGS):
            return value[self.lang]
        return "?" if value is None else value


def fill(template: str, facts: dict[str, Any], lang: str) -> str:
    return template.format_map(_Facts(facts, lang))


def frag(name: str, **facts: Any) -> dict[str, str]:
    """A case-dependent piece of text from ``[fragments]``, filled in both languages."""
    entry = texts()["fragments"][name]
    return {lg: fill(entry[lg], facts, lg) for lg in LANGS}


BLANK = {lg: "" for lg in LANGS}


def make_finding(sig: str, facts: dict[str, Any], evidence: list[Evidence], every_row: bool,
                 mode: str, explains: tuple[str, ...] = ()) -> Finding:
    entry = texts()[sig]
    variant = facts.get("severity_variant", "")  # e.g. "_content": a table may grade a sub-case apart
    severity = Severity.parse(entry.get(("severity_all" if every_row else "severity") + variant)
                              or entry["severity_all" if every_row else "severity"])
    steps = [s for s in entry["remediation"] if mode in s.get("modes", (mode,))
             and s.get("when", facts.get("fix_kind")) == facts.get("fix_kind")]
    first = next((e.line for e in evidence if e.line is not None), None)
    return Finding(
        id=sig, severity=severity, confidence=float(entry["confidence"]),
        title={lg: entry["title"][lg] for lg in LANGS},
        summary={lg: fill(entry["summary"][lg], facts, lg) for lg in LANGS},
        why={lg: entry["why"][lg] for lg in LANGS},
        remediation={lg: tuple(fill(s[lg], facts, lg) for s in steps) for lg in LANGS},
        evidence=tuple(evidence), first_line=first, explains=explains,
        facts={k: v for k, v in facts.items()})


# ------------------------------------------------------------------------------------ entry points


def check(target: str, options: CheckOptions | None = None) -> CheckReport:
    """Check an Axolotl config (``.yml`` / ``.yaml``) or one plain data file / folder.

    Raises:
        InputError: unreadable config, unknown data format, bad options.
    """
    options = options or CheckOptions()
    if options.rows < 1:
        raise InputError("--rows must be at least 1")
    if target.lower().endswith(CONFIG_SUFFIXES):
        return check_config(target, options)
    return check_data(target, options)


def check_config(path: str, options: CheckOptions | None = None) -> CheckReport:
    options = options or CheckOptions()
    cfg = load_config(path)
    base = cfg.path.resolve().parent
    results, findings = [], []
    for spec in cfg.datasets:
        res, found = _check_dataset(spec, base, options, cfg=cfg)
        results.append(res)
        findings.extend(found)
    settings = {"sequence_len": cfg.sequence_len, "sample_packing": cfg.sample_packing,
                "train_on_inputs": cfg.train_on_inputs, "chat_template": cfg.chat_template, "rl": cfg.rl,
                "rows": options.rows}
    return _report(path, "axolotl", findings, results, settings)


def check_data(path: str, options: CheckOptions | None = None) -> CheckReport:
    """A plain HF/TRL data file: ``messages`` (conversational), ``prompt-completion`` or ``text``."""
    options = options or CheckOptions()
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file or folder")
    fmt = options.data_format or _sniff(p, options)
    if fmt not in DATA_FORMATS:
        raise InputError(f"unknown --layout {fmt!r} (choose from {', '.join(DATA_FORMATS)})")
    spec = DatasetSpec(section="data", index=0, path=path, kind="chat", type_name=fmt, label=display(p))
    if fmt == "messages":
        spec.field_messages, spec.role_key, spec.content_key = (options.messages_field, options.role_key,
                                                                 options.content_key)
        spec.roles = {r: r for r in KNOWN_ROLES}
        spec.roles_to_train = spec.roles_to_train_raw = ("assistant",)
        spec.train_on_inputs = not options.assistant_only_loss  # TRL trains every token by default
        spec.train_on_eos = "none"
    elif fmt == "prompt-completion":
        spec.kind = "prompt_completion"
        spec.fields_required = (options.prompt_field, options.completion_field)
        spec.output_field = options.completion_field
        spec.train_on_inputs = options.train_on_prompt
    else:
        spec.kind = "completion"
        spec.fields_required = (options.text_field,)
        spec.output_field = options.text_field
    res, found = _check_dataset(spec, Path.cwd(), options, options_mode=True)
    settings = {"format": fmt, "rows": options.rows, "assistant_only_loss": options.assistant_only_loss}
    return _report(path, "data", found, [res], settings)


def _sniff(p: Path, options: CheckOptions) -> str:
    files = folder_files(p, None, None) if p.is_dir() else [p]
    for f in files[:1]:
        try:
            row = next(iter(iter_rows(f, format_of(str(f)), 1)), None)
        except ReadError as exc:
            hint = f"; a training log is read by `logpost analyze {p}`" if f.suffix.lower() in LOG_SUFFIXES else ""
            raise InputError(f"{display(f)}: {exc}: `logpost check` expects an Axolotl config (.yml/.yaml) or a "
                             f"dataset of JSON rows (.jsonl/.json), .csv, .parquet or .arrow{hint}") from None
        data = row.data if row else None
        if isinstance(data, dict):
            if options.messages_field in data:
                return "messages"
            if options.prompt_field in data and options.completion_field in data:
                return "prompt-completion"
            if options.text_field in data:
                return "text"
            if any(rules._as_turns(v) for v in data.values()):
                return "messages"  # turns under another key: the check names it
    raise InputError(f"{p}: cannot tell the data format; pass --format {'|'.join(DATA_FORMATS)}")


def _report(source: str, mode: str, findings: list[Finding], results: list[DatasetResult],
            settings: dict[str, Any]) -> CheckReport:
    explained = {(f.facts.get("entry_key"), e) for f in findings for e in f.explains}
    ordered = sorted(findings, key=lambda f: (
        (f.facts.get("entry_key"), f.id) in explained, -int(f.severity), f.facts.get("entry_order", 0),
        -f.confidence, f.first_line if f.first_line is not None else 1 << 62, f.id, str(f.facts.get("key"))))
    checked = any(r.status == "checked" for r in results)
    if any(f.severity >= Severity.ERROR for f in ordered):
        verdict = Verdict.FAILED
    elif any(f.severity >= Severity.WARNING for f in ordered):
        verdict = Verdict.DEGRADED
    else:
        verdict = Verdict.HEALTHY if checked else Verdict.UNKNOWN
    return CheckReport(source=source, mode=mode, verdict=verdict, findings=tuple(ordered),
                       datasets=tuple(results), settings=settings)


# ------------------------------------------------------------------------------------ one dataset


def _entry(spec: DatasetSpec) -> str:
    return spec.entry


def _check_dataset(spec: DatasetSpec, base: Path, options: CheckOptions, cfg: AxolotlConfig | None = None,
                   options_mode: bool = False) -> tuple[DatasetResult, list[Finding]]:
    mode = "data" if options_mode else "axolotl"
    config = display(cfg.path) if cfg else ""
    common = {"entry": _entry(spec), "config": config, "entry_key": _entry(spec),
              "entry_order": (spec.section != "datasets", spec.index), "mode": mode}

    def result(status: str, files: tuple[str, ...] = (), fmt: str | None = None, **kw: Any) -> DatasetResult:
        return DatasetResult(entry=_entry(spec), path=spec.path, files=files, format=fmt, type=spec.type_name,
                             status=status, **kw)

    if options_mode:
        local: Path | None = Path(spec.path)
        remote = False
    else:
        local, remote = resolve(spec, base)
    if remote or local is None:
        hub = not spec.path.startswith(REMOTE_SCHEMES)
        fetch: Any = (f"huggingface-cli download {spec.path} --repo-type dataset --local-dir ./{Path(spec.path).name}"
                      if hub else frag("fetch_storage", path=spec.path))
        facts = {**common, "key": spec.path, "fetch": fetch, "fix_kind": "hub" if hub else "storage"}
        return result("remote"), [make_finding("CHECK_REMOTE_DATASET", facts, [], True, mode)]
    if not local.exists():
        return result("unreadable"), [_unreadable(common, spec.path, mode, frag("not_found"))]
    try:
        files = _files(spec, local, base)
    except ReadError as exc:
        return result("unreadable"), [_unreadable(common, spec.path, mode, frag("read_failed", error=exc))]
    if not files:
        return result("unreadable"), [_unreadable(common, spec.path, mode, frag("no_data_file"))]
    rows: list[Row] = []
    read_errors: list[Finding] = []
    fmt_seen = None
    for f, fmt in files:
        fmt_seen = fmt_seen or fmt
        try:
            for r in iter_rows(f, fmt, options.rows - len(rows)):
                rows.append(r)
        except ReadError as exc:
            ev = [Evidence(exc.row, str(exc))] if exc.row else []
            read_errors.append(_unreadable(common, display(f), mode, frag("read_failed", error=exc), ev))
            break
        if len(rows) >= options.rows:
            break
    shown = tuple(dict.fromkeys(display(f) for f, _ in files))
    if not rows:
        if read_errors:
            return result("unreadable", shown, fmt_seen), read_errors
        facts = {**common, "file": shown[0]}
        return result("empty", shown, fmt_seen), [make_finding("CHECK_DATASET_EMPTY", facts, [], True, mode)]
    out = rules.check_rows(spec, rows)
    findings = read_errors + _findings(spec, out, common, mode)
    used = tuple(out.files)
    return result("checked", used, fmt_seen, rows=out.rows, unsupervised=out.unsupervised,
                  eos_only=out.eos_only), findings


def _unreadable(common: dict[str, Any], key: str, mode: str, reason: dict[str, str],
                evidence: list[Evidence] | None = None) -> Finding:
    facts = {**common, "key": key, "reason": reason}
    return make_finding("CHECK_DATASET_UNREADABLE", facts, evidence or [], True, mode)


def _files(spec: DatasetSpec, local: Path, base: Path) -> list[tuple[Path, str]]:
    if local.is_file():
        return [(local, format_of(str(local), spec.ds_type))]
    if spec.data_files:
        out: list[tuple[Path, str]] = []
        for name in spec.data_files:
            for root in (local, base, Path.cwd()):
                hits = sorted(p for p in root.glob(name) if p.is_file()) if any(c in name for c in "*?[") \
                    else [root / name] if (root / name).is_file() else []
                if hits:
                    break
            if not hits:
                raise ReadError(f"data_files entry {name!r} not found in {display(local)}")
            out.extend((h, format_of(str(h), spec.ds_type)) for h in hits)
        return out
    saved = (local / "state.json").is_file() or (local / "dataset_dict.json").is_file()
    fmt = None if saved else (format_of("", spec.ds_type) if spec.ds_type else None)
    found = folder_files(local, fmt, spec.split)
    return [(f, "arrow" if saved else format_of(str(f), spec.ds_type)) for f in found]


# ------------------------------------------------------------------------------------ tallies -> findings


def _findings(spec: DatasetSpec, out: rules.Outcome, common: dict[str, Any], mode: str) -> list[Finding]:
    files = out.files
    file_label = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more)"
    base = {**common, "file": file_label, "sampled": out.rows}
    findings = []
    ids = {sig for sig, _ in out.tallies}
    for (sig, key), tally in sorted(out.tallies.items()):
        facts = {**base, "key": key, "n": tally.rows, "first_row": tally.evidence[0].line if tally.evidence else None,
                 "share": f"{100 * tally.rows / out.rows:.0f}%"}
        evidence = tally.evidence
        if len(set(tally.files)) == 1:
            facts["evidence_file"] = tally.files[0]
        elif tally.files:  # rows from several files of a folder: each row names its file
            evidence = [Evidence(e.line, f"{f}: {e.text}") for e, f in zip(tally.evidence, tally.files, strict=True)]
        facts.update(_facts(sig, key, tally, spec, out, mode))
        explains = tuple(e for e in texts()[sig].get("explains", ()) if e in ids)
        every_row = tally.rows == out.rows
        if sig == "CHECK_ROLE_UNMAPPED":  # an error when it leaves rows untrained, else a warning
            every_row = "CHECK_NO_TRAINABLE_TURN" in ids
        findings.append(make_finding(sig, facts, evidence, every_row, mode, explains))
    if spec.kind == "sharegpt":
        fix = rules.config_change({"type": "chat_template", "field_messages": spec.field_messages,
                                   "message_property_mappings": {"role": spec.role_key,
                                                                 "content": spec.content_key}})
        facts = {**base, "key": spec.type_name, "field": spec.field_messages, "role_key": spec.role_key,
                 "content_key": spec.content_key, "fix": fix}
        findings.append(make_finding("CHECK_TYPE_DEPRECATED", facts, [], True, mode))
    if spec.kind in ("rl", "unknown"):
        note = frag("rl_note", rl=spec.raw.get("rl", "")) if spec.kind == "rl" else BLANK
        facts = {**base, "key": spec.type_name or "(none)", "rl_note": note}
        findings.append(make_finding("CHECK_TYPE_UNCHECKED", facts, [], True, mode))
    return findings


def _keys_list(keys: Any) -> str:
    names = [f"`{k}`" for k in keys]
    return ", ".join(names) if names else "(none)"


def _mapping_fix(spec: DatasetSpec, role: str | None, content: str | None, mode: str,
                 field_messages: str | None = None) -> str:
    role, content = role or spec.role_key, content or spec.content_key
    if mode == "data":
        parts = []
        if field_messages and field_messages != spec.field_messages:
            parts.append(f"--messages-field {field_messages}")
        if role != spec.role_key:
            parts.append(f"--role-key {role}")
        if content != spec.content_key:
            parts.append(f"--content-key {content}")
        return " ".join(parts) or "--messages-field KEY"
    changes: dict[str, Any] = {}
    if field_messages and field_messages != spec.field_messages:
        changes["field_messages"] = field_messages
    if (role, content) != (spec.role_key, spec.content_key):
        changes["message_property_mappings"] = {"role": role, "content": content}
    return rules.config_change(changes) if changes else "field_messages: KEY"


def _facts(sig: str, key: str, tally: rules.Tally, spec: DatasetSpec, out: rules.Outcome,
           mode: str) -> dict[str, Any]:
    if sig == "CHECK_MESSAGES_FIELD_MISSING":
        cands = [k for k, _ in out.list_fields.most_common() if k != key]
        if cands:
            role, content = rules.best_turn_keys(out.turn_keys_by_field[cands[0]], spec.role_key, spec.content_key)
            fix = _mapping_fix(spec, role, content, mode, field_messages=cands[0])
            present = f"`{cands[0]}`"
            where_turns = frag("turns_under", key=present)
        else:
            fix = "--messages-field KEY" if mode == "data" else "field_messages: KEY"
            present = _keys_list(out.row_keys)
            where_turns = frag("no_list_field", keys=present)
        consequence = frag("messages_null") if mode == "axolotl" else frag("no_turns")
        return {"fix": fix, "present": present, "where_turns": where_turns, "consequence": consequence,
                "setting": f"--messages-field {key}" if mode == "data" else f"field_messages: {key}"}
    if sig == "CHECK_MESSAGES_NOT_LIST":
        shapes = tally.counters.get("shape", Counter())
        cands = [k for k, _ in out.list_fields.most_common() if k != key]
        fix = (_mapping_fix(spec, None, None, mode, field_messages=cands[0]) if cands
               else ("--messages-field KEY" if mode == "data" else "field_messages: KEY"))
        return {"shape": ", ".join(s for s, _ in shapes.most_common()) or "?", "fix": fix}
    if sig == "CHECK_TURN_KEY_MISSING":
        prop, _, name = key.partition(":")
        role, content = rules.best_turn_keys(out.turn_keys, spec.role_key, spec.content_key)
        consequence = frag("no_role") if prop == "role" else frag("no_content")
        facts = {"key": name, "prop": prop, "present": _keys_list(out.turn_keys), "consequence": consequence,
                 "severity_variant": "_" + prop}
        if (role, content) == (spec.role_key, spec.content_key):  # the mapping is right; some turns lack it
            return {**facts, "fix_kind": "rows"}
        return {**facts, "fix": _mapping_fix(spec, role, content, mode), "fix_kind": "config"}
    if sig == "CHECK_ROLE_UNMAPPED":
        roles_note = frag("roles_replace") if spec.roles_explicit and mode == "axolotl" else BLANK
        rtt = rules.flow(list(spec.roles_to_train_raw))
        meant = rules.guess_role(key)
        effect = (frag("own_role", meant=meant) if meant in ("user", "system", "tool")
                  else frag("never_trained", roles_to_train=rtt))
        return {"known": ", ".join(spec.known_roles), "effect": effect, "roles_note": roles_note,
                "fix": _roles_fix(spec, out, key, mode)}
    if sig == "CHECK_NO_TRAINABLE_TURN":
        return _no_trainable_facts(spec, tally, out, mode)
    if sig == "CHECK_FIELD_MISSING":
        return _field_missing_facts(spec, key, out, mode)
    if sig == "CHECK_SEQUENCE_TOO_LONG":
        longest = max((int(v) for v in tally.counters.get("tokens", Counter())), default=0)
        strategy = spec.excess_length_strategy if spec.excess_length_strategy in ("drop", "truncate", "raise") \
            else "drop"
        return {"sequence_len": spec.sequence_len, "longest": longest, "strategy": strategy,
                "consequence": frag("too_long_" + strategy), "fix_kind": "config" if mode == "axolotl" else "data",
                "fix": rules.config_change({"sequence_len": _round_up(longest)})}
    if sig == "CHECK_FIELD_EMPTY":
        setting = "completion-only loss" if mode == "data" else "train_on_inputs: false"
        note = (frag("output_only_eos", setting=setting)
                if key == spec.output_field and not spec.train_on_inputs else BLANK)
        return {"output_note": note}
    return {}


def _roles_fix(spec: DatasetSpec, out: rules.Outcome, value: str, mode: str) -> str:
    if mode == "data":
        renames = [(v, rules.guess_role(v)) for v in sorted(out.raw_roles) if spec.map_role(v) not in spec.known_roles]
        parts = [f"\"{v}\" → \"{t}\"" if t else f"\"{v}\" → one of {', '.join(KNOWN_ROLES)}" for v, t in renames]
        return ", ".join(parts)
    fix = rules.roles_fix(spec, out.raw_roles)
    if fix is None or not any(value in v for v in fix.values()):
        return f"roles: {{assistant|user|system|tool: [\"{value}\"]}}"
    return rules.config_change({"roles": fix})


def _no_trainable_facts(spec: DatasetSpec, tally: rules.Tally, out: rules.Outcome, mode: str) -> dict[str, Any]:
    roles = tally.counters.get("roles", Counter())
    eos_rows = sum(tally.counters.get("eos_only", Counter()).values())
    eos_note = frag("eos_rows", rows=eos_rows) if eos_rows else BLANK
    if tally.counters.get("tokenized"):
        return {"detail": frag("labels_masked"), "eos_note": eos_note, "fix_kind": "tokenized"}
    if spec.kind == "input_output":
        detail = frag("segments_untrained")
        return {"detail": detail, "eos_note": eos_note, "fix_kind": "segments"}
    shown = ", ".join(f"`{r}`" if spec.map_role(r) == r or r == rules.NO_ROLE else f"`{r}`→{spec.map_role(r)}"
                      for r in sorted(roles))
    rtt = rules.flow(list(spec.roles_to_train_raw))
    if mode == "data":
        detail = frag("roles_assistant_only", roles=shown or "-")
    else:
        detail = frag("roles_vs_train", roles=shown or "-", roles_to_train=rtt,
                      train_on_inputs=str(spec.train_on_inputs).lower())
    unmapped = sorted(r for r in roles if spec.map_role(r) not in spec.known_roles and r != rules.NO_ROLE)
    mapped = {spec.map_role(r) for r in roles}
    fix: Any
    if ("role", spec.role_key) in {tuple(k.split(":", 1)) for s, k in out.tallies if s == "CHECK_TURN_KEY_MISSING"}:
        role, content = rules.best_turn_keys(out.turn_keys, spec.role_key, spec.content_key)
        fix = _mapping_fix(spec, role, content, mode)
    elif unmapped:
        fix = _roles_fix(spec, out, unmapped[0], mode)
        if mode == "data":
            fix = frag("rename_roles", renames=fix)
    elif mode == "data":
        fix = frag("add_assistant")
    elif "assistant" in mapped and "assistant" not in spec.roles_to_train:
        fix = rules.config_change({"roles_to_train": ["assistant"]})
    elif tally.rows < out.rows:  # some rows only: the data, not the config, is at fault
        return {"detail": detail, "eos_note": eos_note, "fix_kind": "rows", "roles": shown}
    else:
        fix = rules.config_change({"train_on_inputs": True})
    return {"detail": detail, "eos_note": eos_note, "fix": fix, "roles": shown, "fix_kind": "config"}


def _field_missing_facts(spec: DatasetSpec, key: str, out: rules.Outcome, mode: str) -> dict[str, Any]:
    present = [k for k, _ in out.row_keys.most_common()]
    if mode == "data":
        flag = {spec.output_field: "--completion-field"}.get(key) if spec.kind == "prompt_completion" else None
        flag = flag or ("--prompt-field" if spec.kind == "prompt_completion" else "--text-field")
        guess = _pick(present, OUTPUT_KEYS if flag == "--completion-field" else
                      INSTRUCTION_KEYS if flag == "--prompt-field" else TEXT_KEYS)
        return {"type_label": f"--format {spec.type_name}", "present": _keys_list(present),
                "fix": f"{flag} {guess or 'KEY'}",
                "consequence": frag("nothing_to_train")}
    if out.list_fields:
        cand = out.list_fields.most_common(1)[0][0]
        role, content = rules.best_turn_keys(out.turn_keys_by_field[cand], "role", "content")
        changes: dict[str, Any] = {"type": "chat_template", "field_messages": cand}
        if (role, content) != ("role", "content") and role and content:
            changes["message_property_mappings"] = {"role": role, "content": content}
        fix = rules.config_change(changes)
    elif spec.kind == "completion":
        fix = rules.config_change({"field": _pick(present, TEXT_KEYS) or "KEY"})
    else:
        instr = _pick(present, INSTRUCTION_KEYS) or "KEY"
        outp = _pick(present, OUTPUT_KEYS) or "KEY"
        fix = rules.config_change({"type": {"field_instruction": instr, "field_output": outp}})
    label = frag("custom_type") if spec.kind == "custom" else f"`type: {spec.type_name}`"
    return {"type_label": label, "present": _keys_list(present), "fix": fix,
            "consequence": frag("key_error", key=key)}


def _round_up(tokens: int) -> int:
    size = 256
    while size < tokens:
        size *= 2
    return size


def _pick(present: list[str], wanted: tuple[str, ...]) -> str | None:
    low = {p.lower(): p for p in present}
    return next((low[w] for w in wanted if w in low), None)
