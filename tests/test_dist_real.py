"""Multi-rank crash logs as GitHub threads paste them: which finding leads, and what it explains.

Every case is built from lines in the format of a real pasted log (URL in its comment), with made-up
hosts, pids, ranks, sizes and times; the thread's resolution gave the root cause.
"""

from __future__ import annotations

from pathlib import Path

from logpost.analyze import analyze
from logpost.parsers import parse


def _log(tmp_path: Path, text: str, name: str = "train.log") -> str:
    path = tmp_path / name
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return str(path)


def ids(pm) -> list[str]:
    return [f.id for f in pm.findings]


def find(pm, sid: str):
    return next(f for f in pm.findings if f.id == sid)


# --------------------------------------------------------------------------- heartbeat monitor

# Intellindust-AI-Lab/DEIM#105, facebookresearch/dinov2#447, sgl-project/sglang#1691: torch >= 2.2 kills a
# process whose NCCL watchdog thread made no progress; a hang in a NCCL/CUDA call, i.e. NCCL_TIMEOUT.
HEARTBEAT = """
[rank2]:[E1103 07:41:12.118203114 ProcessGroupNCCL.cpp:1413] [PG 0 Rank 2] Heartbeat monitor timed out! Process will be terminated after dumping debug info. workMetaList_.size()=57
[rank2]:[E1103 07:41:12.118291006 ProcessGroupNCCL.cpp:1153] [PG 0 Rank 2] ProcessGroupNCCL preparing to dump debug info.
[rank5]:[E1103 07:41:12.120033871 ProcessGroupNCCL.cpp:1413] [PG 0 Rank 5] Heartbeat monitor timed out! Process will be terminated after dumping debug info. workMetaList_.size()=57
[rank2]:[F1103 07:51:12.118420771 ProcessGroupNCCL.cpp:1224] [PG 0 Rank 2] [PG 0 Rank 2] ProcessGroupNCCL's watchdog got stuck for 600 seconds without making progress in monitoring enqueued collectives. This typically indicates a NCCL/CUDA API hang blocking the watchdog.
"""


def test_heartbeat_monitor_is_a_hang_in_a_nccl_call(tmp_path):
    pm = analyze(_log(tmp_path, HEARTBEAT))
    assert ids(pm)[0] == "NCCL_TIMEOUT"
    f = find(pm, "NCCL_TIMEOUT")
    assert f.first_line == 1
    assert f.facts["ranks"] == [2, 5]
    assert f.facts["stuck_s"] == "600"
    assert f.title["en"].startswith("NCCL watchdog stuck")  # the heartbeat variant's texts
    assert "heartbeat monitor" in f.summary["en"] and "600 s" in f.summary["en"]
    assert "heartbeat monitor" in f.summary["zh"] and "600 秒" in f.summary["zh"]


# hiyouga/LlamaFactory#8549, modelscope/ms-swift#7992: only the "watchdog got stuck" line was pasted
def test_watchdog_got_stuck_line_alone(tmp_path):
    text = ("[rank3]:[E812 09:02:44.503118220 ProcessGroupNCCL.cpp:1746] [PG ID 0 PG GUID 0(default_pg) Rank 3] "
            "ProcessGroupNCCL's watchdog got stuck for 480 seconds without making progress in monitoring enqueued "
            "collectives. This typically indicates a NCCL/CUDA API (e.g., CudaEventDestroy) hang blocking the watchdog.\n")
    pm = analyze(_log(tmp_path, text))
    assert ids(pm) == ["NCCL_TIMEOUT"]
    assert find(pm, "NCCL_TIMEOUT").facts["stuck_s"] == "480"


def test_a_watchdog_timeout_outranks_the_heartbeat_variant(tmp_path):
    text = """
[rank1]:[E1103 07:31:10.004512113 ProcessGroupNCCL.cpp:607] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=812, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600318 milliseconds before timing out.
""" + HEARTBEAT
    f = find(analyze(_log(tmp_path, text)), "NCCL_TIMEOUT")
    assert f.title["en"].startswith("NCCL collective timed out")
    assert f.facts["op"] == "ALLREDUCE" and f.facts["timeout_ms"] == 600000


# --------------------------------------------------------------------------- hard-wrapped watchdog lines

