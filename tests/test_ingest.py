"""Ingestion per format, on real lines: the corpus files, and lines quoted in shared/formats/deepspeed.md
(copied there from real logs and issue threads, or built from the format strings in the source)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from logpost.model import InputError
from logpost.parsers import parse
from logpost.parsers.events import oom_sizes
from logpost.parsers.normalise import lift_rank
from tests.conftest import fixture


def run_of(tmp_path, text: str, name: str = "x.log"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return parse(str(p))


def tagged(run, tag: str):
    return [e for e in run.events if e.data.get("tag") == tag]


# ------------------------------------------------------------------------------------ DeepSpeed


def test_deepspeed_step_lines_are_optimizer_rows_with_timer():
    run = parse(fixture("deepspeed/healthy-steps-samplespersec-notebook-ds-1825.log"))
    opt = run.frame[run.frame.kind == "optimizer"]
    assert list(opt.step) == [40, 50, 60] and set(opt.step_source) == {"logged"}
    assert list(opt.skipped_steps) == [2, 2, 2] and opt.learning_rate.iloc[0] == pytest.approx(5e-5)
    assert list(opt["rank"]) == [0, 0, 0] and list(opt.line) == [1, 13, 25]
    assert opt.samples_per_second.iloc[0] == pytest.approx(83.486, rel=1e-4)
    assert run.train_rows().empty  # the loss detectors read kind == "train" only
    assert run.framework == "deepspeed"


def test_overflow_variants_and_loss_scale_column(tmp_path):
    lines = [
        # ZeRO, current (corpus fp16-overflow-hysteresis-startup-ds-931)
        "[2023-04-28 06:51:29,903] [INFO] [loss_scaler.py:188:update_scale] [deepspeed] OVERFLOW! Rank 0 Skipping "
        "step. Attempted loss scale: 65536, but hysteresis is 2. Reducing hysteresis to 1",
        "[2023-04-28 06:51:30,648] [INFO] [loss_scaler.py:181:update_scale] [deepspeed] OVERFLOW! Rank 0 Skipping "
        "step. Attempted loss scale: 65536, reducing to 32768",
        # older ZeRO, observed (formats/deepspeed.md section 3)
        "[2021-03-01 10:00:00,000] [INFO] [stage2.py:1357:step] [deepscale] OVERFLOW! Rank 0 Skipping step. "
        "Attempted loss scale: 32768.0, reducing to 16384.0",
        # legacy unfused fp16 optimizer, from its format string (unfused_optimizer.py:155)
        "[2022-01-01 00:00:00,000] [INFO] [unfused_optimizer.py:155:step] [deepspeed] fp16 dynamic loss scale "
        "overflow! Skipping step. Attempted loss scale: 16384.0, reducing to 8192.0",
        "[2023-04-21 19:36:50,423] [INFO] [logging.py:96:log_dist] [Rank 0] step=13120, skipped=223, "
        "lr=[1.96e-05], mom=[(0.9, 0.95)]",
    ]
    run = run_of(tmp_path, "\n".join(lines) + "\n")
    ov = tagged(run, "overflow")
    assert [(e.data["attempted_scale"], e.data["next_scale"], e.data["hysteresis"]) for e in ov] == [
        (65536.0, 65536.0, True), (65536.0, 32768.0, False), (32768.0, 16384.0, False), (16384.0, 8192.0, False)]
    assert all(e.kind == "warning" for e in ov) and ov[0].rank == 0
    opt = run.frame[run.frame.kind == "optimizer"].iloc[0]
    assert opt.step == 13120 and opt.skipped_steps == 223 and opt.loss_scale == 8192.0
    assert opt.learning_rate == pytest.approx(1.96e-5)


def test_overflow_glued_to_tqdm_and_folding():
    run = parse(fixture("deepspeed/fp16-loss-scale-zero-then-exit-chinese-llama2-97.log"))
    ov = tagged(run, "overflow")
    assert len(ov) == 1 and ov[0].count == 2 and ov[0].last_line == 2  # identical scales fold
    assert ov[0].text.startswith("[2023-08-07")  # the tqdm bar glued before it is cut off
    run = parse(fixture("deepspeed/fp16-overflow-to-1-nan-loss-accelerate-faithdiff-34.log"))
    assert [e.data["next_scale"] for e in tagged(run, "overflow")] == [2.0, 1.0]  # different scales stay apart


def test_loss_scale_minimum_traceback(tmp_path):
    text = ("Traceback (most recent call last):\n"
            '  File "train.py", line 10, in <module>\n    engine.step()\n'
            '  File "/opt/deepspeed/runtime/fp16/loss_scaler.py", line 270, in update_scale\n'
            '    raise Exception(\n'
            "Exception: Current loss scale already at minimum - cannot decrease scale anymore. Exiting run.\n")
    run = run_of(tmp_path, text)
    (ev,) = tagged(run, "loss_scale_min")
    assert ev.kind == "traceback" and ev.data["exc_type"] == "Exception" and ev.line == 6
    assert ev.data["start_line"] == 1 and len(ev.data["frames"]) == 2
    bare = run_of(tmp_path, "Exception: Current loss scale already at minimum - cannot decrease scale anymore. "
                            "Exiting run.\n", "bare.log")
    assert [e.kind for e in tagged(bare, "loss_scale_min")] == ["error"]


def test_lr_before_step_bare_and_prefixed():
    bare = parse(fixture("hf/minicpmv-346-lora-lr0-gradnorm0.log"))
    (ev,) = tagged(bare, "lr_before_step")
    assert ev.kind == "warning" and ev.count == 12
    pre = parse(fixture("hf/onnxruntime-pr17685-ds-stage3-loss0-lr0.log"))
    (ev,) = tagged(pre, "lr_before_step")
    assert ev.count == 2 and len([e for e in pre.events if e.kind == "warning"]) == 1  # not also a generic one


def test_deepspeed_launcher_kill_and_exit(tmp_path):
    # launch.py format strings (formats/deepspeed.md section 5): Killing subprocess, exits with return code
    text = ("[2023-06-19 09:44:45,377] [INFO] [launch.py:315:sigkill_handler] Killing subprocess 2734\n"
            "[2023-06-19 09:44:45,377] [INFO] [launch.py:315:sigkill_handler] Killing subprocess 2735\n"
            "[2023-06-19 09:44:46,378] [ERROR] [launch.py:321:sigkill_handler] ['/usr/bin/python3', '-u', "
            "'train.py', '--local_rank=1', '--deepspeed', 'ds_config.json'] exits with return code = -9\n"
            "Killing subprocess 2736\n")  # 2021 logs: bare
    run = run_of(tmp_path, text)
    kills = tagged(run, "killing")
    assert kills[0].kind == "warning" and kills[0].count == 2 and kills[0].data["pid"] == 2734 and len(kills) == 2
    (ex,) = tagged(run, "exit")
    assert ex.kind == "error" and ex.data == {"tag": "exit", "code": -9, "signal": "SIGKILL", "local_rank": 1,
                                              "pid": None, "launcher": "deepspeed"}
    assert len([e for e in run.events if e.line == 3]) == 1  # one event per line


def test_zero_stage_and_version_meta(tmp_path):
    run = run_of(tmp_path, "[2024-01-01 00:00:00,000] [INFO] [logging.py:96:log_dist] [Rank -1] DeepSpeed info: "
                           "version=0.13.1, git-hash=unknown, git-branch=unknown\n"
                           "[2024-01-01 00:00:01,000] [INFO] [logging.py:96:log_dist] [Rank 0] Creating "
                           "torch.bfloat16 ZeRO stage 2 optimizer\n")
    assert run.meta["zero_stage"] == 2 and run.meta["deepspeed_version"] == "0.13.1"
    assert run.meta["dtype"] == "torch.bfloat16"


def test_megatron_iterations_and_validation():
    run = parse(fixture("deepspeed/hang-at-eval-no-nccl-timeout-bloom176b-chronicles.log"))
    tr, ev = run.train_rows().iloc[0], run.frame[run.frame.kind == "eval"].iloc[0]
    assert tr.step == 45000 and tr.loss == pytest.approx(2.113567) and tr.grad_norm == pytest.approx(0.139)
    assert tr.learning_rate == pytest.approx(4.298e-5) and tr["rank"] == 7 and tr.step_source == "logged"
    assert tr.samples_per_second == pytest.approx(18.451) and tr.skipped_iterations == 0
    assert ev.step == 45000 and ev.eval_loss == pytest.approx(2.327091)


def test_megatron_loss_scale(tmp_path):
    line = (" iteration     7000/  159576 | consumed samples:       260912 | elapsed time per iteration (ms): 18706.1 | "
            "learning rate: 6.000E-05 | global batch size:    96 | lm loss: 6.444662E+00 | loss scale: 2048.0 | "
            "grad norm: 98258.265 | num zeros: 0.0 | number of skipped iterations:   0 | number of nan iterations:   0 |")
    row = run_of(tmp_path, line + "\n").train_rows().iloc[0]
    assert (row.step, row.loss, row.loss_scale, row.grad_norm) == (7000, pytest.approx(6.444662), 2048.0,
                                                                   pytest.approx(98258.265))
    assert row.consumed_samples == 260912 and row.global_batch_size == 96


def test_torchtitan_steps():
    run = parse(fixture("deepspeed/healthy-torchrun-rank-prefix-torchtitan-1437.log"))
    tr = run.train_rows()
    assert list(tr.step) == list(range(3, 11)) and tr.loss.iloc[0] == pytest.approx(4.9925)
    assert tr.grad_norm.iloc[-1] == pytest.approx(1.6558) and set(tr["rank"]) == {0}
    assert tr.tps.iloc[0] == 30768 and run.framework == "torchtitan"


# ------------------------------------------------------------------------------------ torchrun / NCCL


def test_torchrun_failed_three_eras(tmp_path):
    lines = [  # formats/deepspeed.md section 6 (observed)
        "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -9) local_rank: 1 (pid: 91820) of "
        "binary: anaconda3/envs/stanford_alpaca/bin/python",
        "[2024-04-10 16:02:57,193] torch.distributed.elastic.multiprocessing.api: [ERROR] failed (exitcode: 1) "
        "local_rank: 0 (pid: 271) of binary: /usr/bin/python",
        "E1223 05:18:02.971000 3304089 site-packages/torch/distributed/elastic/multiprocessing/api.py:882] failed "
        "(exitcode: -11) local_rank: 0 (pid: 3304209) of binary: /usr/bin/python3",
        "W1223 05:17:58.996000 3304089 site-packages/torch/distributed/elastic/multiprocessing/api.py:908] Sending "
        "process 3304210 closing signal SIGTERM",
    ]
    run = run_of(tmp_path, "\n".join(lines) + "\n")
    exits = tagged(run, "exit")
    assert [(e.data["code"], e.data["signal"], e.data["local_rank"], e.data["pid"]) for e in exits] == [
        (-9, "SIGKILL", 1, 91820), (1, None, 0, 271), (-11, "SIGSEGV", 0, 3304209)]
    assert {e.data["launcher"] for e in exits} == {"torchrun"} and {e.kind for e in exits} == {"error"}
    (cl,) = tagged(run, "closing_signal")
    assert cl.kind == "warning" and cl.data["pid"] == 3304210 and len(run.events) == 4


def test_child_failed_error_table():
    run = parse(fixture("deepspeed/torchrun-childfailed-sigabrt-after-watchdog-simpletuner-759.log"))
    (ex,) = tagged(run, "exit")
    assert ex.data["code"] == -6 and ex.data["signal"] == "SIGABRT" and ex.data["pid"] == 540118
    assert ex.data["local_rank"] == 1 and ex.rank == 1 and ex.data["root_cause"] is True
    assert ex.line == 21 and ex.kind == "error"


def test_child_failed_error_other_failures(tmp_path):
    table = """torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train.py FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2025-05-21_15:43:04
  host      : node1
  rank      : 1 (local_rank: 1)
  exitcode  : -15 (pid: 14751)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 14751
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2025-05-21_15:43:03
  host      : node1
  rank      : 0 (local_rank: 0)
  exitcode  : -9 (pid: 14750)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 14750
