"""Real torchrun failures: torch 2.13 elastic + HF Trainer DDP on CPU (gloo), made by fixtures/repro/torchrun.

Line numbers are looked up in the log itself (the first line holding a needle), never hard-coded: the
assertions are about which line logpost cites, parses and blames.
"""

from __future__ import annotations

import pytest

from logpost.analyze import analyze
from logpost.model import Severity, Verdict
from logpost.parsers import parse
from tests.conftest import fixture

SIGKILL = "generated/torchrun_sigkill_rank1.log"
CPU_ALLOC = "generated/torchrun_cpu_alloc_fail_rank1.log"
KEYERROR = "generated/torchrun_collator_keyerror.log"
HEALTHY = "generated/torchrun_healthy.log"
PREEMPT = "generated/torchrun_sigterm_preempted.log"


def line_of(rel: str, needle: str) -> int:
    with open(fixture(rel), encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")  # tqdm redraws end in "\r": a log line ends at "\n" only
    for no, text in enumerate(lines, 1):
        if needle in text:
            return no
    raise AssertionError(f"{needle!r} not in {rel}")


def exits(run):
    return [e for e in run.events if e.data.get("tag") == "exit"]


def ids(pm) -> list[str]:
    return [f.id for f in pm.findings]


def find(pm, sid: str):
    return next(f for f in pm.findings if f.id == sid)


def test_sigkill_of_a_worker_is_host_oom_and_explains_the_termination():
    pm = analyze(fixture(SIGKILL))
    assert pm.verdict == Verdict.FAILED
    assert ids(pm) == ["HOST_OOM", "EARLY_TERMINATION"]
    oom = find(pm, "HOST_OOM")
    assert oom.explains == ("EARLY_TERMINATION",)
    failed = line_of(SIGKILL, "failed (exitcode: -9) local_rank: 1")
    row = line_of(SIGKILL, "exitcode  : -9 (pid:")
    assert oom.first_line == failed and [e.line for e in oom.evidence] == [failed, row]
    assert oom.facts["signal"] == "SIGKILL" and oom.facts["code"] == -9 and oom.facts["rank"] == 1
    assert find(pm, "EARLY_TERMINATION").facts["signal"] == "SIGKILL"
    # rank 0's gloo "Connection closed by peer" is a consequence, not a finding of its own
    assert not {"NCCL_ERROR", "NCCL_TIMEOUT", "CUDA_OOM"} & set(ids(pm))


def test_sigkill_childfailederror_table_of_torch_2_13():
    """torch 2.13 lists the other failures before the root cause and names the signal after the pid:
    ``exitcode  : -9 (pid: N)  (SIGKILL)``."""
    run = parse(fixture(SIGKILL))
    got = [(e.line, e.rank, e.data["code"], e.data["signal"], e.data["local_rank"], e.data.get("root_cause"))
           for e in exits(run)]
    assert got == [
        (line_of(SIGKILL, "failed (exitcode: -9)"), None, -9, "SIGKILL", 1, None),
        (line_of(SIGKILL, "exitcode  : -15"), 0, -15, "SIGTERM", 0, False),
        (line_of(SIGKILL, "exitcode  : -9 (pid:"), 1, -9, "SIGKILL", 1, True),
    ]
    pids = {e.data["pid"] for e in exits(run)}
    closing = [e for e in run.events if e.data.get("tag") == "closing_signal"]
    assert len(closing) == 1 and closing[0].data["signal"] == "SIGTERM" and closing[0].data["pid"] in pids
    gloo = [e for e in run.events if e.kind == "traceback" and "Connection closed by peer" in e.text]
    assert len(gloo) == 1 and gloo[0].rank == 0 and gloo[0].data["exc_type"] == "RuntimeError"


def test_cpu_allocation_failure_is_host_oom_not_cuda_oom():
    pm = analyze(fixture(CPU_ALLOC))
    assert ids(pm) == ["HOST_OOM", "EARLY_TERMINATION"]
    oom = find(pm, "HOST_OOM")
    alloc = line_of(CPU_ALLOC, "DefaultCPUAllocator: can't allocate memory")
    assert oom.first_line == alloc and [e.line for e in oom.evidence] == [alloc]
    assert oom.explains == ("EARLY_TERMINATION",)
    run = pm.run
    tb = next(e for e in run.events if e.line == alloc)
    assert tb.kind == "traceback" and tb.rank == 1 and tb.data.get("tag") != "cuda_oom"
    root = [e for e in exits(run) if e.data.get("root_cause")]
    assert [(e.data["code"], e.data["local_rank"], e.data["signal"]) for e in root] == [(1, 1, None)]
    assert find(pm, "EARLY_TERMINATION").facts["code"] == 1


def test_collator_keyerror_is_the_root_not_the_launcher_exit():
    pm = analyze(fixture(KEYERROR))
    assert ids(pm) == ["DATASET_ERROR", "EARLY_TERMINATION"]
    ds = find(pm, "DATASET_ERROR")
    key = line_of(KEYERROR, "[rank0]: KeyError: 'content'")
    assert ds.first_line == key and [e.line for e in ds.evidence] == [key]
    assert ds.explains == ("EARLY_TERMINATION",)
    run = pm.run
    tb = next(e for e in run.events if e.line == key)
    assert tb.rank == 0 and tb.data["exc_type"] == "KeyError" and any("collate" in f for f in tb.data["frames"])
    # the rank that raised is the table's root cause; the other one was torn down with SIGTERM
    got = {(e.data["local_rank"], e.data["code"], e.data.get("root_cause")) for e in exits(run)
           if e.data.get("root_cause") is not None}
    assert got == {(0, 1, True), (1, -15, False)}
    assert "HOST_OOM" not in ids(pm)


def test_healthy_two_rank_run():
    pm = analyze(fixture(HEALTHY))
    assert pm.verdict == Verdict.HEALTHY
    assert not [f for f in pm.findings if f.severity >= Severity.ERROR]
    assert pm.run.meta.get("completed") and not exits(pm.run)
    train = pm.run.train_rows()
    assert list(train.step) == list(range(1, 41))  # two ranks, one record per step (rank 0 logs)


def test_sigterm_of_torchrun_is_early_termination_by_sigterm_not_host_oom():
    pm = analyze(fixture(PREEMPT))
    assert ids(pm) == ["EARLY_TERMINATION"]
    et = pm.findings[0]
    death = line_of(PREEMPT, "Received 15 death signal, shutting down workers")
    assert et.first_line == death and et.evidence[0].line == death
    assert et.facts["signal"] == "SIGTERM" and et.facts["code"] == -15
    assert "SIGTERM" in et.summary["en"] and "SIGTERM" in et.summary["zh"]
    (ex,) = exits(pm.run)
    assert ex.data["agent"] is True and ex.data["local_rank"] is None and ex.data["launcher"] == "torchrun"
    assert ex.data["pid"] == 14461  # the agent's pid in the glog header, the pid SignalException names
    assert "Process 14461 got signal: 15" in open(fixture(PREEMPT), encoding="utf-8").read()


@pytest.mark.parametrize("text,code,signal", [
    # torch 2.13 (glog header), the line in fixtures/corpus/generated/torchrun_sigterm_preempted.log
    ("W1128 03:02:31.089000 14461 torch/distributed/elastic/agent/server/api.py:753] "
     "Received 15 death signal, shutting down workers", -15, "SIGTERM"),
    # torch 1.x Python logging, a closed ssh session (quoted in a public training-notes page)
    ("WARNING:torch.distributed.elastic.agent.server.api:Received 1 death signal, shutting down workers",
     -1, "SIGHUP"),
    # Python < 3.11 prints the signal enum by name (quoted from a nohup postmortem)
    ("Received Signals.SIGHUP death signal, shutting down workers", -1, "SIGHUP"),
    ("W0616 00:37:22.830000 4015698 torch/distributed/elastic/agent/server/api.py:719] "
     "Received Signals.SIGTERM death signal, shutting down workers", -15, "SIGTERM"),
])
def test_agent_death_signal_forms(tmp_path, text, code, signal):
    p = tmp_path / "x.log"
    p.write_text(text + "\n", encoding="utf-8")
    (ex,) = exits(parse(str(p)))
    assert (ex.data["code"], ex.data["signal"], ex.data["agent"]) == (code, signal, True)
    pm = analyze(str(p))
    assert [f.id for f in pm.findings] == ["EARLY_TERMINATION"] and pm.findings[0].facts["signal"] == signal


DL_KILLED = "generated/torchrun_dataloader_worker_killed.log"


def test_dataloader_worker_killed_by_sigkill_is_host_oom():
    """torchrun says exitcode 1: the SIGKILL is only in the rank's own message about its DataLoader worker."""
    pm = analyze(fixture(DL_KILLED))
    assert ids(pm) == ["HOST_OOM", "EARLY_TERMINATION"]
    oom = find(pm, "HOST_OOM")
    killed = line_of(DL_KILLED, "is killed by signal: Killed.")
    assert oom.first_line == killed and [e.line for e in oom.evidence] == [killed]
    assert oom.explains == ("EARLY_TERMINATION",) and oom.facts["signal"] == "SIGKILL"
    (ev,) = [e for e in pm.run.events if e.line == killed]
    assert ev.kind == "traceback" and ev.rank == 1 and ev.data["exc_type"] == "RuntimeError"
    assert (ev.data["tag"], ev.data["code"], ev.data["launcher"]) == ("exit", -9, "dataloader")
    assert ev.data["pid"] == int(ev.text.split("(pid ")[1].split(")")[0])
    # the earliest exit names the termination, though its traceback event is emitted after later lines
    et = find(pm, "EARLY_TERMINATION")
    assert et.first_line == killed and et.facts["signal"] == "SIGKILL"


def test_dataloader_worker_bus_error_is_shared_memory(tmp_path):
    # the same run with `kill -BUS` of the DataLoader worker (torch 2.13 prints the shm hint itself): the
    # shared-memory form of HOST_OOM (its own texts: /dev/shm, --shm-size), which ended the run with SIGBUS
    text = ("[rank1]: Traceback (most recent call last):\n"
            '[rank1]:   File "/tmp/hfvenv/lib/python3.11/site-packages/torch/utils/data/_utils/signal_handling.py", '
            "line 73, in handler\n"
            "[rank1]:     _error_if_any_worker_fails()\n"
            "[rank1]: RuntimeError: DataLoader worker (pid 15654) is killed by signal: Bus error. It is possible "
            "that dataloader's workers are out of shared memory. Please try to raise your shared memory limit.\n")
    p = tmp_path / "x.log"
    p.write_text(text, encoding="utf-8")
    pm = analyze(str(p))
    assert ids(pm) == ["HOST_OOM", "EARLY_TERMINATION"]
    oom, end = pm.findings
    assert "/dev/shm" in oom.title["en"] and "--shm-size" in oom.remediation["en"][0]
    assert end.facts["signal"] == "SIGBUS" and "/dev/shm" in end.summary["en"]


RECORD = "generated/torchrun_record_redirects_cpu_alloc_fail.log"


def test_record_tracebacks_inside_the_childfailederror_table():
    """Workers under @record with their output redirected: the allocator error is only in the table,
    indented under ``traceback :``; every block of the table is still read."""
    pm = analyze(fixture(RECORD))
    assert ids(pm) == ["HOST_OOM", "EARLY_TERMINATION"]
    alloc = line_of(RECORD, "  RuntimeError: [enforce fail at alloc_cpu.cpp")
    oom = find(pm, "HOST_OOM")
    assert oom.first_line == alloc and oom.explains == ("EARLY_TERMINATION",)
    run = pm.run
    got = [(e.line, e.data["code"], e.data["local_rank"], e.data.get("root_cause")) for e in exits(run)]
    assert got == [(line_of(RECORD, "failed (exitcode: 1)"), 1, 1, None),
                   (line_of(RECORD, "exitcode  : -15"), -15, 0, False),
                   (line_of(RECORD, "exitcode  : 1 (pid"), 1, 1, True)]
    tbs = {e.line: e for e in run.events if e.kind == "traceback" and e.data.get("exc_type") == "RuntimeError"}
    gloo = line_of(RECORD, "  RuntimeError: [/__w/pytorch")
    assert sorted(tbs) == [gloo, alloc]
    assert tbs[alloc].data["start_line"] == line_of(RECORD, "Root Cause") + 7  # "  traceback : Traceback (most..."
    assert tbs[alloc].data["frames"][-1].endswith("in on_step_end")


RECORD_KEY = "generated/torchrun_record_collator_keyerror.log"


def test_folded_exception_keeps_its_first_line():
    """@record without redirects: the KeyError on rank 0's stderr (emitted when its traceback ends, at
    the end of the log) and again in the table fold into one event that cites the first occurrence."""
    pm = analyze(fixture(RECORD_KEY))
    assert ids(pm) == ["DATASET_ERROR", "EARLY_TERMINATION"]
    first = line_of(RECORD_KEY, "[rank0]: KeyError: 'content'")
    table = line_of(RECORD_KEY, "  KeyError: 'content'")
    assert first < table
    (ev,) = [e for e in pm.run.events if e.data.get("exc_type") == "KeyError"]
    assert (ev.line, ev.last_line, ev.count, ev.rank) == (first, table, 2, 0)
    assert find(pm, "DATASET_ERROR").first_line == first
    assert [e.data.get("root_cause") for e in exits(pm.run)] == [None, False, True]


def test_crash_is_placed_at_the_step_it_happened():
    # the collator's KeyError comes after the record of step 49: the finding says so (and its line)
    pm = analyze(fixture("generated/torchrun_collator_keyerror.log"))
    root = pm.findings[0]
    train = pm.run.train_rows()
    before = train[train.line <= root.first_line]
    assert root.id == "DATASET_ERROR" and root.first_step == int(before.step.iloc[-1]) == 49