# huggingface/accelerate#157: torch 1.10's watchdog line (no SeqNum) hard-wrapped by the terminal, then the
# main thread's "RuntimeError: NCCL error in:" -- the error is the consequence of the timeout
OLD_WRAPPED = """
[E ProcessGroupNCCL.cpp:325] Some NCCL operations have failed or timed out. Due to the asynchronous nature of CUDA
kernels, subsequent GPU operations might run on corrupted/incomplete data. To avoid this inconsistency, we are taki
ng the entire process down.
terminate called after throwing an instance of 'std::runtime_error'
  what():  [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(OpType=BROADCAST, Timeout(ms)=900000) r
an for 903117 milliseconds before timing out.
Traceback (most recent call last):
  File "finetune.py", line 88, in <module>
    main()
  File "finetune.py", line 61, in main
    accelerator.backward(loss)
RuntimeError: NCCL error in: /opt/conda/conda-bld/pytorch_1634272068185/work/torch/lib/c10d/ProcessGroupNCCL.cpp:1169
"""


def test_wrapped_old_watchdog_line_is_read_and_leads_the_bare_nccl_error(tmp_path):
    path = _log(tmp_path, OLD_WRAPPED)
    ev = [e for e in parse(path).events if e.data.get("tag") == "nccl_timeout"]
    assert [(e.line, e.data["timeout_ms"], e.data["op"], e.data["ran_ms"]) for e in ev] == [(5, 900000, "BROADCAST", None)]
    pm = analyze(path)
    assert ids(pm)[:2] == ["NCCL_TIMEOUT", "NCCL_ERROR"]
    assert "NCCL_ERROR" in find(pm, "NCCL_TIMEOUT").explains


# InternLM/xtuner#354: the wrap falls inside "OpType"
def test_watchdog_line_wrapped_inside_its_fields(tmp_path):
    text = """
[E ProcessGroupNCCL.cpp:828] [Rank 2] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7, OpT
ype=BROADCAST, Timeout(ms)=1800000) ran for 1804410 milliseconds before timing out.
"""
    ev = [e for e in parse(_log(tmp_path, text)).events if e.data.get("tag") == "nccl_timeout"]
    assert len(ev) == 1 and ev[0].data["seq"] == 7 and ev[0].rank == 2


# hiyouga/LlamaFactory#8261: the paste stops after "[Rank N] Watchdog"
def test_watchdog_thread_line_cut_after_watchdog(tmp_path):
    text = ("[rank6]:[E602 04:12:19.771203514 ProcessGroupNCCL.cpp:1896] [PG ID 1 PG GUID 1 Rank 6] Process group "
            "watchdog thread terminated with exception: [Rank 6] Watchdog\n")
    assert ids(analyze(_log(tmp_path, text))) == ["NCCL_TIMEOUT"]


# --------------------------------------------------------------------------- cause order

# tatsu-lab/stanford_alpaca#207, NVIDIA/nccl#2076 (resolved: IB trouble on some nodes): a named network
# failure on one rank, the watchdog timing out on the others
def test_named_nccl_failure_leads_the_timeouts_it_caused(tmp_path):
    text = """
gpu-node7:41822:41990 [3] ib_plugin.c:1105 NCCL WARN NET/IB : Got completion from peer 10.12.4.31<51122> with error 12, opcode 0, len 0, vendor err 129
[rank0]:[E1002 13:20:41.551900177 ProcessGroupNCCL.cpp:607] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=4410, OpType=ALLREDUCE, NumelIn=1048576, NumelOut=1048576, Timeout(ms)=600000) ran for 600042 milliseconds before timing out.
[rank1]:[E1002 13:20:41.551930261 ProcessGroupNCCL.cpp:607] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=4410, OpType=ALLREDUCE, NumelIn=1048576, NumelOut=1048576, Timeout(ms)=600000) ran for 600045 milliseconds before timing out.
"""
    pm = analyze(_log(tmp_path, text))
    assert ids(pm)[:2] == ["NCCL_ERROR", "NCCL_TIMEOUT"]
    assert "NCCL_TIMEOUT" in find(pm, "NCCL_ERROR").explains
    assert find(pm, "NCCL_TIMEOUT").explains == ()


# modelscope/ms-swift#6301: a CUDA OOM on one rank; ten minutes later the others ask for a debug dump
# "due to a collective timeout" (torch >= 2.4), with no watchdog line in the paste
def test_cuda_oom_on_one_rank_explains_the_dump_signal_of_the_others(tmp_path):
    text = """
[rank9]:   File "/opt/env/lib/python3.11/site-packages/transformers/models/qwen2/modeling_qwen2.py", line 180, in forward
[rank9]:     attn_output = torch.nn.functional.scaled_dot_product_attention(
[rank9]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.10 GiB. GPU 1 has a total capacity of 79.11 GiB of which 1.02 GiB is free. Of the allocated memory 70.40 GiB is allocated by PyTorch.
W0311 10:14:02.631000 88102 site-packages/torch/distributed/elastic/multiprocessing/api.py:908] Sending process 88170 closing signal SIGTERM
[rank0]:[E0311 10:24:02.104551873 ProcessGroupNCCL.cpp:1858] [PG ID 0 PG GUID 0(default_pg) Rank 0] Received a dump signal due to a collective timeout from this local rank and we will try our best to dump the debug info. Last enqueued NCCL work: 5120, last completed NCCL work: 5117.
[rank1]:[E0311 10:24:02.104557102 ProcessGroupNCCL.cpp:1575] [PG ID 0 PG GUID 0(default_pg) Rank 1] ProcessGroupNCCL preparing to dump debug info. Include stack trace: 1
"""
    pm = analyze(_log(tmp_path, text))
    assert ids(pm)[:2] == ["CUDA_OOM", "NCCL_TIMEOUT"]
    assert "NCCL_TIMEOUT" in find(pm, "CUDA_OOM").explains
    assert find(pm, "NCCL_TIMEOUT").first_line == 5