============================================================
"""
    run = run_of(tmp_path, table)
    exits = sorted(tagged(run, "exit"), key=lambda e: e.line)
    assert [(e.data["code"], e.data["signal"], e.data["root_cause"], e.rank) for e in exits] == [
        (-15, "SIGTERM", False, 1), (-9, "SIGKILL", True, 0)]


def test_nccl_watchdog_every_era(tmp_path):
    lines = [  # formats/deepspeed.md section 7 (observed), corpus axo-1495 for the wrapper prefix
        "[E ProcessGroupNCCL.cpp:737] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=469508, "
        "OpType=ALLREDUCE, Timeout(ms)=1800000) ran for 1802212 milliseconds before timing out.",
        "(en-hi-spot, pid=18593) [E ProcessGroupNCCL.cpp:475] [Rank 6] Watchdog caught collective operation timeout: "
        "WorkNCCL(SeqNum=13807, OpType=ALLREDUCE, NumelIn=11274112, NumelOut=11274112, Timeout(ms)=1800000) ran for "
        "1800233 milliseconds before timing out.",
        "[rank0]:[E321 02:07:08.408271257 ProcessGroupNCCL.cpp:607] [Rank 0] Watchdog caught collective operation "
        "timeout: WorkNCCL(SeqNum=1580, OpType=_ALLGATHER_BASE, NumelIn=1, NumelOut=8, Timeout(ms)=600000) ran for "
        "600044 milliseconds before timing out.",
        "[rank0]:[E321 02:07:08.409000000 ProcessGroupNCCL.cpp:1664] [PG 1 Rank 0] Exception (either an error or "
        "timeout) detected by watchdog at work: 1580, last enqueued NCCL work: 1582, last completed NCCL work: 1579.",
        "[rank3]:[E1206 18:44:12.755262105 ProcessGroupNCCL.cpp:1595] [PG ID 0 PG GUID 0(default_pg) Rank 3] Stack "
        "trace of the failed collective not found, potentially because FlightRecorder is disabled. You can enable "
        "it by setting TORCH_NCCL_TRACE_BUFFER_SIZE to a non-zero value.",
        "[E ProcessGroupNCCL.cpp:455] Some NCCL operations have failed or timed out. Due to the asynchronous nature "
        "of CUDA kernels, subsequent GPU operations might run on corrupted/incomplete data.",
    ]
    run = run_of(tmp_path, "\n".join(lines) + "\n")
    to = tagged(run, "nccl_timeout")
    assert [(e.rank, e.data["timeout_ms"], e.data["ran_ms"], e.data["op"], e.data["seq"]) for e in to] == [
        (1, 1800000, 1802212, "ALLREDUCE", 469508), (6, 1800000, 1800233, "ALLREDUCE", 13807),
        (0, 600000, 600044, "_ALLGATHER_BASE", 1580)]
    wd = tagged(run, "nccl_watchdog")
    assert [(e.kind, e.data["seq"], e.data["last_enqueued"], e.data["last_completed"], e.data["pg"]) for e in wd] == [
        ("error", 1580, 1582, 1579, 1), ("warning", None, None, None, 0), ("error", None, None, None, None)]
    assert wd[0].rank == 0 and wd[1].rank == 3
    assert len(run.events) == 6  # one event per line


def test_nccl_timeouts_corpus_rank_and_fold():
    run = parse(fixture("deepspeed/nccl-timeout-after-6h-tqdm-pytorch-118369.log"))
    to = tagged(run, "nccl_timeout")
    assert sum(e.count for e in to) == 5 and len(run.events) == len(to)
    assert {(e.rank, e.data["seq"]) for e in to} == {(0, 96120), (0, 96117), (0, 96125), (7, 64088)}
    assert to[0].data["ran_ms"] == 25624887


def test_nccl_system_error_and_ib():
    run = parse(fixture("deepspeed/nccl-error-ib-unhandled-system-error-2node-inference-ds-2931.log"))
    errs = tagged(run, "nccl_error")
    assert [e.data["kind"] for e in errs] == ["ib_completion", "unhandled system error"]
    assert errs[0].data["status"] == 12 and errs[0].line == 5
    assert len(tagged(run, "nccl_watchdog")) == 2


def test_srun_exit_and_slurm_cancel(tmp_path):
    run = run_of(tmp_path, "srun: error: gpu-st-p4d-24xlarge-5: task 3: Exited with exit code 1\n"
                           "srun: error: gpu2: task 4: Exited with exit code 137\n"
                           "slurmstepd: error: *** STEP 1234.0 ON gpu1 CANCELLED AT 2023-05-01T10:00:00 DUE TO TIME "
                           "LIMIT ***\nsrun: error: node7: tasks 0-7: Killed\n")
    exits = tagged(run, "exit")
    assert [(e.data["code"], e.data["signal"], e.data["tasks"]) for e in exits] == [
        (1, None, "3"), (137, "SIGKILL", "4"), (-9, "SIGKILL", "0-7")]
    assert {e.data["launcher"] for e in exits} == {"srun"}
    (c,) = tagged(run, "slurm_cancelled")
    assert c.data["reason"] == "TIME LIMIT" and c.kind == "error"


def test_killed_lines(tmp_path):
    run = run_of(tmp_path, "Killed\n/bin/bash: line 1: 12345 Killed                  python train.py\n"
                           "[1234.5678] Out of memory: Killed process 4321 (python) total-vm:1234kB\n")
    k = tagged(run, "killed")
    assert [e.data["pid"] for e in k] == [None, 12345, 4321] and {e.kind for e in k} == {"error"}


# ------------------------------------------------------------------------------------ tracebacks, OOM


def test_traceback_py311_markers_and_oom_sizes():
    run = parse(fixture("full/gtseligas__lcn-llama__train.err"))
    tbs = [e for e in run.events if e.kind == "traceback"]
    assert tbs and tbs[0].data["exc_type"] == "torch.OutOfMemoryError"
    assert all("^" not in f for f in tbs[0].data["frames"])
    (oom,) = [e for e in tagged(run, "cuda_oom") if e.line == 133]
    gib, mib = 1024 ** 3, 1024 ** 2
    assert oom.data["requested_bytes"] == 512 * mib and oom.data["total_bytes"] == int(63.42 * gib)
    assert oom.data["free_bytes"] == int(1.20 * gib)


def test_oom_formats():
    gib, mib = 1024 ** 3, 1024 ** 2
    old = oom_sizes("RuntimeError: CUDA out of memory. Tried to allocate 388.00 MiB (GPU 3; 31.75 GiB total "
                    "capacity; 28.42 GiB already allocated; 340.94 MiB free; 30.39 GiB reserved in total by PyTorch)")
    assert old == {"requested_bytes": 388 * mib, "total_bytes": int(31.75 * gib), "free_bytes": int(340.94 * mib)}
    typo = oom_sizes("Tried to allocate 136.00 MiB. GPU 0 has a total capacty of 23.65 GiB of which 93.81 MiB is "
                     "free.")
    assert typo["total_bytes"] == int(23.65 * gib) and typo["free_bytes"] == int(93.81 * mib)


def test_oom_hard_wrapped_paste():
    run = parse(fixture("axolotl/axo-1813-mistral-nemo-fsdp-oom-after-eval.log"))
    (oom,) = tagged(run, "cuda_oom")
    assert oom.rank == 1 and oom.line == 13 and oom.kind == "error"
    assert oom.data["total_bytes"] == int(23.67 * 1024 ** 3) and oom.data["free_bytes"] == int(1.59 * 1024 ** 3)


def test_interleaved_rank_tracebacks(tmp_path):
    text = "".join([
        "[rank0]: Traceback (most recent call last):\n",
        "[rank1]: Traceback (most recent call last):\n",
        '[rank0]:   File "train.py", line 5, in <module>\n',
        '[rank1]:   File "train.py", line 7, in <module>\n',
        "[rank1]:     main()\n",
        "[rank0]:     ^^^^^^\n",
        "[rank0]: ValueError: bad value\n",
        "[rank1]: KeyError: 'labels'\n",
    ])
    run = run_of(tmp_path, text)
    tbs = sorted((e for e in run.events if e.kind == "traceback"), key=lambda e: e.rank)
    assert [(e.rank, e.data["exc_type"], e.data["start_line"], e.line) for e in tbs] == [
        (0, "ValueError", 1, 7), (1, "KeyError", 2, 8)]
    assert tbs[0].data["frames"] == ["train.py:5 in <module>"]


def test_chained_traceback(tmp_path):
    text = ("Traceback (most recent call last):\n  File \"a.py\", line 1, in f\nKeyError: 'x'\n\n"
            "During handling of the above exception, another exception occurred:\n\n"
            "Traceback (most recent call last):\n  File \"b.py\", line 2, in g\nValueError: y\n")
    (tb,) = [e for e in run_of(tmp_path, text).events if e.kind == "traceback"]
    assert tb.data["chain"] == ["KeyError: 'x'", "ValueError: y"] and tb.data["exc_type"] == "ValueError"


# ------------------------------------------------------------------------------------ rank prefixes


@pytest.mark.parametrize("line,rank,rest", [
    ("[rank3]: Traceback (most recent call last):", 3, "Traceback (most recent call last):"),
    ("[default7]: iteration 5", 7, "iteration 5"),
    ("[rank4]:[E1206 18:44:12.755262105 ProcessGroupNCCL.cpp:607] x", 4, "[E1206 18:44:12.755262105 "
                                                                       "ProcessGroupNCCL.cpp:607] x"),
    ("gpu1505: gpu1505:22060:22174 [0] NCCL INFO Connected all trees", None,
     "gpu1505:22060:22174 [0] NCCL INFO Connected all trees"),
    ("12: [2023-01-01 00:00:00,000] [INFO] step", 12, "[2023-01-01 00:00:00,000] [INFO] step"),
    ("(en-hi-spot, pid=18593) [E ProcessGroupNCCL.cpp:475] x", None, "[E ProcessGroupNCCL.cpp:475] x"),
    ("[2024-01-19 08:21:59,664] [INFO] [axolotl.x:178] [PID:6552] [RANK:4] msg", 4,
     "[2024-01-19 08:21:59,664] [INFO] [axolotl.x:178] [PID:6552] [RANK:4] msg"),
    # a wrapper that stamps the time before torchrun's prefix (ms-swift#7992)
    ("18:11:06.680 [rank4]: torch.OutOfMemoryError: CUDA out of memory.", 4, "torch.OutOfMemoryError: CUDA out of memory."),
    ("18:11:06 plain text", None, "18:11:06 plain text"),
])
def test_rank_prefixes(line, rank, rest):
    assert lift_rank(line) == (rest, rank)


def test_per_rank_series(tmp_path):
    text = "".join(f"[rank{r}]:[titan] 2025-07-21 15:57:4{s},774 - root - INFO - step: {s}  loss: {4 + r + s / 10}  "
                   f"memory:  0.00GiB(0.00%)  tps: 30,768\n" for s in range(1, 4) for r in range(2))
    tr = run_of(tmp_path, text).train_rows()
    assert sorted(tr.groupby("rank").step.apply(list).to_dict().items()) == [(0, [1, 2, 3]), (1, [1, 2, 3])]


# ------------------------------------------------------------------------------------ JSON sources, run dirs


def test_llamafactory_trainer_log_jsonl():
    run = parse(fixture("full/AolinGuo__graduate_agent__trainer_log.jsonl"))
    tr = run.train_rows()
    assert tr.step.iloc[0] == 10 and tr.learning_rate.iloc[0] == pytest.approx(2.368421e-05)
    assert run.framework == "llamafactory" and run.meta.get("completed") is True
    assert tr.step.is_monotonic_increasing and set(tr.step_source) == {"logged"}


def test_generic_jsonl_and_learning_rate_key(tmp_path):
    rows = [{"step": i, "loss": 2.0 - i / 10, "learning_rate": 1e-4} for i in range(1, 4)]
    run = run_of(tmp_path, "\n".join(json.dumps(r) for r in rows) + "\n", "metrics.jsonl")
    tr = run.train_rows()
    assert list(tr.step) == [1, 2, 3] and tr.learning_rate.iloc[0] == 1e-4 and tr.loss.iloc[2] == pytest.approx(1.7)


def test_llamafactory_webui_running_log(tmp_path):
    run = parse(fixture("full/aa-n__Qwen3_Lora__running_log.txt"))
    assert run.lines == 266 and run.train_rows().empty
    assert any("No metric loss to plot" in e.text for e in run.events)
    text = ("[INFO|2025-04-29 14:35:06] logging.py:143 >> {'loss': 1.2345, 'learning_rate': 4.9e-05, 'epoch': 0.1, "
            "'throughput': 1234.5}\n\n[INFO|2025-04-29 14:36:06] logging.py:143 >> {'loss': 1.1, 'learning_rate': "
            "4.8e-05, 'epoch': 0.2, 'throughput': 1230.1}\n")
    tr = run_of(tmp_path, text, "running_log.txt").train_rows()
    assert list(tr.loss) == [1.2345, 1.1] and list(tr.line) == [1, 3]


def test_run_directory_merges_without_double_steps(tmp_path):
    d = tmp_path / "out"
    (d / "checkpoint-20").mkdir(parents=True)
    shutil.copy(fixture("generated/hf_healthy.trainer_state.json"), d / "trainer_state.json")
    shutil.copy(fixture("generated/hf_healthy.log"), d / "train.log")
    (d / "debug.log").write_text("[2024-01-01 00:00:00,000] [WARNING] [axolotl.x:1] [PID:1] something odd\n")
    (d / "model.safetensors").write_bytes(b"\x00" * 64)
    run = parse(str(d))
    state = parse(fixture("generated/hf_healthy.trainer_state.json"))
    tr = run.train_rows()
    assert len(tr) == len(state.train_rows()) and not tr.duplicated(["kind", "step"]).any()
    assert set(tr.step_source) == {"logged"}
    assert any(e.data.get("source", "").endswith("debug.log") for e in run.events)
    assert run.meta["sources"][0].endswith("trainer_state.json") and len(run.texts) == len(run.frame)


def test_run_directory_without_logs(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\x00")
    with pytest.raises(InputError, match="directory holds no logs"):
        parse(str(tmp_path))


def test_every_corpus_file_no_duplicate_events(corpus):
    for path in sorted(corpus.rglob("*")):
        if path.is_file() and path.name != "labels.jsonl":
            run = parse(str(path))
            keys = [(e.line, e.text) for e in run.events]
            assert len(keys) == len(set(keys)), path
            for e in run.events:
                assert e.kind in ("error", "warning", "traceback", "info")
                if e.data.get("tag") == "cuda_oom":
                    assert all(v is None or v > 0 for k, v in e.data.items() if k.endswith("_bytes"))
            assert not any(isinstance(v, float) and math.isinf(v) for v in run.frame.get("step", []))


def test_watchdog_abort_line(tmp_path):
    run = run_of(tmp_path, "terminate called after throwing an instance of 'c10::DistBackendError'\n"
                           "  what():  [PG ID 0 PG GUID 0(default_pg) Rank 3] Process group watchdog thread terminated "
                           "with exception: [Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7, "
                           "OpType=BROADCAST, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600112 milliseconds "
                           "before timing out.\n")
    assert [e.data["tag"] for e in run.events] == ["nccl_watchdog", "nccl_timeout"]
    assert run.events[1].rank == 3 and run.events[1].data["op"] == "BROADCAST"


def test_label_masking_diagnostics():
    axo = parse(fixture("axolotl/axo-2089-chat-template-turn-indices-minus1-all-masked.log"))
    (ev,) = [e for e in axo.events if e.data.get("tag") == "masked_labels"]
    assert ev.kind == "warning" and ev.count > 1 and "Turn indices: start=-1, end=-1" in ev.text
    trl = parse(fixture("hf/fms-hf-tuning-18-completion-collator-loss0.log"))
    ev = [e for e in trl.events if e.data.get("tag") == "masked_labels"]
    assert ev and all("ignored in loss calculation" in e.text for e in ev)


def test_last_progress_bar_event():
    run = parse(fixture("axolotl/axo-1495-qwen-moe-nccl-watchdog-timeout.log"))
    (ev,) = [e for e in run.events if e.data.get("tag") == "progress"]
    assert ev.kind == "info" and ev.line == 1 and ev.data["step"] == 4 and ev.data["total"] == 1920
    assert ev.data["sec_per_step"] == pytest.approx(572.77) and "572.77s/it" in ev.text
    run = parse(fixture("hf/llava-918-lora-loss-spike-tqdm-lines.log"))
    (ev,) = [e for e in run.events if e.data.get("tag") == "progress"]
    assert ev.data["step"] == 2569 and ev.line == 24 and ev.data["sec_per_step"] == pytest.approx(4.61)
    tok = parse(fixture("axolotl/axo-1649-sharegpt-type-tokenize-failure-multirank.log"))
    assert not [e for e in tok.events if e.data.get("tag") == "progress"]  # "Tokenizing Prompts" is no step
