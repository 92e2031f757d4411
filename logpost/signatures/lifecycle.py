"""Run lifecycle: EARLY_TERMINATION (a process died, the log stops mid-run or inside a traceback) and
SLOW_THROUGHPUT (throughput that collapsed, very slow steps, or a single-process run that stalled)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import regex

from logpost.model import Evidence, RunLog, Severity
from logpost.signatures.base import (
    Hit,
    detector,
    event_evidence,
    exits,
    find_events,
    multi_process,
    ordered_train,
    row_evidence,
)
from logpost.signatures.base import first_value as _first
from logpost.signatures.base import note as _note
from logpost.signatures.crash import CUDA_FAULT, fatal_exceptions
from logpost.signatures.hang import find_stall, tail_lines

KILLED = r"^\s*Killed\s*$|CANCELLED AT .* DUE TO TIME LIMIT|Main process received SIG(?:TERM|INT)"
MEANING = {  # what an exit code means in practice (shared/formats/deepspeed.md, section 5)
    9: ("SIGKILL: usually the kernel OOM killer on host RAM, or preemption",
        "SIGKILL：多半是主机内存不足被内核 OOM killer 杀掉，也可能是被抢占"),
    6: ("SIGABRT: an abort, typically the NCCL watchdog after a collective timed out",
        "SIGABRT：进程 abort，常见于 NCCL watchdog 在集合通信超时后终止进程"),
    11: ("SIGSEGV: a native crash in an extension, NCCL or the driver",
         "SIGSEGV：扩展、NCCL 或驱动里的原生崩溃（段错误）"),
    7: ("SIGBUS: often /dev/shm exhausted in a container", "SIGBUS：容器里 /dev/shm 不够用时常见"),
    15: ("SIGTERM: stopped by a scheduler, a time limit or a user", "SIGTERM：被调度器、时间限制或用户停掉"),
    1: ("SIGHUP: the terminal or ssh session that started it closed; run it under nohup, tmux or the scheduler",
        "SIGHUP：启动它的终端或 ssh 会话断开了；用 nohup、tmux 或调度器来跑"),
}
# throughput columns frameworks log, best first (torchtitan tps, Axolotl tokens/s, DeepSpeed samples/s)
THROUGHPUT_COLUMNS = ("tps", "tokens/train_per_sec_per_gpu", "tokens_per_second_per_gpu", "SamplesPerSec",
                      "samples_per_second", "RunningAvgSamplesPerSec", "throughput")
# time per step columns, lower is better (Megatron "elapsed time per iteration")
STEP_TIME_COLUMNS = ("iteration_time_s", "iteration_time_ms", "step_time")
_SEC_PER_IT = regex.compile(r"(?P<sec>\d+(?:\.\d+)?)s/it\b")


DONE_SHARE = 0.98  # a last step within 2% of the total is a finished run whose summary was not printed


def total_steps(run: RunLog) -> float | None:
    """The run's planned number of optimizer steps: the ``***** Running training *****`` header, a
    ``max_steps``, or the ``N/M`` of a progress bar or a Megatron iteration line."""
    total: float | None = run.facts.total_steps
    frame = run.frame
    if not total and "total_steps" in frame and frame["total_steps"].notna().any():
        total = float(frame["total_steps"].dropna().iloc[-1])
    return float(total) if total else None


def ended_normally(run: RunLog) -> bool:
    """The log shows the run's normal end: a final summary (HF ``train_runtime`` / ``TrainOutput``, a
    ``***** train metrics *****`` table), "Training completed", or a last step at the total steps."""
    if run.facts.finished:
        return True
    frame = run.frame
    total = total_steps(run)
    steps = frame.loc[frame["kind"].isin(("train", "optimizer")), "step"].dropna()
    return bool(total and len(steps) and float(steps.max()) >= DONE_SHARE * total)


@detector("EARLY_TERMINATION")
def early_termination(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """A process exit with a non-zero code or a kill, a log that ends inside a traceback (variant
    ``cut_traceback``), or a log that stops well before its total steps without the final summary."""
    died = exits(run)
    killed = find_events(run, ("killed",), KILLED, kinds=("error", "warning", "info", "traceback"))
    if died or killed:
        first = died[0] if died else None
        evidence = [event_evidence(x.event) for x in died[:3]] + [event_evidence(e) for e in killed[:2]]
        evidence.sort(key=lambda e: e.line or 0)
        facts = {"code": first.code if first else None, "signal": first.signal_name if first else None}
        hit = Hit(evidence=evidence, confidence=params["exit_confidence"], first_line=evidence[0].line, facts=facts)
        if first is not None and first.signal in MEANING:
            en, zh = MEANING[first.signal]
            _note(hit, f"Exit code {first.code} = {en}.", f"退出码 {first.code} = {zh}。")
        elif first is not None and first.code == 1:
            if any(e.kind == "traceback" and (e.data or {}).get("exc_type") for e in run.events):
                _note(hit, "Exit code 1 is a Python exception in a worker: its traceback above names the cause.",
                      "退出码 1 表示某个 worker 抛了 Python 异常，上面的 traceback 就是原因。")
            else:
                rank = _rank_of(first.event)
                _note(hit, "Exit code 1 is a Python exception in a worker, but its traceback is not in this log: "
                      f"get the full stderr of {'rank ' + str(rank) if rank is not None else 'the failed rank'} "
                      "(torchrun `--tee 3` or `--log-dir`, the job's .err file).",
                      "退出码 1 表示某个 worker 抛了 Python 异常，但这份日志里没有它的 traceback："
                      f"去拿{'rank ' + str(rank) if rank is not None else '出错的那个 rank'} 完整的 stderr"
                      "（torchrun 加 `--tee 3` 或 `--log-dir`，或者作业的 .err 文件）。")
        return [hit]
    if run.meta.get("live"):  # a log still being written (watch, the callback): where it ends now is not the run's end
        return []
    if run.facts.truncated:  # the file was cut short (half-copied, still being written): its end is not the run's
        return _crashed(run, params)
    return _cut_traceback(run, params) or _crashed(run, params) or _truncated(run, params)


def _rank_of(event: Any) -> int | None:
    data = event.data or {}
    for key in ("local_rank", "rank"):
        if isinstance(data.get(key), int):
            return int(data[key])
    return event.rank if isinstance(event.rank, int) else None


def _crashed(run: RunLog, params: Mapping[str, Any]) -> list[Hit]:
    """The run died of an exception (variant ``crashed``): the last traceback, with its exception line, and
    no training record after it. The family detectors (CONFIG_ERROR, DATASET_ERROR, ENV_ERROR, CUDA_OOM ...)
    place it when they can and come first; this names it whatever it is, a CUDA kernel fault too."""
    if ended_normally(run):
        return []
    fatal = fatal_exceptions(run)
    # one that a family already placed (CONFIG_ERROR ..., or a tagged CUDA OOM) is that finding's to report
    if not fatal or fatal[-1].sig is not None or (fatal[-1].event.data or {}).get("tag"):
        return []
    last = fatal[-1].event
    data = last.data or {}
    message = str(data.get("message") or "")
    facts: dict[str, Any] = {"exc_type": data.get("exc_type"), "message": message[:200] or None,
                             "rank": last.rank}
    hit = Hit(evidence=[event_evidence(last)], confidence=params["crashed_confidence"], first_line=last.line,
              facts=facts, variant="crashed")
    frames = list(data.get("frames") or ())
    if frames:
        facts["frame"] = _short_frame(frames[-1])
    if CUDA_FAULT.search(message):
        _note(hit, "It is a CUDA kernel fault: CUDA reports it asynchronously, so the frames may point past the kernel "
                   "that failed; rerun with `CUDA_LAUNCH_BLOCKING=1` to see the real one. A device-side assert in "
                   "an embedding or a loss is usually a token or label id out of range; an illegal memory access is "
                   "usually a kernel bug (flash-attn, a custom op) or a driver/hardware fault.",
              "这是 CUDA kernel 故障：CUDA 是异步报错的，调用栈可能已经越过了真正出错的 kernel；用 "
              "`CUDA_LAUNCH_BLOCKING=1` 重跑才能看到真正的位置。embedding 或 loss 里的 device-side assert "
              "多半是 token id 或 label id 越界；illegal memory access 多半是 kernel 的 bug（flash-attn、自定义算子），"
              "或者驱动、硬件故障。")
    return [hit]


_FRAME_TEXT = regex.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<no>\d+), in (?P<func>.+)$')


def _cut_traceback(run: RunLog, params: Mapping[str, Any]) -> list[Hit]:
    """The log ends inside a Python traceback: the run visibly crashed, but the exception line that
    names the cause was cut off (copied short, or lost in an unflushed buffer). Nothing is guessed
    about the cause; the hit shows where it happened."""
    cut = [e for e in run.events if (e.data or {}).get("tag") == "traceback_cut"]
    if not cut or run.facts.finished:
        return []
    if max(int(e.data.get("end_line") or e.line) for e in cut) < run.lines:
        return []  # the log goes on after it: an exception line we could not read, not a cut
    e = min(cut, key=lambda x: x.line)
    frames = list(e.data.get("frames") or ())
    facts: dict[str, Any] = {"rank": e.rank, "frame": _short_frame(frames[-1]) if frames else None,
                             "tracebacks": len(cut)}
    evidence = [event_evidence(e)]
    evidence += _innermost_frame(run, e, params)
    train = run.facts.train
    before = train[train["line"].notna() & (train["line"] < e.line)]
    if len(before):
        last = before.sort_values("line", kind="stable").tail(1)
        evidence = row_evidence(run, last) + evidence
        facts["step"] = _first(last, "step")
    else:
        progress = [p for p in run.events if (p.data or {}).get("tag") == "progress" and p.line <= e.line]
        if progress:
            facts["step"], facts["total"] = progress[-1].data.get("step"), progress[-1].data.get("total")
    return [Hit(evidence=evidence, confidence=params["cut_confidence"], first_step=facts.get("step"),
                first_line=e.line, facts=facts, variant="cut_traceback")]


def _short_frame(frame: str) -> str:
    """``/long/path/src/pkg/workflow.py:73 in run_sft`` -> ``pkg/workflow.py:73 in run_sft``."""
    path, _, rest = frame.partition(":")
    return "/".join(path.split("/")[-2:]) + ":" + rest if rest else frame


def _innermost_frame(run: RunLog, e: Any, params: Mapping[str, Any]) -> list[Evidence]:
    """The last ``File "...", line N, in f`` line of the traceback and the source line under it
    (``train_result = trainer.train(...)``), re-read from the end of the log."""
    lines = [ln for ln in tail_lines(run, params, since=e.line) or () if e.rank is None or ln.rank == e.rank]
    for i in range(len(lines) - 1, -1, -1):
        if _FRAME_TEXT.match(lines[i].text):
            out = [Evidence(lines[i].no, lines[i].text.strip()[:500])]
            nxt = lines[i + 1] if i + 1 < len(lines) else None
            if nxt is not None and nxt.text.startswith((" ", "\t")) and not _FRAME_TEXT.match(nxt.text):
                out.append(Evidence(nxt.no, nxt.text.strip()[:500]))
            return out
    return []


def _truncated(run: RunLog, params: Mapping[str, Any]) -> list[Hit]:
    """The log stops mid-run (variant ``ends_mid_run``): no normal end, no exit, the last step below
    the total the header, ``max_steps`` or an ``N/M`` bar gave. A log holding the run's start (the
    header that gives the total) is a whole log; an excerpt needs ``min_records`` to count."""
    if ended_normally(run):
        return []
    total = total_steps(run)
    train = ordered_train(run)
    rows = train[train["step"].notna()]
    if rows.empty:
        rows = run.frame[(run.frame["kind"] == "optimizer") & run.frame["step"].notna()]
    # the log holds the run's start: the header that announced the total comes before the first record
    header = run.facts.stated.get("header:total_steps")
    first_line = rows["line"].dropna()
    whole = bool(header and (first_line.empty or header[0] < float(first_line.min())))
    if not total or rows.empty or (not whole and len(rows) < params["min_records"]):
        return []
    if find_stall(run, params) is not None:
        return []  # it stalled: SLOW_THROUGHPUT / NCCL_TIMEOUT say so with the proof
    last_row = rows.sort_values(["step", "line"], kind="stable").tail(1)
    last = int(last_row["step"].iloc[0])
    if last >= DONE_SHARE * total:
        return []
    facts = {"last_step": last, "total": int(total), "pct": round(100 * last / total, 1)}
    evidence = row_evidence(run, last_row)
    if header:
        evidence.insert(0, Evidence(header[0], header[1]))
    last_text = run.facts.last_line_text
    if last_text and run.lines and not any(e.line == run.lines for e in evidence):
        evidence.append(Evidence(run.lines, last_text))
    return [Hit(evidence=evidence, confidence=params["truncated_confidence"], first_step=last,
                first_line=_first(last_row, "line"), facts=facts, severity=Severity.WARNING,
                variant="ends_mid_run")]


@detector("SLOW_THROUGHPUT")
def slow_throughput(run: RunLog, params: Mapping[str, Any]) -> Iterable[Hit]:
    """Throughput that falls well below its own earlier level, or steps that take many minutes; or a
    single-process run that stopped making progress while it kept logging (variant ``stall``; in a
    multi-rank run the same stall is a hang in a collective, NCCL_TIMEOUT)."""
    if not multi_process(run):
        st = find_stall(run, params)
        if st is not None:
            return [Hit(evidence=st.evidence(), confidence=params["hang_confidence"], first_step=st.step,
                        first_line=st.anchor.line, facts=st.facts(), variant="stall")]
    frame = ordered_train(run)
    for col in THROUGHPUT_COLUMNS + STEP_TIME_COLUMNS:
        if col not in frame:
            continue
        rows = frame[frame[col].notna() & (pd.to_numeric(frame[col], errors="coerce") > 0)]
        n = len(rows)
        if n < params["min_records"]:
            continue
        v = pd.to_numeric(rows[col])
        if col in STEP_TIME_COLUMNS:
            v = 1.0 / v  # steps per unit time: the same "higher is better" test
        early = float(v.iloc[: n // 2].median())
        late = float(v.iloc[-max(2, n // 4):].median())
        if early > 0 and late <= params["drop_share"] * early:
            pos = int((v <= params["drop_share"] * early).to_numpy().argmax())
            hit = Hit(evidence=row_evidence(run, rows.iloc[:1]) + row_evidence(run, rows.iloc[pos:pos + 1]),
                      confidence=params["drop_confidence"], first_step=_first(rows.iloc[pos:], "step"),
                      first_line=_first(rows.iloc[pos:], "line"), facts={"column": col})
            if col in STEP_TIME_COLUMNS:
                _note(hit, f"{col} rose from a median of {1 / early:.4g} to {1 / late:.4g} ({early / late:.1f}x slower).",
                      f"{col} 的中位数从 {1 / early:.4g} 涨到了 {1 / late:.4g}（慢了 {early / late:.1f} 倍）。")
            else:
                _note(hit, f"{col} fell from a median of {early:.4g} to {late:.4g} ({100 * late / early:.0f}%).",
                      f"{col} 的中位数从 {early:.4g} 掉到了 {late:.4g}（只剩 {100 * late / early:.0f}%）。")
            return [hit]
    slow = []
    for e in run.events:
        m = _SEC_PER_IT.search(e.text)
        if m and float(m.group("sec")) >= params["max_sec_per_step"]:
            slow.append((e, float(m.group("sec"))))
    if slow:
        e, sec = slow[0]
        hit = Hit(evidence=[event_evidence(e)], confidence=params["slow_confidence"], first_line=e.line,
                  facts={"column": "s/it"})
        _note(hit, f"The progress bar shows {sec:g} s per step.", f"进度条显示每步要 {sec:g} 秒。")
        return [hit]
    return []
