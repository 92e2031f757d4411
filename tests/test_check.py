"""`logpost check`: real Axolotl configs and data (fixtures/repro/axolotl) and one case per dataset type
(fixtures/check, written with HF `datasets`), the CLI, and `analyze --config`."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tomllib

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from logpost.analyze import Options, analyze
from logpost.check import CheckOptions, check, check_config, check_data
from logpost.check.axolotl import dataset_spec
from logpost.check.core import TEXTS
from logpost.check.readers import Row, iter_rows
from logpost.check.rules import check_rows
from logpost.cli import main
from logpost.model import LANGS, Severity, Verdict
from tests.conftest import ROOT, fixture

REPRO = ROOT / "fixtures" / "repro" / "axolotl"
CASES = ROOT / "fixtures" / "check"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def by_id(report, sig):
    return [f for f in report.findings if f.id == sig]


# ------------------------------------------------------------------------------------ shared repro configs


def test_dev_model_role_names_the_unmapped_role():
    r = check_config(str(REPRO / "dev_model_role.yml"))
    assert r.verdict is Verdict.FAILED
    role = by_id(r, "CHECK_ROLE_UNMAPPED")
    assert len(role) == 1 and role[0].facts["key"] == "model"
    f = role[0]
    assert f.evidence[0].line == 1 and f.evidence[0].text == 'messages[1].role = "model"'
    assert f.explains == ("CHECK_NO_TRAINABLE_TURN",) and r.findings[0] is f  # the root leads
    assert any('roles: {assistant: ["model"]}' in s for s in f.remediation["en"])
    assert any('roles: {assistant: ["model"]}' in s for s in f.remediation["zh"])
    none = by_id(r, "CHECK_NO_TRAINABLE_TURN")[0]
    assert none.severity is Severity.CRITICAL and none.facts["n"] == none.facts["sampled"] == 100
    assert r.datasets[0].rows == 100 and r.datasets[0].unsupervised == 100
    assert "roles_to_train" in none.summary["en"] and "-100" in none.summary["zh"]


def test_wrong_field_names_the_absent_key_and_the_present_one():
    r = check_config(str(REPRO / "wrong_field.yml"))
    ids = [f.id for f in r.findings]
    assert ids == ["CHECK_MESSAGES_FIELD_MISSING"]
    f = r.findings[0]
    assert f.facts["key"] == "conversations" and f.facts["present"] == "`messages`"
    assert "conversations" in f.summary["en"] and "`messages`" in f.summary["zh"]
    assert f.evidence[0].text.startswith('no key "conversations"') and "messages" in f.evidence[0].text
    # the whole fix: the field and the turn keys (the config's from/value do not exist either)
    assert f.facts["fix"] == "field_messages: messages; message_property_mappings: {role: role, content: content}"


@pytest.mark.parametrize("name", ["healthy.yml", "dev_healthy.yml"])
def test_healthy_configs_pass(name):
    r = check_config(str(REPRO / name))
    assert r.findings == () and r.verdict is Verdict.HEALTHY
    assert r.datasets[0].status == "checked" and r.datasets[0].rows == 100 and r.datasets[0].unsupervised == 0


# ------------------------------------------------------------------------------------ one case per dataset type

EXPECTED = {
    # config: (verdict, {id: severity}, format)
    "sharegpt_legacy.yml": ("failed", {"CHECK_TYPE_DEPRECATED": "error"}, "json"),
    "fromvalue_parquet.yml": ("healthy", {}, "parquet"),
    "roles_replace_defaults.yml": ("degraded", {"CHECK_ROLE_UNMAPPED": "warning"}, "parquet"),
    "roles_unmapped_bot.yml": ("failed", {"CHECK_ROLE_UNMAPPED": "error", "CHECK_NO_TRAINABLE_TURN": "critical"},
                               "parquet"),
    "legacy_field_role.yml": ("failed", {"CHECK_TURN_KEY_MISSING": "critical", "CHECK_NO_TRAINABLE_TURN": "critical"},
                              "json"),
    "roles_to_train_wrong.yml": ("failed", {"CHECK_NO_TRAINABLE_TURN": "critical"}, "json"),
    "some_prompt_only.yml": ("degraded", {"CHECK_NO_TRAINABLE_TURN": "warning"}, "json"),
    "alpaca_csv.yml": ("degraded", {"CHECK_FIELD_EMPTY": "warning"}, "csv"),
    "alpaca_wrong_keys.yml": ("failed", {"CHECK_FIELD_MISSING": "critical"}, "json"),
    "custom_type.yml": ("healthy", {}, "json"),
    "completion_saved.yml": ("healthy", {}, "arrow"),
    "input_output.yml": ("degraded", {"CHECK_NO_TRAINABLE_TURN": "warning"}, "json"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_types(name):
    verdict, sev, fmt = EXPECTED[name]
    r = check_config(str(CASES / name))
    assert r.verdict.value == verdict
    assert {f.id: f.severity.label for f in r.findings} == sev
    assert r.datasets[0].format == fmt and r.datasets[0].status == "checked" and r.datasets[0].rows > 0
    for f in r.findings:
        assert all(f.summary[lg] and f.remediation[lg] for lg in LANGS)
        assert "?" not in re.sub(r"[?？]\s*$", "", f.summary["en"].replace("?\"", ""))  # every placeholder filled


def test_fixes_are_config_changes():
    fix = {name: {f.id: f.facts.get("fix") for f in check_config(str(CASES / name)).findings}
           for name in ("roles_replace_defaults.yml", "roles_unmapped_bot.yml", "legacy_field_role.yml",
                        "roles_to_train_wrong.yml", "alpaca_wrong_keys.yml", "sharegpt_legacy.yml")}
    # `roles` replaces Axolotl's default map, so the suggestion keeps human -> user too
    assert fix["roles_replace_defaults.yml"]["CHECK_ROLE_UNMAPPED"] == 'roles: {user: ["human"], assistant: ["bot"]}'
    assert fix["roles_unmapped_bot.yml"]["CHECK_NO_TRAINABLE_TURN"] == 'roles: {user: ["human"], assistant: ["bot"]}'
    assert fix["legacy_field_role.yml"]["CHECK_TURN_KEY_MISSING"] == "message_property_mappings: {role: role, content: content}"
    assert fix["roles_to_train_wrong.yml"]["CHECK_NO_TRAINABLE_TURN"] == 'roles_to_train: ["assistant"]'
    assert fix["alpaca_wrong_keys.yml"]["CHECK_FIELD_MISSING"] == "type: {field_instruction: prompt, field_output: completion}"
    assert fix["sharegpt_legacy.yml"]["CHECK_TYPE_DEPRECATED"] == (
        "type: chat_template; field_messages: conversations; message_property_mappings: {role: from, content: value}")


def test_partial_problems_report_share_and_rows():
    r = check_config(str(CASES / "some_prompt_only.yml"))
    f = by_id(r, "CHECK_NO_TRAINABLE_TURN")[0]
    # make.py drops the assistant turn in rows 0, 4, 8 ... (lines 1, 5, 9 ...)
    assert f.facts["n"] == 6 and f.facts["share"] == "25%" and [e.line for e in f.evidence] == [1, 5, 9]
    assert r.datasets[0].unsupervised == 6 and r.datasets[1].entry == "test_datasets[0]"
    assert r.datasets[1].format == "csv" and r.datasets[1].unsupervised == 0  # JSON-string messages decoded
    alpaca = by_id(check_config(str(CASES / "alpaca_csv.yml")), "CHECK_FIELD_EMPTY")[0]
    assert [e.line for e in alpaca.evidence] == [7, 13, 19]  # CSV physical lines (header is line 1)


def test_folder_evidence_names_the_file():
    r = check_config(str(CASES / "legacy_field_role.yml"))
    assert r.datasets[0].rows == 48 and len(r.datasets[0].files) == 2
    f = by_id(r, "CHECK_TURN_KEY_MISSING")[0]
    assert f.facts["evidence_file"].endswith("part-00000.jsonl") and f.facts["key"] == "speaker"


# ------------------------------------------------------------------------------------ remote, missing, network


def test_remote_only_is_not_fetched_and_exits_2(monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("check must not open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    r = run("check", CASES / "remote_only.yml")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "nothing could be checked" in r.stderr
    assert r.stdout.count("CHECK_REMOTE_DATASET") == 2 and "tatsu-lab/alpaca" in r.stdout
    assert "huggingface-cli download tatsu-lab/alpaca" in r.stdout and "aws s3 cp" in r.stdout


def test_mixed_remote_missing_and_local():
    r = check_config(str(CASES / "mixed_remote_missing.yml"))
    assert [d.status for d in r.datasets] == ["remote", "unreadable", "checked"]
    assert {f.id for f in r.findings} == {"CHECK_REMOTE_DATASET", "CHECK_DATASET_UNREADABLE"}
    assert run("check", CASES / "mixed_remote_missing.yml").exit_code == 1


def test_relative_paths_config_folder_then_cwd(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    shutil.copy(REPRO / "data" / "chat_gemma_modelrole.jsonl", tmp_path / "beside.jsonl")
    cfg = tmp_path / "cfg" / "a.yml"
    cfg.write_text("datasets:\n  - path: ../beside.jsonl\n    type: chat_template\n"
                   "  - path: fixtures/repro/axolotl/data/chat_messages.jsonl\n    type: chat_template\n")
    monkeypatch.chdir(ROOT)
    r = check_config(str(cfg))
    assert [d.status for d in r.datasets] == ["checked", "checked"]
    assert by_id(r, "CHECK_ROLE_UNMAPPED")[0].facts["entry"] == "datasets[0]"


@pytest.mark.parametrize("text,needle", [("datasets: [\n", "not valid YAML at line"), ("- 1\n", "YAML mapping"),
                                         ("base_model: x\n", "no `datasets`"),
                                         ("datasets:\n  - type: alpaca\n", "needs a `path`")])
def test_bad_configs_are_input_errors(tmp_path, text, needle):
    cfg = tmp_path / "bad.yml"
    cfg.write_text(text)
    r = run("check", cfg)
    assert r.exit_code == 2 and needle in r.stderr and r.stdout == "" and "Traceback" not in r.stderr


def test_yaml_is_safe_loaded(tmp_path):
    cfg = tmp_path / "evil.yml"
    cfg.write_text("datasets: !!python/object/apply:os.system ['echo pwned']\n")
    r = run("check", cfg)
    assert r.exit_code == 2 and "not valid YAML" in r.stderr


# ------------------------------------------------------------------------------------ streaming readers


def test_jsonl_sampling_stops_after_n_rows(tmp_path):
    src = (REPRO / "data" / "chat_messages.jsonl").read_text().splitlines()
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(src[:150]) + "\n{this is not json\n")
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"datasets:\n  - path: {path.name}\n    type: chat_template\n")
    assert check_config(str(cfg)).findings == ()  # row 151 is never read
    r = check_config(str(cfg), CheckOptions(rows=200))
    bad = by_id(r, "CHECK_DATASET_UNREADABLE")[0]
    assert bad.evidence[0].line == 151 and r.datasets[0].rows == 150


def test_json_array_is_streamed(tmp_path):
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(300)]
    text = json.dumps(rows, indent=2)
    path = tmp_path / "arr.json"
    path.write_text(text[: len(text) // 2])  # truncated: only the first half is valid
    got = list(iter_rows(path, "json", 100))
    assert len(got) == 100 and got[0].data == rows[0] and got[99].data == rows[99]
    assert got[1].row == 6  # the line where the second element starts


def test_parquet_and_arrow_file_and_stream(tmp_path):
    table = pa.table({"text": [f"row {i}" for i in range(1000)]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=100)
    with ipc.new_file(str(tmp_path / "f.arrow"), table.schema) as w:
        for b in table.to_batches(max_chunksize=64):
            w.write_batch(b)
    with ipc.new_stream(str(tmp_path / "s.arrow"), table.schema) as w:
        w.write_table(table)
    for name, fmt in (("t.parquet", "parquet"), ("f.arrow", "arrow"), ("s.arrow", "arrow")):
        got = list(iter_rows(tmp_path / name, fmt, 7))
        assert [r.row for r in got] == list(range(1, 8)) and got[6].data == {"text": "row 6"}


def test_empty_and_corrupt_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    cfg = tmp_path / "c.yml"
    cfg.write_text("datasets:\n  - path: empty.jsonl\n    type: chat_template\n"
                   "  - path: bad.parquet\n    type: chat_template\n")
    r = check_config(str(cfg))
    assert [d.status for d in r.datasets] == ["empty", "unreadable"]
    assert {f.id for f in r.findings} == {"CHECK_DATASET_EMPTY", "CHECK_DATASET_UNREADABLE"}


# ------------------------------------------------------------------------------------ plain HF / TRL data


def test_plain_messages_data():
    sharegpt = str(CASES / "data" / "sharegpt.jsonl")
    r = check_data(sharegpt)  # sniffed as messages: the turns are under `conversations`
    f = r.findings[0]
    assert f.id == "CHECK_MESSAGES_FIELD_MISSING"
    assert f.facts["fix"] == "--messages-field conversations --role-key from --content-key value"
    opts = CheckOptions(data_format="messages", messages_field="conversations", role_key="from", content_key="value")
    r = check_data(sharegpt, opts)
    assert r.verdict is Verdict.DEGRADED and {f.id for f in r.findings} == {"CHECK_ROLE_UNMAPPED"}
    assert r.datasets[0].unsupervised == 0  # TRL trains every token by default
    r = check_data(sharegpt, CheckOptions(**{**opts.__dict__, "assistant_only_loss": True}))
    assert by_id(r, "CHECK_NO_TRAINABLE_TURN")[0].severity is Severity.CRITICAL
    assert '"gpt" → "assistant"' in by_id(r, "CHECK_ROLE_UNMAPPED")[0].remediation["en"][0]


def test_plain_prompt_completion_cli():
    r = run("check", CASES / "data" / "trl_prompt_completion.jsonl", "--layout", "prompt-completion", "-f", "json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["verdict"] == "degraded"
    f = doc["findings"][0]
    assert f["id"] == "CHECK_FIELD_EMPTY" and [e["line"] for e in f["evidence"]] == [4, 18]
    assert doc["datasets"][0]["rows_eos_only"] == 2
    assert run("check", CASES / "data" / "qa.jsonl").exit_code == 2  # no known layout: say so


# ------------------------------------------------------------------------------------ CLI and JSON


def test_cli_json_has_analyze_finding_shape():
    r = run("check", REPRO / "dev_model_role.yml", "-f", "json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and r.stderr == ""
    analyze_doc = json.loads(run("analyze", fixture("generated/axolotl_dev_model_role.log"), "-f", "json").stdout)
    assert set(analyze_doc["findings"][0]) <= set(doc["findings"][0])
    assert doc["verdict"] == "failed" and doc["datasets"][0]["unsupervised_share"] == 1.0
    assert doc["findings"][0]["file"].endswith("chat_gemma_modelrole.jsonl")
    # `--format json` selects the output too (as in analyze)
    assert json.loads(run("check", REPRO / "dev_model_role.yml", "--format", "json").stdout) == doc


def test_cli_terminal_exit_codes_and_languages(tmp_path):
    r = run("check", REPRO / "healthy.yml")
    assert r.exit_code == 0 and "HEALTHY" in r.stdout
    r = run("check", REPRO / "wrong_field.yml", "--lang", "zh")
    assert r.exit_code == 1 and "指定的消息字段在数据中不存在" in r.stdout and "field_messages: messages" in r.stdout
    assert run("check", CASES / "alpaca_csv.yml").exit_code == 0  # warnings only, --fail-on error
    assert run("check", CASES / "alpaca_csv.yml", "--fail-on", "warning").exit_code == 1
    out = tmp_path / "c.json"
    assert run("check", REPRO / "dev_model_role.yml", "-f", "json", "-o", out).exit_code == 1
    assert json.loads(out.read_text())["findings"][0]["id"] == "CHECK_ROLE_UNMAPPED"


def test_inputs_are_not_modified():
    data = REPRO / "data" / "chat_gemma_modelrole.jsonl"
    before = [(p, os.stat(p).st_mtime_ns, p.read_bytes()) for p in (data, REPRO / "dev_model_role.yml")]
    check(str(REPRO / "dev_model_role.yml"))
    assert [(p, os.stat(p).st_mtime_ns, p.read_bytes()) for p, _, _ in before] == before


# ------------------------------------------------------------------------------------ analyze --config


def test_analyze_config_confirms_zero_loss_cause():
    log = fixture("generated/axolotl_dev_model_role.log")
    plain = next(f for f in analyze(log).findings if f.id == "ZERO_LOSS")
    pm = analyze(log, Options(config=str(REPRO / "dev_model_role.yml")))
    f = next(f for f in pm.findings if f.id == "ZERO_LOSS")
    assert f.confidence > plain.confidence and f.confidence >= 0.99
    assert f.facts["confirmed_cause"] == "CHECK_ROLE_UNMAPPED"
    assert "Role `model`" in f.summary["en"] and "角色 `model`" in f.summary["zh"]
    assert f.summary["en"].startswith(plain.summary["en"])
    for lg in LANGS:
        assert 'roles: {assistant: ["model"]}' in f.remediation[lg][0]
        assert f.remediation[lg][1:] == plain.remediation[lg]
    assert f.evidence[: len(plain.evidence)] == plain.evidence
    assert f.evidence[-1].line is None and 'messages[1].role = "model"' in f.evidence[-1].text


def test_analyze_config_cli_and_clean_config():
    log = fixture("generated/axolotl_dev_model_role.log")
    r = run("analyze", log, "--config", REPRO / "dev_model_role.yml", "-f", "json")
    z = json.loads(r.stdout)["findings"][0]
    assert r.exit_code == 1 and z["id"] == "ZERO_LOSS" and "model" in z["remediation"]["zh"][0]
    plain = next(f for f in analyze(log).findings if f.id == "ZERO_LOSS")
    clean = next(f for f in analyze(log, Options(config=str(REPRO / "healthy.yml"))).findings if f.id == "ZERO_LOSS")
    assert clean.confidence == plain.confidence and "chat template" in clean.summary["en"]
    assert "chat template" in clean.summary["zh"] and clean.remediation == plain.remediation
    healthy = fixture("generated/hf_healthy.log")
    assert analyze(healthy, Options(config=str(REPRO / "dev_model_role.yml"))).findings == analyze(healthy).findings
    r = run("analyze", log, "--config", "/no/such.yml")
    assert r.exit_code == 2 and "no such config" in r.stderr


# ------------------------------------------------------------------------------------ texts and robustness


def test_texts_have_both_languages_and_the_same_placeholders():
    doc = tomllib.loads(TEXTS.read_text(encoding="utf-8"))
    sigs = {k: v for k, v in doc.items() if k.startswith("CHECK_")}
    assert len(sigs) >= 12
    for sig, entry in sigs.items():
        Severity.parse(entry["severity"]), Severity.parse(entry["severity_all"])
        pairs = [entry["title"], entry["summary"], entry["why"], *entry["remediation"]]
        for p in pairs:
            assert p["en"].strip() and p["zh"].strip(), sig
            ph = {lg: set(re.findall(r"(?<!\{)\{(\w+)\}", p[lg])) for lg in LANGS}
            assert ph["en"] == ph["zh"], (sig, ph)
            assert re.search(r"[\u4e00-\u9fff]", p["zh"]) or re.fullmatch(r"\{\w+\}", p["zh"]), sig
    for name, p in doc["fragments"].items():
        ph = {lg: set(re.findall(r"(?<!\{)\{(\w+)\}", p[lg])) for lg in LANGS}
        assert ph["en"] == ph["zh"], (name, ph)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                       max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(JSONISH, min_size=1, max_size=6),
       typ=st.sampled_from(["chat_template", "sharegpt", "alpaca", "completion", "input_output", "oasst", "weird"]))
def test_check_rows_never_raises_on_junk(rows, typ):
    spec = dataset_spec("datasets", 0, {"path": "x.jsonl", "type": typ}, False, None, None)
    out = check_rows(spec, [Row("x.jsonl", i + 1, r) for i, r in enumerate(rows)])
    assert out.rows == len(rows) and 0 <= out.unsupervised + out.eos_only <= len(rows)


# ------------------------------------------------------------------------------------ more layouts


def test_pretokenized_rows_with_all_labels_masked(tmp_path):
    rows = [{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, -100, -100]}] * 3
    rows.append({"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "tok.parquet")
    cfg = tmp_path / "c.yml"
    cfg.write_text("datasets:\n  - path: tok.parquet\n    type: chat_template\n")
    r = check_config(str(cfg))
    f = by_id(r, "CHECK_NO_TRAINABLE_TURN")[0]
    assert f.facts["n"] == 3 and [e.line for e in f.evidence] == [1, 2, 3] and "-100" in f.evidence[0].text
    assert "pre-tokenized" in f.summary["en"] and "已分词" in f.summary["zh"]
    assert by_id(r, "CHECK_MESSAGES_FIELD_MISSING") == []


def test_hub_snapshot_folder_reads_the_train_split(tmp_path):
    data = tmp_path / "snap" / "data"
    data.mkdir(parents=True)
    good = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 5
    bad = [{"messages": [{"role": "user", "content": "q"}, {"role": "model", "content": "a"}]}] * 5
    pq.write_table(pa.Table.from_pylist(bad), data / "test-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(good), data / "train-00000-of-00001.parquet")
    (tmp_path / "snap" / "README.md").write_text("# card\n")
    cfg = tmp_path / "c.yml"
    cfg.write_text("datasets:\n  - path: snap\n    type: chat_template\n")
    r = check_config(str(cfg))
    assert r.findings == () and r.datasets[0].files[0].endswith("train-00000-of-00001.parquet")
    cfg.write_text("datasets:\n  - path: snap\n    type: chat_template\n    split: test\n")
    assert by_id(check_config(str(cfg)), "CHECK_ROLE_UNMAPPED")[0].facts["key"] == "model"


def test_sequence_len_estimate_is_conservative(tmp_path):
    long_q = "please add these numbers " * 80  # 2000 characters: at least ~333 tokens
    rows = [{"messages": [{"role": "user", "content": long_q}, {"role": "assistant", "content": "ok"}]},
            {"messages": [{"role": "user", "content": "what is 2 plus 2?"}, {"role": "assistant", "content": "4"}]}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = tmp_path / "c.yml"
    cfg.write_text("sequence_len: 256\nexcess_length_strategy: truncate\n"
                   "datasets:\n  - path: d.jsonl\n    type: chat_template\n")
    f = by_id(check_config(str(cfg)), "CHECK_SEQUENCE_TOO_LONG")[0]
    assert f.facts["n"] == 1 and f.first_line == 1 and f.severity is Severity.WARNING
    assert "truncate" in f.summary["en"] and f.facts["fix"] == "sequence_len: 512"
    cfg.write_text("sequence_len: 2048\ndatasets:\n  - path: d.jsonl\n    type: chat_template\n")
    assert check_config(str(cfg)).findings == ()
    # the shipped repro configs use sequence_len 64 with short rows: no length finding
    assert not by_id(check_config(str(REPRO / "healthy.yml")), "CHECK_SEQUENCE_TOO_LONG")


def test_csv_first_row_glob_data_files_null_keys_and_mistyped_paths(tmp_path):
    (tmp_path / "data").mkdir()
    turns = [{"role": "USER", "content": "q"}, {"role": "assistant", "content": None}]
    (tmp_path / "data" / "a.csv").write_text('messages\n"' + json.dumps(turns).replace('"', '""') + '"\n')
    for k in range(2):
        shutil.copy(REPRO / "data" / "chat_messages.jsonl", tmp_path / "data" / f"part-{k}.jsonl")
    cfg = tmp_path / "c.yml"
    cfg.write_text("datasets:\n  - path: data/a.csv\n    type: chat_template\n"
                   "  - path: data\n    data_files: ['part-*.jsonl']\n    type: chat_template\n"
                   "  - path: data/trian\n    type: chat_template\n")
    r = check_config(str(cfg), CheckOptions(rows=600))
    role = by_id(r, "CHECK_ROLE_UNMAPPED")[0]
    assert role.first_line == 2  # the CSV header is line 1
    content = by_id(r, "CHECK_TURN_KEY_MISSING")[0]
    assert content.evidence[0].text == "messages[1].content = null" and content.facts["fix_kind"] == "rows"
    assert r.datasets[1].rows == 600 and len(r.datasets[1].files) == 2
    assert r.datasets[2].status == "unreadable"  # `data` exists here: a typo, not a Hub repo


@pytest.mark.parametrize("config,needle_en,needle_zh", [
    ("some_prompt_only.yml", "only 6 of 24 sampled rows", "只有 6 行"),
    ("roles_replace_defaults.yml", "only 0 of 24 sampled rows", "只有 0 行"),
    ("remote_only.yml", "none of its datasets could be checked", "远程，未检查"),
])
def test_analyze_config_that_does_not_confirm(config, needle_en, needle_zh):
    log = fixture("generated/axolotl_dev_model_role.log")
    plain = next(f for f in analyze(log).findings if f.id == "ZERO_LOSS")
    f = next(f for f in analyze(log, Options(config=str(CASES / config))).findings if f.id == "ZERO_LOSS")
    assert f.confidence == plain.confidence and f.remediation == plain.remediation
    assert needle_en in f.summary["en"] and needle_zh in f.summary["zh"] and "confirmed_cause" not in f.facts


def test_analyze_config_confirms_other_mappings():
    log = fixture("generated/axolotl_dev_model_role.log")
    f = next(f for f in analyze(log, Options(config=str(CASES / "roles_to_train_wrong.yml"))).findings
             if f.id == "ZERO_LOSS")
    assert f.facts["confirmed_cause"] == "CHECK_NO_TRAINABLE_TURN" and f.confidence == 0.99
    assert 'roles_to_train: ["assistant"]' in f.remediation["zh"][0]


@settings(max_examples=120, deadline=None)
@given(data=st.binary(max_size=400), fmt=st.sampled_from(["json", "csv", "text", "parquet", "arrow"]))
def test_readers_raise_only_read_errors_on_junk(tmp_path_factory, data, fmt):
    from logpost.check.readers import ReadError

    path = tmp_path_factory.mktemp("junk") / f"x.{fmt}"
    path.write_bytes(data)
    try:
        rows = list(iter_rows(path, fmt, 5))
    except ReadError:
        return
    assert len(rows) <= 5 and all(r.row >= 1 for r in rows)
