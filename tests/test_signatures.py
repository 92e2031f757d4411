"""ZERO_LOSS and NAN_LOSS on real logs: id, first step and evidence line numbers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from logpost.analyze import Options, analyze
from logpost.model import LANGS, Verdict
from logpost.signatures.registry import CATALOGUE, load_catalogue, load_signature
from tests.conftest import fixture


def ids(path: str) -> list[str]:
    return [f.id for f in analyze(fixture(path)).findings]


def finding(path: str, sig: str):
    return next(f for f in analyze(fixture(path)).findings if f.id == sig)


def test_founding_case_axolotl():
    pm = analyze(fixture("generated/axolotl_dev_model_role.log"))
    assert pm.verdict is Verdict.FAILED and pm.findings[0].id == "ZERO_LOSS"
    f = pm.findings[0]
    assert f.first_step == 1 and f.first_line == 769
    lines = [e.line for e in f.evidence]
    assert 740 in lines and lines[:4] == [740, 769, 773, 778]
    assert f.confidence >= 0.95
    assert "512" in f.summary["en"] and "roles_to_train" in f.summary["en"]
    assert "total_supervised_tokens" in f.summary["zh"]
    assert any("axolotl preprocess" in s for s in f.remediation["en"])
    assert not any("trainer.get_train_dataloader" in s for s in f.remediation["en"])  # HF-only step


@pytest.mark.parametrize("path,line", [("generated/hf_all_labels_masked_b.log", 23),
                                       ("generated/hf_all_labels_masked_b.trainer_state.json", 17)])
def test_hf_all_masked(path, line):
    f = finding(path, "ZERO_LOSS")
    assert f.first_step == 1 and f.first_line == line and f.evidence[0].step == 1
    assert any("get_train_dataloader" in s for s in f.remediation["en"])


def test_hf_all_masked_nofilter_is_zero_loss_not_blowup():
    # loss nan with grad_norm exactly 0: 0/0 over no supervised tokens
    found = ids("generated/hf_all_labels_masked_nofilter.log")
    assert found[0] == "ZERO_LOSS" and "NAN_LOSS" not in found


@pytest.mark.parametrize("path,step,line", [("generated/hf_lr_nan_1e6_nofilter.log", 4, 34),
                                            ("generated/hf_lr_nan_5e5.log", 5, 38),
                                            ("generated/hf_lr_nan_5e5.trainer_state.json", 5, 45)])
def test_nan_loss_lr_blowup(path, step, line):
    pm = analyze(fixture(path))
    assert pm.findings[0].id == "NAN_LOSS" and "ZERO_LOSS" not in [f.id for f in pm.findings]
    f = pm.findings[0]
    assert f.first_step == step and f.first_line == line


def test_hf_filter_trap_loss_zero_grad_nan():
    pm = analyze(fixture("axolotl/axo-1706-flash-attn-zero-loss-nan-gradnorm.log"))
    assert [f.id for f in pm.findings] == ["NAN_LOSS"]
    assert "logging_nan_inf_filter" in pm.findings[0].summary["en"]


@pytest.mark.parametrize("path", ["generated/hf_healthy.log", "generated/hf_healthy.trainer_state.json",
                                  "generated/axolotl_dev_healthy.log"])
def test_healthy_runs(path):
    pm = analyze(fixture(path))
    assert pm.verdict is Verdict.HEALTHY and not pm.findings


@pytest.mark.parametrize("path", ["hf/trl-3452-grpo-loss0-expected-healthy.log",
                                  "hf/trl-3857-grpo-zero-reward-std-no-gradient.log"])
def test_grpo_loss_zero_is_not_zero_loss(path):
    assert "ZERO_LOSS" not in ids(path)


def test_excerpts_zero_loss():
    assert ids("hf/fms-hf-tuning-18-completion-collator-loss0.log") == ["TOKENIZER_ERROR", "ZERO_LOSS"]
    f = finding("full/AolinGuo__graduate_agent__trainer_log.jsonl", "ZERO_LOSS")
    assert f.first_step == 20 and f.first_line == 2


def test_converged_small_loss_is_not_zero_loss(tmp_path):
    # a long run whose 4-decimal loss shrinks to 0.0 late, without grad_norm: converged, not masked
    lines = [f"{{'loss': {max(0.0, round(2.0 * 0.8 ** i, 4))}, 'learning_rate': 1e-05, 'epoch': {i / 100}}}"
             for i in range(1, 80)]
    p = tmp_path / "conv.log"
    p.write_text("\n".join(lines) + "\n")
    assert "ZERO_LOSS" not in [f.id for f in analyze(str(p)).findings]


def test_no_loss_at_all_is_unknown():
    pm = analyze(fixture("axolotl/axo-2608-rank0-logging-healthy-startup.log"))
    assert pm.verdict is Verdict.UNKNOWN


def test_select_ignore():
    path = fixture("generated/axolotl_dev_model_role.log")
    assert "ZERO_LOSS" not in [f.id for f in analyze(path, Options(ignore=("ZERO_LOSS",))).findings]
    assert [f.id for f in analyze(path, Options(select=("ZERO_LOSS",))).findings] == ["ZERO_LOSS"]


def test_catalogue_parity_and_samples():
    sigs = load_catalogue()
    assert {"ZERO_LOSS", "NAN_LOSS"} <= set(sigs)
    for path in sorted(CATALOGUE.glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        assert raw["id"] == path.stem
        for key in ("title", "summary", "why"):
            assert set(raw[key]) == set(LANGS)
        for step in raw["remediation"]:
            assert step["en"].strip() and step["zh"].strip()


def test_bad_user_rule_names_file(tmp_path):
    from logpost.model import InputError

    rule = tmp_path / "MY_RULE.toml"
    rule.write_text('id = "MY_RULE"\nseverity = "error"\n[title]\nen = "x"\n')
    with pytest.raises(InputError, match="MY_RULE.toml"):
        load_signature(Path(rule))


def test_pattern_variant_must_exist(tmp_path):
    from logpost.model import InputError

    rule = tmp_path / "MY_RULE.toml"
    texts = '[title]\nen = "x"\nzh = "x"\n[summary]\nen = "x"\nzh = "x"\n[why]\nen = "x"\nzh = "x"\n'
    rule.write_text('id = "MY_RULE"\nseverity = "error"\n' + texts +
                    '[[remediation]]\nen = "x"\nzh = "x"\n[[patterns]]\nregex = "boom"\nvariant = "nope"\nsamples = ["boom"]\n')
    with pytest.raises(InputError, match=r"MY_RULE.toml: patterns #1: no \[variants.nope\]"):
        load_signature(Path(rule))


# ------------------------------------------------------------------ the event contract, cause links, verdict
# RunLogs built directly, with the structured events the ingestion parsers emit (Event.data["tag"]).

import math  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

from logpost.analyze import order, verdict  # noqa: E402
from logpost.frame import build_frame  # noqa: E402
from logpost.model import Event, RunLog, Severity  # noqa: E402
from logpost.signatures.registry import run_signatures  # noqa: E402

CATALOGUE_SIGS = load_catalogue()


def make_run(events=(), records=(), meta=None) -> RunLog:
    recs = []
    for i, r in enumerate(records):
        rec = {"kind": "train", "line": 100 + i, "step": i + 1, "nonfinite": None, **r}
        bad = [k for k, v in r.items() if isinstance(v, float) and not math.isfinite(v)]
        rec["nonfinite"] = ",".join(bad) or None
        recs.append(rec)
    frame = build_frame(recs)
    return RunLog(source="synthetic", frame=frame, events=list(events), meta=meta or {}, frameworks=(),
                  lines=1000, step_method="logged", texts=[str(r) for r in records])


def diagnose(run: RunLog, sigs=None):
    sigs = sigs or CATALOGUE_SIGS
    found = order(run_signatures(run, sigs), {k: v.consequences for k, v in sigs.items()})
    return found, verdict(run, found)


def oom(line=50, rank=3):
    return Event("traceback", line, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.", rank=rank,
                 data={"tag": "cuda_oom", "requested_bytes": 2 << 30, "exc_type": "torch.OutOfMemoryError"})


def watchdog(line, rank):
    return Event("error", line, f"[Rank {rank}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7, "
                                f"OpType=ALLREDUCE, Timeout(ms)=600000) ran for 600123 milliseconds before timing out.",
                 rank=rank, data={"tag": "nccl_timeout", "timeout_ms": 600000, "ran_ms": 600123, "op": "ALLREDUCE", "seq": 7})


def exit_event(line, code, text=None):
    return Event("error", line, text or f"exits with return code = {code}",
                 data={"tag": "exit", "code": code, "signal": None, "launcher": "deepspeed"})


def test_cause_chain_oom_timeout_exit_termination():
    run = make_run([oom(50, 3), watchdog(60, 0), watchdog(61, 1), watchdog(62, 2), exit_event(70, 1)])
    found, v = diagnose(run)
    ids = [f.id for f in found]
    assert ids == ["CUDA_OOM", "NCCL_TIMEOUT", "EARLY_TERMINATION"] and v.value == "failed"
    assert found[0].explains == ("EARLY_TERMINATION", "NCCL_TIMEOUT") and found[1].explains == ("EARLY_TERMINATION",)
    assert "rank 3" in found[0].summary["en"] and "2.00 GiB" in found[0].summary["en"]
    assert "600000 ms" in found[1].summary["en"] and "0, 1, 2" in found[1].summary["en"]
    # the direct OOM marker outranks the inference the timeout is only a consequence of
    assert found[0].confidence > 0.9 and [e.line for e in found[2].evidence] == [70]


def test_order_follows_the_longest_chain():
    # OOM explains both the timeout and the termination, the timeout the termination: the chain reads in
    # order whatever the confidences (a shortest-path depth put the timeout and the termination level)
    from logpost.model import Finding

    def f(i, conf, line):
        return Finding(id=i, severity=Severity.ERROR, confidence=conf, title={}, summary={}, why={},
                       remediation={}, evidence=(), first_line=line)

    graph = {"CUDA_OOM": ("NCCL_TIMEOUT", "EARLY_TERMINATION"), "NCCL_TIMEOUT": ("EARLY_TERMINATION",)}
    found = order([f("EARLY_TERMINATION", 0.99, 10), f("NCCL_TIMEOUT", 0.5, 5), f("CUDA_OOM", 0.9, 20)], graph)
    assert [x.id for x in found] == ["CUDA_OOM", "NCCL_TIMEOUT", "EARLY_TERMINATION"]
    cyc = {"A": ("B",), "B": ("C",), "C": ("A",)}  # a longer cycle ends, every id kept once
    assert sorted(x.id for x in order([f("A", 0.9, 1), f("B", 0.8, 2), f("C", 0.7, 3)], cyc)) == ["A", "B", "C"]


@pytest.mark.parametrize("code,expect,absent", [
    (-9, "HOST_OOM", "NCCL_TIMEOUT"),
    (-6, "NCCL_TIMEOUT", "HOST_OOM"),
    (-11, "EARLY_TERMINATION", "HOST_OOM"),
])
def test_exit_codes(code, expect, absent):
    ev = exit_event(10, code, f"failed (exitcode: {code}) local_rank: 2 (pid: 4242) of binary: /usr/bin/python")
    found, _ = diagnose(make_run([ev]))
    ids = [f.id for f in found]
    assert ids[0] == expect and absent not in ids and "EARLY_TERMINATION" in ids
    if code == -6:  # inferred from the signal alone: ranked below a direct marker
        assert found[0].confidence < 0.5
    if code == -11:
        assert "SIGSEGV" in found[0].summary["en"] and "段错误" in found[0].summary["zh"]


def test_exit_code_from_text_without_tags():
    ev = Event("error", 18, "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -9) local_rank: 1 "
                            "(pid: 91820) of binary: python")
    found, _ = diagnose(make_run([ev]))
    assert [f.id for f in found] == ["HOST_OOM", "EARLY_TERMINATION"] and "local rank 1" in found[0].summary["en"]


def overflow(line, attempted, nxt):
    return Event("warning", line, "[deepspeed] OVERFLOW! Rank 0 Skipping step.", rank=0,
                 data={"tag": "overflow", "attempted_scale": float(attempted), "next_scale": float(nxt), "hysteresis": False})


def test_overflow_startup_burst_is_healthy():
    burst = [overflow(10 + i, 2 ** (16 - i), 2 ** (15 - i)) for i in range(4)]
    found, _ = diagnose(make_run(burst), {"FP16_OVERFLOW": CATALOGUE_SIGS["FP16_OVERFLOW"]})
    assert found == []


def test_overflow_collapse_and_minimum_scale():
    cascade = [overflow(10 + i, 2 ** (8 - i), 2 ** (7 - i)) for i in range(8)]
    found, _ = diagnose(make_run(cascade))
    assert found[0].id == "FP16_OVERFLOW" and "lowest loss scale 1" in found[0].summary["en"]
    fatal = Event("traceback", 30, "Exception: Current loss scale already at minimum - cannot decrease scale anymore. "
                                   "Exiting run.", data={"tag": "loss_scale_min"})
    found, _ = diagnose(make_run([*cascade, fatal, exit_event(40, 1)]))
    assert [f.id for f in found][:2] == ["FP16_OVERFLOW", "EARLY_TERMINATION"] and found[0].confidence >= 0.95


def test_all_steps_skipped_from_deepspeed_step_rows():
    rows = [{"kind": "optimizer", "step": s, "skipped_steps": s - 2, "learning_rate": 0.0} for s in (10, 20, 30)]
    found, _ = diagnose(make_run(records=rows), {"FP16_OVERFLOW": CATALOGUE_SIGS["FP16_OVERFLOW"]})
    assert found and "skipped 28 of 30" in found[0].summary["en"]
    healthy = [{"kind": "optimizer", "step": s, "skipped_steps": 2.0, "learning_rate": 5e-5} for s in (40, 50, 60)]
    assert diagnose(make_run(records=healthy), {"FP16_OVERFLOW": CATALOGUE_SIGS["FP16_OVERFLOW"]})[0] == []


def test_lr_reaching_zero_by_schedule_is_not_an_anomaly():
    rows = [{"loss": 2.0 - 0.01 * i, "grad_norm": 1.0 + 0.01 * i, "learning_rate": 2e-5 * (1 - i / 29)}
            for i in range(30)]
    found, v = diagnose(make_run(records=rows, meta={"completed": True}))
    assert found == [] and v.value == "healthy"


def test_grad_norm_above_max_grad_norm_is_not_explosion():
    # pre-clip grad norms of 3-6 with max_grad_norm 1.0, noisy but flat: healthy
    rows = [{"loss": 1.5 + 0.2 * ((i * 7) % 5 - 2) / 2, "grad_norm": 3.0 + (i * 5) % 4, "learning_rate": 1e-5}
            for i in range(40)]
    found, _ = diagnose(make_run(records=rows))
    assert "GRAD_EXPLOSION" not in [f.id for f in found]


def test_grad_norm_pinned_sqrt3():
    rows = [{"loss": 0.0, "grad_norm": 1.7320508075688772, "learning_rate": 1e-5} for _ in range(12)]
    found, _ = diagnose(make_run(records=rows))
    assert "GRAD_NORM_PINNED" in [f.id for f in found]
    pinned = next(f for f in found if f.id == "GRAD_NORM_PINNED")
    assert "1.732" in pinned.summary["en"] and "√3" in pinned.summary["zh"]
    clipped = [{"loss": 2.0 - 0.05 * i, "grad_norm": 1.0, "learning_rate": 1e-5} for i in range(12)]
    assert "GRAD_NORM_PINNED" not in [f.id for f in diagnose(make_run(records=clipped))[0]]


def test_verdict_degraded_on_warnings_only_and_unknown_without_loss():
    rows = [{"loss": 0.7 if i != 5 else 4.3, "learning_rate": 1e-4} for i in range(10)]
    found, v = diagnose(make_run(records=rows))
    assert [f.id for f in found] == ["LOSS_SPIKE"] and v.value == "degraded"
    assert diagnose(make_run())[1].value == "unknown"
    assert diagnose(make_run(events=[Event("info", 3, "loading model")]))[1].value == "unknown"


def test_confidence_direct_marker_above_series():
    rows = [{"loss": 0.0, "grad_norm": 0.0, "learning_rate": 1e-5 * i} for i in range(1, 6)]
    series = next(f for f in diagnose(make_run(records=rows))[0] if f.id == "ZERO_LOSS")
    meta = {"total_supervised_tokens": 0, "_lines": {"total_supervised_tokens": (40, "total_supervised_tokens: 0")}}
    direct = next(f for f in diagnose(make_run(records=rows, meta=meta))[0] if f.id == "ZERO_LOSS")
    assert direct.confidence > series.confidence


def test_user_rule_catastrophic_regex_is_bounded(tmp_path):
    rule = tmp_path / "SLOW_RULE.toml"
    rule.write_text('id = "SLOW_RULE"\nseverity = "warning"\n[title]\nen = "t"\nzh = "t"\n[summary]\nen = "s"\n'
                    'zh = "s"\n[why]\nen = "w"\nzh = "w"\n[[remediation]]\nen = "r"\nzh = "r"\n'
                    '[[patterns]]\nregex = \'^(a|aa)+$\'\nsamples = ["aaaa"]\n', encoding="utf-8")
    sigs = load_catalogue([str(tmp_path)])
    events = [Event("error", i, "a" * 40 + "!" + str(i)) for i in range(200)]
    t0 = time.monotonic()
    found, _ = diagnose(make_run(events), {"SLOW_RULE": sigs["SLOW_RULE"]})
    # one timeout, then the pattern is dropped: not 200 x the per-event timeout
    assert time.monotonic() - t0 < 5 and found == []


def test_user_rule_backtracking_on_its_own_sample_is_rejected(tmp_path):
    from logpost.model import InputError

    rule = tmp_path / "BAD_RULE.toml"
    rule.write_text('id = "BAD_RULE"\nseverity = "warning"\n[title]\nen = "t"\nzh = "t"\n[summary]\nen = "s"\n'
                    'zh = "s"\n[why]\nen = "w"\nzh = "w"\n[[remediation]]\nen = "r"\nzh = "r"\n'
                    '[[patterns]]\nregex = \'^(a|aa)+$\'\nsamples = ["' + "a" * 40 + '!"]\n', encoding="utf-8")
    with pytest.raises(InputError, match="BAD_RULE.toml.*backtracking"):
        load_signature(rule)


def test_user_rule_matches_and_orders(tmp_path):
    rule = tmp_path / "MY_DISK.toml"
    rule.write_text('id = "MY_DISK"\nseverity = "error"\nconsequences = ["EARLY_TERMINATION"]\n[title]\nen = "Disk"\n'
                    'zh = "磁盘"\n[summary]\nen = "disk at line {first_line}"\nzh = "第 {first_line} 行磁盘"\n[why]\n'
                    'en = "w"\nzh = "w"\n[[remediation]]\nen = "r"\nzh = "r"\n[[patterns]]\nregex = \'quota exceeded\'\n'
                    'samples = ["Disk quota exceeded"]\n', encoding="utf-8")
    sigs = load_catalogue([str(tmp_path)])
    run = make_run([Event("error", 5, "OSError: [Errno 122] Disk quota exceeded"), exit_event(9, 1)])
    found, _ = diagnose(run, sigs)
    assert [f.id for f in found] == ["CHECKPOINT_ERROR", "MY_DISK", "EARLY_TERMINATION"]
    assert "EARLY_TERMINATION" in next(f for f in found if f.id == "MY_DISK").explains


def _rule(folder: Path, name: str, sig_id: str) -> None:
    (folder / name).write_text(f'id = "{sig_id}"\nseverity = "warning"\n[title]\nen = "t"\nzh = "t"\n[summary]\n'
                               'en = "s"\nzh = "s"\n[why]\nen = "w"\nzh = "w"\n[[remediation]]\nen = "r"\nzh = "r"\n'
                               '[[patterns]]\nregex = "quota exceeded"\nsamples = ["Disk quota exceeded"]\n',
                               encoding="utf-8")


def test_duplicate_signature_id_is_a_load_error(tmp_path):
    from logpost.model import InputError

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _rule(one, "A.toml", "MY_DISK")
    _rule(one, "B.toml", "MY_DISK")  # two files, one id: the second would silently replace the first
    with pytest.raises(InputError, match=r"B\.toml: id MY_DISK is already defined in .*A\.toml"):
        load_catalogue([str(one)])
    (one / "B.toml").unlink()
    _rule(two, "C.toml", "MY_DISK")  # so is the same id in two user folders
    with pytest.raises(InputError, match="C.toml: id MY_DISK is already defined"):
        load_catalogue([str(one), str(two)])
    _rule(two, "C.toml", "CUDA_OOM")  # while a user file may replace a built-in id
    assert load_catalogue([str(two)])["CUDA_OOM"].path == str(two / "C.toml")


def test_second_detector_for_an_id_is_an_error():
    from logpost.signatures.base import DETECTORS, detector

    load_catalogue()
    assert "ZERO_LOSS" in DETECTORS
    with pytest.raises(RuntimeError, match="two detectors for ZERO_LOSS"):
        detector("ZERO_LOSS")(lambda run, params: [])


def test_cli_rules_bad_rule_exit_2(tmp_path):
    from click.testing import CliRunner

    from logpost.cli import main

    (tmp_path / "NOPE.toml").write_text('id = "NOPE"\nseverity = "loud"\n', encoding="utf-8")
    r = CliRunner().invoke(main, ["analyze", fixture("generated/hf_healthy.log"), "--rules", str(tmp_path)])
    assert r.exit_code == 2 and "NOPE.toml" in r.stderr and "severity" in r.stderr and "Traceback" not in r.stderr


def test_cli_signatures_and_explain_zh():
    from click.testing import CliRunner

    from logpost.cli import main

    r = CliRunner().invoke(main, ["signatures", "--lang", "zh"])
    assert r.exit_code == 0 and "FP16_OVERFLOW" in r.stdout and "显存不足" in r.stdout
    r = CliRunner().invoke(main, ["explain", "nccl_timeout", "--lang", "zh"])
    assert r.exit_code == 0 and "ddp_timeout" in r.stdout and "集合通信" in r.stdout


def test_cli_fail_on_warning():
    from click.testing import CliRunner

    from logpost.cli import main

    spike = fixture("hf/llava-918-lora-loss-spike-tqdm-lines.log")
    assert CliRunner().invoke(main, ["analyze", spike]).exit_code == 0  # a warning, below the default `error`
    assert CliRunner().invoke(main, ["analyze", spike, "--fail-on", "warning"]).exit_code == 1


def test_crash_message_the_run_survived_is_a_warning():
    rows = [{"loss": 1.5 - 0.01 * i, "grad_norm": 1.0 + 0.01 * i, "learning_rate": 1e-5} for i in range(10)]
    run = make_run([oom(50, 0)], rows, meta={"completed": True})  # OOM at line 50, training rows from line 100
    found, v = diagnose(run)
    f = next(f for f in found if f.id == "CUDA_OOM")
    assert f.severity is Severity.WARNING and "not fatal" in f.summary["en"] and v.value == "degraded"
    crashed = make_run([oom(150, 0)], rows)  # OOM after the last record, no summary: the crash
    assert next(f for f in diagnose(crashed)[0] if f.id == "CUDA_OOM").severity is Severity.ERROR


def test_static_loss_scale_is_not_fp16_overflow():
    # Megatron prints "loss scale: 1.0" on every bf16 iteration: static scaling, not a collapse
    rows = [{"loss": 2.1 - 0.01 * i, "grad_norm": 0.2, "learning_rate": 4e-5, "loss_scale": 1.0} for i in range(10)]
    assert "FP16_OVERFLOW" not in [f.id for f in diagnose(make_run(records=rows))[0]]
    rows = [{**r, "loss_scale": 2.0 ** (12 - i)} for i, r in enumerate(rows)]  # a dynamic scale falling to 8
    assert "FP16_OVERFLOW" in [f.id for f in diagnose(make_run(records=rows))[0]]


def test_megatron_skipped_iterations_and_slow_iterations():
    rows = [{"step": 100 * (i + 1), "loss": 2.0, "learning_rate": 1e-4, "skipped_iterations": 0.0 if i < 5 else 90.0,
             "iteration_time_s": 10.0 if i < 6 else 40.0} for i in range(10)]
    found = {f.id: f for f in diagnose(make_run(records=rows))[0]}
    assert "FP16_OVERFLOW" in found and "SLOW_THROUGHPUT" in found
    assert "4.0x slower" in found["SLOW_THROUGHPUT"].summary["en"]


def test_megatron_nan_iterations_are_nan_loss():
    rows = [{"step": 10 * (i + 1), "loss": 2.0, "learning_rate": 1e-4, "nan_iterations": 0.0 if i < 4 else 3.0}
            for i in range(6)]
    f = next(f for f in diagnose(make_run(records=rows))[0] if f.id == "NAN_LOSS")
    assert f.first_step == 50 and "nan iterations" in f.summary["en"]


# ------------------------------------------------------------------ detectors never raise on odd input
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NUM = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32),
                 st.sampled_from([0.0, 1.0, -1.0, 1e30, 1.7320508075688772]))
_RECORD = st.fixed_dictionaries({
    "kind": st.sampled_from(["train", "train", "eval", "summary", "optimizer"]),
    "step": st.one_of(st.none(), st.integers(0, 50)),
    "loss": _NUM, "grad_norm": _NUM, "learning_rate": _NUM, "eval_loss": _NUM, "loss_scale": _NUM,
    "skipped_steps": _NUM, "train_loss": _NUM,
})
_TAGS = st.sampled_from([None, "overflow", "loss_scale_min", "lr_before_step", "exit", "nccl_timeout", "nccl_error",
                         "cuda_oom", "killed"])
_EVENT = st.builds(
    lambda kind, line, text, tag, code, scale: Event(kind, line, text, data={"tag": tag, "code": code,
                                                                             "attempted_scale": scale}),
    st.sampled_from(["error", "warning", "traceback", "info"]), st.integers(1, 500),
    st.sampled_from(["Killed", "exits with return code = -9", "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 0",
                     "failed (exitcode: x)", "CUDA out of memory", "", "exitcode  : 1 (pid: 3)", "s/it 9999s/it"]),
    _TAGS, st.one_of(st.none(), st.integers(-20, 300), st.text(max_size=3)), _NUM)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_RECORD, max_size=25), st.lists(_EVENT, max_size=8))
def test_detectors_never_raise(records, events):
    for r in records:
        if r["kind"] == "train" and r["step"] is None:
            r["step"] = 0
    run = make_run(events, records, meta={"completed": bool(len(records) % 2)})
    found, v = diagnose(run)
    assert v.value in ("failed", "degraded", "healthy", "unknown")
    for f in found:
        # every placeholder was filled (a fact may be odd text from odd input, but no "{first_line}" is left)
        assert f.summary["en"] and f.summary["zh"] and not re.search(r"\{\w+\}", f.summary["en"] + f.summary["zh"])


def test_lr_zero_on_deepspeed_step_lines():
    rows = [{"kind": "optimizer", "step": s, "skipped_steps": 0.0, "learning_rate": 0.0} for s in (10, 20, 30, 40)]
    assert "LR_ANOMALY" in [f.id for f in diagnose(make_run(records=rows))[0]]


def test_zero_loss_predicted_from_axolotl_trace_only_when_no_turn_has_boundaries(tmp_path):
    pm = analyze(fixture("axolotl/axo-2089-chat-template-turn-indices-minus1-all-masked.log"))
    assert [f.id for f in pm.findings] == ["TOKENIZER_ERROR", "ZERO_LOSS"]
    f = pm.findings[1]
    assert f.first_line == 3 and f.confidence < 0.7 and "predicted" in f.summary["en"]
    # one turn found its boundaries: part of the data is trained, so nothing is predicted
    text = open(fixture("axolotl/axo-2089-chat-template-turn-indices-minus1-all-masked.log")).read()
    p = tmp_path / "partial.log"
    p.write_text(text + "[tokenize_prompt:296] Turn indices: start=12, end=30\n")
    assert "ZERO_LOSS" not in [f.id for f in analyze(str(p)).findings]


def test_direct_marker_alone_reads_without_placeholders(tmp_path):
    p = tmp_path / "direct.log"
    p.write_text("[2025-01-01 10:00:00,001] [DEBUG] [axolotl.utils.trainer.calculate_total_num_steps:404] "
                 "[PID:1] [RANK:0] total_supervised_tokens: 0\n")
    f = analyze(str(p)).findings[0]
    assert f.id == "ZERO_LOSS" and f.summary["en"].startswith("Axolotl counted") and "?" not in f.summary["en"]