# --------------------------------------------------------------------------- launchers

# Lightning-AI/litData#340: a ChildFailedError table as CloudWatch (SageMaker) shows it, each block on one line
def test_childfailederror_rows_flattened_by_a_log_viewer(tmp_path):
    text = """
  | 2025-01-14T03:08:51.220Z | [1]: time : 2025-01-14_03:08:51 host : algo-1 rank : 1 (local_rank: 1) exitcode : -6 (pid: 412) error_file: <N/A> traceback : Signal 6 (SIGABRT) received by PID 412
  | 2025-01-14T03:08:51.221Z | [2]: time : 2025-01-14_03:08:51 host : algo-1 rank : 2 (local_rank: 2) exitcode : -6 (pid: 413) error_file: <N/A> traceback : Signal 6 (SIGABRT) received by PID 413
"""
    path = _log(tmp_path, text)
    ex = [e for e in parse(path).events if e.data.get("tag") == "exit"]
    assert [(e.rank, e.data["local_rank"], e.data["code"], e.data["signal"], e.data["pid"]) for e in ex] == \
        [(1, 1, -6, "SIGABRT", 412), (2, 2, -6, "SIGABRT", 413)]
    pm = analyze(path)
    assert ids(pm) == ["NCCL_TIMEOUT", "EARLY_TERMINATION"]
    assert find(pm, "NCCL_TIMEOUT").explains == ("EARLY_TERMINATION",)


# --------------------------------------------------------------------------- NCCL socket transport

# NVIDIA/nccl#795: a peer crashed and NCCL's socket transport says so in WARN lines
def test_nccl_socket_warn_failures_are_nccl_error(tmp_path):
    text = """
trn-node-4:70122:70301 [2] misc/socket.cc:518 NCCL WARN Net : Call to recv from 10.1.7.19<40211> failed : Broken pipe
trn-node-4:70122:70301 [2] NCCL INFO misc/socket.cc:535 -> 6
trn-node-4:70122:70288 [2] misc/socket.cc:538 NCCL WARN Net : Connection closed by remote peer trn-node-4.cluster<41773>
"""
    pm = analyze(_log(tmp_path, text))
    assert ids(pm) == ["NCCL_ERROR"]
    assert find(pm, "NCCL_ERROR").first_line == 1


def test_nccl_connect_retry_is_not_a_failure(tmp_path):
    # a rank that starts before its peer listens: NCCL retries, the run goes on
    text = ("trn-node-4:70122:70301 [2] misc/socket.cc:484 NCCL WARN Net : Call to connect returned Connection "
            "refused, retrying\n")
    assert "NCCL_ERROR" not in ids(analyze(_log(tmp_path, text)))


# modelscope/ms-swift#6301, the same thread further down: the launcher reports the waiting rank's -6 last
def test_oom_leads_the_dump_and_the_sigabrt_exit_it_caused(tmp_path):
    text = """
[rank9]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.10 GiB. GPU 1 has a total capacity of 79.11 GiB of which 1.02 GiB is free.
[rank0]:[E0311 10:24:02.104551873 ProcessGroupNCCL.cpp:1858] [PG ID 0 PG GUID 0(default_pg) Rank 0] Received a dump signal due to a collective timeout from this local rank and we will try our best to dump the debug info. Last enqueued NCCL work: 5120, last completed NCCL work: 5117.
E0311 10:32:02.911000 88102 site-packages/torch/distributed/elastic/multiprocessing/api.py:882] failed (exitcode: -6) local_rank: 0 (pid: 88160) of binary: /opt/env/bin/python
"""
    pm = analyze(_log(tmp_path, text))
    assert ids(pm)[0] == "CUDA_OOM"
    assert {"NCCL_TIMEOUT", "EARLY_TERMINATION"} <= set(find(pm, "CUDA_OOM").explains)
    assert "EARLY_TERMINATION" in find(pm, "NCCL_TIMEOUT").explains
