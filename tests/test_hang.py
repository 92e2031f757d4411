"""A silent hang (NCCL_TIMEOUT variant ``hang``, SLOW_THROUGHPUT variant ``stall``) proven by the log's
own timestamps, and a log that ends inside a traceback (EARLY_TERMINATION variant ``cut_traceback``).
Lines are copied from real logs of the corpus and the formats they come from."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path

import pytest

from logpost.analyze import Options, analyze
from logpost.model import Verdict
from logpost.parsers import parse
from logpost.signatures import hang
from logpost.signatures.registry import load_catalogue
from tests.conftest import fixture

BLOOM = "deepspeed/hang-at-eval-no-nccl-timeout-bloom176b-chronicles.log"
PARAMS = dict(load_catalogue()["NCCL_TIMEOUT"].params)
ITERATION = ("[default7]: iteration    45000/  115311 | consumed samples:     76002224 | consumed tokens: 155652554752 "
             "| elapsed time per iteration (s): 111.00 | learning rate: 4.298E-05 | global batch size:  2048 | "
             "lm loss: 2.113567E+00 | grad norm: 0.139 | num zeros: 0.0 | number of skipped iterations:   0 | "
             "number of nan iterations:   0 |")


def pulse(at: str, running: str = "1-07:27:33") -> str:
    return (f"[{at}] PULSE: tr11-176B-ml is running for {running} since 2022-04-29T20:28:38 "
            "(1528763 on 'gpu_p5' partition (jean-zay-iam[01-34,36-49])")


def write(tmp_path: Path, *lines: str, name: str = "run.log") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------ timestamps

@pytest.mark.parametrize("text,at", [
    ("[2022-05-01 03:56:11] PULSE: tr11-176B-ml is waiting to be scheduled", datetime(2022, 5, 1, 3, 56, 11)),
    ("[INFO|trainer.py:2078] 2024-06-01 16:22:16,125 >> ***** Running training *****",
     datetime(2024, 6, 1, 16, 22, 16)),
    ("[2024-12-20 19:59:05,921] [INFO] [axolotl.load_model:1121] [PID:89474] [RANK:0] Converting modules",
     datetime(2024, 12, 20, 19, 59, 5)),
    ("2024-06-01T16:22:16.500Z INFO worker heartbeat", datetime(2024, 6, 1, 16, 22, 16)),
    ("2023/10/23 15:41:48.528, NVIDIA A100-SXM4-80GB, 100 %, 61234 MiB", datetime(2023, 10, 23, 15, 41, 48)),
    ("[I1015 12:34:56.789563910 ProcessGroupNCCL.cpp:2262] [PG 0 Rank 1] ProcessGroupNCCL broadcast unique ID",
     datetime(2000, 10, 15, 12, 34, 56)),
    ("W1206 18:44:12.123456 140213 torch/distributed/elastic/multiprocessing/api.py:858] Sending process 4 closing",
     datetime(2000, 12, 6, 18, 44, 12)),
    ("Sat Jun  1 16:22:16 UTC 2024", datetime(2024, 6, 1, 16, 22, 16)),
    ("05/28/2024 10:20:35 - INFO - llamafactory.hparams.parser - Process rank: 0, device: cuda:0, n_gpu: 1",
     datetime(2024, 5, 28, 10, 20, 35)),
])
def test_stamp_forms(text, at):
    s = hang.stamp(7, text)
    assert s is not None and s.at == at and s.line == 7


@pytest.mark.parametrize("text", [
    "valid loss at iteration 45000 | lm loss value: 2.327091E+00 | lm loss PPL: 1.024808E+01 |",
    # a date in the message is not when the line was written
    "Saving model checkpoint to /data/outputs/llama3-8b-sft/checkpoint-2024-06-01 12:00:00 for the run started earlier",
    "{'loss': 1.4183, 'grad_norm': 0.6215, 'learning_rate': 1.2e-05, 'epoch': 0.04}",
    "[2024-13-45 99:99:99] not a date",
])
def test_no_stamp(text):
    assert hang.stamp(1, text) is None


def test_glog_time_is_shown_without_a_year(tmp_path):
    glog = "[rank0]:[I1015 {} ProcessGroupNCCL.cpp:2262] [PG 0 Rank 0] ProcessGroupNCCL broadcast unique ID"
    path = write(tmp_path, ITERATION, glog.format("12:34:56.789563910"), glog.format("14:34:56.789563910"))
    st = hang.find_stall(parse(path), PARAMS)
    assert st is not None and st.facts()["since"] == "10-15 12:34:56" and st.facts()["until"] == "10-15 14:34:56"


def test_loggers_keep_their_own_clock():
    # HF's logger and the [..] bracket style are different forms: a time zone mismatch between two
    # writers must not add up to a gap
    a = hang.stamp(1, "[INFO|trainer.py:2078] 2024-06-01 16:22:16,125 >> ***** Running training *****")
    b = hang.stamp(2, "[2024-06-01 08:22:16] PULSE: job is running")
    assert a is not None and b is not None and a.form != b.form


# ------------------------------------------------------------------------------------ tail reading

@pytest.mark.parametrize("gz", [False, True])
def test_tail_lines_are_numbered_like_the_file(tmp_path, gz):
    src = Path(fixture(BLOOM))
    path = tmp_path / ("bloom.log.gz" if gz else "bloom.log")
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(src.read_bytes())
    else:
        shutil.copy(src, path)
    run = parse(str(path))
    params = {**PARAMS, "tail_kib": 1}  # 1 KiB: the window starts mid-file, mid-line
    lines = hang.tail_lines(run, params)
    assert lines
    real = src.read_text(encoding="utf-8").splitlines()
    assert lines[-1].no == len(real) == run.lines
    for ln in lines:
        assert ln.text.strip() in real[ln.no - 1]
    assert lines[0].no > 1  # the cut first line is dropped, not numbered wrongly


def test_tail_reads_a_bounded_window(tmp_path, monkeypatch):
    body = [ITERATION.replace("45000/", f"{i}/") for i in range(40000, 45000)]  # ~2.3 MB of records
    path = write(tmp_path, *body, pulse("2022-05-01 03:56:11"), pulse("2022-05-01 05:56:18"))
    seen = []
    real = hang._read_tail
    monkeypatch.setattr(hang, "_read_tail", lambda p, end, size: seen.append(size) or real(p, end, size))
    run = parse(path)
    assert hang.find_stall(run, {**PARAMS, "tail_kib": 64}) is not None
    assert seen == [64 * 1024]


def test_a_large_gz_is_not_decompressed_again(tmp_path):
    path = tmp_path / "run.log.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(ITERATION + "\n" + pulse("2022-05-01 03:56:11") + "\n" + pulse("2022-05-01 05:56:18") + "\n")
    run = parse(str(path))
    assert hang.tail_lines(run, {**PARAMS, "gz_max_mib": 0}) is None
    assert hang.tail_lines(run, PARAMS) is not None


# ------------------------------------------------------------------------------------ the hang

def test_bloom_hang_at_eval():
    pm = analyze(fixture(BLOOM))
    assert pm.verdict is Verdict.FAILED and pm.findings[0].id == "NCCL_TIMEOUT"
    f = pm.findings[0]
    assert f.confidence == pytest.approx(0.6)
    assert f.first_step == 45000 and f.first_line == 3  # the eval record after iteration 45000
    assert [e.line for e in f.evidence] == [1, 3, 5, 10]
    assert "No progress for 2 h 0 min after iteration 45000 (111 s per iteration) while the job was still logging" \
        in f.summary["en"]
    assert "no NCCL watchdog" in f.summary["en"] and "watchdog" in f.title["en"]
    assert "2 小时 0 分钟" in f.summary["zh"] and "第 45000 次迭代" in f.summary["zh"]
    assert any("py-spy dump" in s for s in f.remediation["en"])
    assert any("TORCH_NCCL_ASYNC_ERROR_HANDLING" in s for s in f.remediation["en"])
    assert not any(x.id == "SLOW_THROUGHPUT" for x in pm.findings)  # one finding for one hang


def test_bloom_facts():
    st = hang.find_stall(parse(fixture(BLOOM)), PARAMS)
    assert st is not None
    assert st.gap_s == 7207 and st.sec_per_step == 111.0 and st.step == 45000
    assert (st.start.line, st.end.line) == (5, 10)


def test_threshold_follows_the_step_time(tmp_path):
    # 1 h of silence after a 111 s iteration is a hang; after a 300 s iteration it is 12 steps: not yet
    path = write(tmp_path, ITERATION, pulse("2022-05-01 03:56:11"), pulse("2022-05-01 04:56:11"))
    assert hang.find_stall(parse(path), PARAMS) is not None
    slow = ITERATION.replace("(s): 111.00", "(s): 300.00")
    path = write(tmp_path, slow, pulse("2022-05-01 03:56:11"), pulse("2022-05-01 04:56:11"), name="slow.log")
    assert hang.find_stall(parse(path), PARAMS) is None


def test_the_record_own_stamp_starts_the_gap(tmp_path):
    # Megatron-LM prints the time on its iteration lines: the gap runs from the record itself
    rec = " [2024-06-01 16:00:00] " + ITERATION.split("]: ", 1)[1]
    path = write(tmp_path, rec, "[2024-06-01 16:50:00] heartbeat: job 1528763 alive")
    st = hang.find_stall(parse(path), PARAMS)
    assert st is not None and st.start.line == 1 and st.gap_s == 3000


@pytest.mark.parametrize("tail,why", [
    ([pulse("2022-05-01 03:56:11"), pulse("2022-05-01 04:06:11")], "10 min: a save or an eval"),
    (["[default0]:saving checkpoint at iteration   45000 to /gpfsscratch/checkpoints/main"], "no timestamps"),
    ([pulse("2022-05-01 03:56:11"), pulse("2022-05-01 06:56:11"), "[default0]:> initializing torch distributed ..."],
     "a restart"),
    ([pulse("2022-05-01 03:56:11"), pulse("2022-05-01 06:56:11"),
      "[default3]:torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"], "a crash speaks"),
    ([pulse("2022-05-01 03:56:11"), "[E ProcessGroupNCCL.cpp:475] [Rank 1] Watchdog caught collective operation "
      "timeout: WorkNCCL(SeqNum=13807, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=1800000) ran for "
      "1800221 milliseconds before timing out.", pulse("2022-05-01 06:56:11")], "the watchdog fired"),
    ([pulse("2022-05-01 03:56:11"), "[2022-05-01 06:56:11] > training completed", ITERATION.replace("45000/", "45010/")],
     "a later record"),
])
def test_not_a_hang(tmp_path, tail, why):
    path = write(tmp_path, ITERATION, *tail)
    pm = analyze(path, Options(select=("NCCL_TIMEOUT", "SLOW_THROUGHPUT")))
    assert not any(f.facts.get("gap_s") for f in pm.findings), why


def test_two_clocks_are_not_compared(tmp_path):
    # HF's logger in UTC, the job's pulse in local time (UTC+8): 3 minutes of real time, not 8 hours
    path = write(tmp_path, ITERATION,
                 "[INFO|trainer.py:3705] 2024-06-01 08:22:16,125 >> Saving model checkpoint to out/checkpoint-500",
                 "[2024-06-01 16:22:20] PULSE: job 1528763 is running", "[2024-06-01 16:25:00] PULSE: job 1528763 is running")
    assert hang.find_stall(parse(path), PARAMS) is None


def test_a_clock_that_runs_backwards_proves_nothing(tmp_path):
    # rank 0's log, then rank 1's log of the same run appended: rank 1's stamps start hours earlier
    axo = "[{}] [INFO] [axolotl.train.train:173] [PID:2415] [RANK:{}] {}"
    path = write(tmp_path,
                 axo.format("2024-12-20 23:00:00,101", 0, "Saving model checkpoint"),
                 "{'loss': 1.4183, 'grad_norm': 0.6215, 'learning_rate': 1.2e-05, 'epoch': 0.04}",
                 axo.format("2024-12-20 19:59:05,921", 1, "loading model"),
                 axo.format("2024-12-20 21:00:00,101", 1, "Saving model checkpoint"),
                 axo.format("2024-12-20 23:05:00,101", 1, "Saving model checkpoint"))
    assert hang.find_stall(parse(path), PARAMS) is None  # 19:59 -> 23:05 is not a gap after the record


def test_a_long_eval_whose_bar_moves_is_not_a_stall(tmp_path):
    # the eval bar is not the training bar (its total is not the run's 250 steps), but it moves
    path = write(tmp_path,
                 "[INFO|trainer.py:2086] 2024-06-01 16:22:16,125 >>   Total optimization steps = 250",
                 "{'loss': 1.4183, 'grad_norm': 0.6215, 'learning_rate': 1.2e-05, 'epoch': 0.04}",
                 " 12%|█▏        | 30/250 [01:32<11:14,  3.07s/it]",
                 "2024/06/01 16:24:02.528, NVIDIA A100-SXM4-80GB, 100 %, 61234 MiB",
                 "  2%|▏         | 10/500 [00:40<32:40,  4.00s/it]",
                 "2024/06/01 17:04:02.528, NVIDIA A100-SXM4-80GB, 100 %, 61234 MiB",
                 " 40%|████      | 200/500 [13:20<20:00,  4.00s/it]",
                 "2024/06/01 17:44:02.528, NVIDIA A100-SXM4-80GB, 100 %, 61234 MiB",
                 " 80%|████████  | 400/500 [26:40<06:40,  4.00s/it]",
                 "2024/06/01 17:54:02.528, NVIDIA A100-SXM4-80GB, 100 %, 61234 MiB")
    assert hang.find_stall(parse(path), PARAMS) is None
    # the same log whose eval bar stops at 10/500 is a stall (the parser keeps no training rate when the
    # last bar is the eval's, so the step time is unknown and 3 h are needed)
    stuck = write(tmp_path, *Path(path).read_text(encoding="utf-8").splitlines()[:6],
                  "2024/06/01 20:14:02.528, NVIDIA A100-SXM4-80GB, 100 %, 61234 MiB", name="stuck.log")
    st = hang.find_stall(parse(stuck), PARAMS)
    assert st is not None and st.anchor.line == 5 and st.gap_s == 190 * 60


def test_a_recurring_error_does_not_hide_the_hang(tmp_path):
    err = "[default0]:[2022-05-01 {}] [ERROR] [monitor.py:12] wandb upload failed, will retry"
    path = write(tmp_path, err.format("01:00:00"), ITERATION, pulse("2022-05-01 03:56:11"),
                 err.format("04:00:00"), pulse("2022-05-01 05:56:18"))
    assert hang.find_stall(parse(path), PARAMS) is not None


def test_not_a_hang_when_the_run_finished(tmp_path):
    path = write(tmp_path, "{'loss': 1.4183, 'grad_norm': 0.6215, 'learning_rate': 1.2e-05, 'epoch': 1.96}",
                 "{'train_runtime': 766.1, 'train_samples_per_second': 2.61, 'train_steps_per_second': 0.326, "
                 "'train_loss': 1.31, 'epoch': 2.0}",
                 "2024/06/01 16:24:02.528, NVIDIA A100-SXM4-80GB, 0 %, 0 MiB",
                 "2024/06/01 19:24:02.528, NVIDIA A100-SXM4-80GB, 0 %, 0 MiB")
    assert hang.find_stall(parse(path), PARAMS) is None


def test_unknown_step_time_asks_for_three_hours(tmp_path):
    rec = "{'loss': 1.4183, 'grad_norm': 0.6215, 'learning_rate': 1.2e-05, 'epoch': 0.04}"
    two = write(tmp_path, rec, "2024/06/01 16:24:02.528, A100, 100 %", "2024/06/01 18:24:02.528, A100, 100 %")
    four = write(tmp_path, rec, "2024/06/01 16:24:02.528, A100, 100 %", "2024/06/01 20:24:02.528, A100, 100 %",
                 name="four.log")
    assert hang.find_stall(parse(two), PARAMS) is None
    st = hang.find_stall(parse(four), PARAMS)
    assert st is not None and st.sec_per_step is None


def test_single_process_stall_is_a_warning(tmp_path):
    path = write(tmp_path,
                 "[INFO|trainer.py:2084] 2024-06-01 16:22:16,125 >>   Total train batch size (w. parallel, "
                 "distributed & accumulation) = 8",
                 "[INFO|trainer.py:2081] 2024-06-01 16:22:16,125 >>   Instantaneous batch size per device = 2",
                 "[INFO|trainer.py:2085] 2024-06-01 16:22:16,125 >>   Gradient Accumulation steps = 4",
                 "[INFO|trainer.py:2086] 2024-06-01 16:22:16,125 >>   Total optimization steps = 250",
                 "{'loss': 1.4183, 'grad_norm': 0.6215, 'learning_rate': 1.2e-05, 'epoch': 0.04}",
                 " 12%|█▏        | 30/250 [01:32<11:14,  3.07s/it]",
                 "2024/06/01 16:24:02.528, NVIDIA A100-SXM4-80GB, 100 %, 61234 MiB",
                 "2024/06/01 17:24:02.529, NVIDIA A100-SXM4-80GB, 100 %, 61234 MiB")
    pm = analyze(path)
    assert pm.verdict is Verdict.DEGRADED and [f.id for f in pm.findings] == ["SLOW_THROUGHPUT"]
    f = pm.findings[0]
    assert f.first_step == 30 and f.first_line == 6 and [e.line for e in f.evidence] == [5, 6, 7, 8]
    assert "No progress for 1 h 0 min after step 30 (3.07 s per step) while the process was still logging" \
        in f.summary["en"]
    assert any("dataloader_num_workers: 0" in s for s in f.remediation["en"])


def test_stdin_proves_a_gap_from_the_record_and_the_last_line(monkeypatch):
    rec = " [2024-06-01 16:00:00] " + ITERATION.split("]: ", 1)[1]
    raw = (rec + "\n[2024-06-01 16:10:00] heartbeat\n[2024-06-01 17:00:00] heartbeat\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    run = parse("-")
    st = hang.find_stall(run, PARAMS)
    assert st is not None and (st.start.line, st.end.line) == (1, 3) and st.gap_s == 3600


# ------------------------------------------------------------------------------------ cut tracebacks

def test_traceback_cut_event():
    run = parse(fixture("axolotl/axo-1944-fix-untrained-tokens-zero3-ansi-residue.log"))
    (tb,) = [e for e in run.events if e.kind == "traceback"]
    assert tb.rank == 2 and tb.data["tag"] == "traceback_cut" and tb.data["end_line"] == 13 == run.lines
    assert tb.data["exc_type"] is None and tb.data["frames"][-1].endswith("train.py:58 in <module>")


def test_cut_traceback_is_an_early_termination():
    pm = analyze(fixture("hf/llamafactory-4026-header-then-oom-traceback.log"))
    assert pm.verdict is Verdict.FAILED and [f.id for f in pm.findings] == ["EARLY_TERMINATION"]
    f = pm.findings[0]
    assert f.first_line == 9 and f.first_step == 0 and f.confidence == pytest.approx(0.6)
    assert [e.line for e in f.evidence] == [9, 16, 17]
    assert "trainer.train(" in f.evidence[-1].text
    assert "at step 0 of 30" in f.summary["en"] and "not in the log" in f.summary["en"]
    assert "OutOfMemory" not in f.summary["en"] + f.title["en"]  # the cause is not in the log: no guess
    assert any("full stderr" in s for s in f.remediation["en"])


def test_cut_traceback_names_the_rank():
    f = analyze(fixture("axolotl/axo-1944-fix-untrained-tokens-zero3-ansi-residue.log")).findings[0]
    assert f.id == "EARLY_TERMINATION" and "rank 2" in f.summary["en"] and "（rank 2）" in f.summary["zh"]
    assert [e.line for e in f.evidence] == [6, 11, 12]


def test_a_traceback_the_log_goes_on_after_is_not_cut(tmp_path):
    # an exception line the parser does not read as one (StopIteration), then more log
    path = write(tmp_path,
                 "{'loss': 1.4183, 'grad_norm': 0.6215, 'learning_rate': 1.2e-05, 'epoch': 0.04}",
                 "Traceback (most recent call last):",
                 '  File "/workspace/train.py", line 12, in <module>',
                 "    batch = next(it)",
                 "StopIteration",
                 "[INFO|trainer.py:2086] 2024-06-01 16:22:16,125 >>   Total optimization steps = 250")
    pm = analyze(path, Options(select=("EARLY_TERMINATION",)))
    assert not pm.findings


def test_a_complete_traceback_is_not_cut():
    run = parse(fixture("deepspeed/cuda-oom-zero3-rm-init-one-gpu-full-llamafactory-1936.log"))
    assert any(e.data.get("tag") == "traceback_cut" for e in run.events)  # the cut one at the end
    pm = analyze(fixture("deepspeed/cuda-oom-zero3-rm-init-one-gpu-full-llamafactory-1936.log"))
    assert pm.findings[0].id == "CUDA_OOM"  # the cause the log does show leads; the cut traceback follows


def test_json_carries_the_variant_texts():
    pm = analyze(fixture(BLOOM))
    data = pm.findings[0].to_json()
    assert json.dumps(data)  # serialisable
    assert data["title"]["en"].startswith("Hang in a collective")
