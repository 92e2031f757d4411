"""Ingestion robustness: compressed input, stdin, encodings, huge lines, junk, truncation; and a
hypothesis test that no text or bytes make a parser raise."""

from __future__ import annotations

import gzip
import io
import os
import sys

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logpost.cli import main
from logpost.model import InputError
from logpost.parsers import line_parsers, normalise, parse
from logpost.parsers.normalise import BLOCK, Matcher, Scanner, lift_rank, split_line
from tests.conftest import fixture

DICT = b"{'loss': 1.5, 'grad_norm': 0.5, 'learning_rate': 1e-05, 'epoch': 0.1}"
OVERFLOW = ("[2023-04-28 06:51:30,648] [INFO] [loss_scaler.py:181:update_scale] [deepspeed] OVERFLOW! Rank 0 "
            "Skipping step. Attempted loss scale: 65536, reducing to 32768")


def write(tmp_path, data: bytes, name: str = "x.log") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_gz_and_stdin_same_as_file(tmp_path, monkeypatch):
    raw = open(fixture("deepspeed/torchrun-childfailed-sigabrt-after-watchdog-simpletuner-759.log"), "rb").read()
    plain = parse(write(tmp_path, raw))
    gz = parse(write(tmp_path, gzip.compress(raw), "x.log.gz"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    std = parse("-")
    for run in (gz, std):
        assert [(e.line, e.text, dict(e.data)) for e in run.events] == \
               [(e.line, e.text, dict(e.data)) for e in plain.events]
    assert std.source == "<stdin>"


def test_crlf_gbk_invalid_utf8(tmp_path):
    text = ("[WARNING|trainer.py:1] 数据集 警告\r\n" + OVERFLOW + "\r\n").encode("gbk") + DICT + b"\r\n"
    run = parse(write(tmp_path, text + b"RuntimeError: caf\xe9 \xff\xfe\xc3\r\n"))
    assert run.lines == 4 and len(run.train_rows()) == 1
    warn = [e for e in run.events if e.kind == "warning" and e.line == 1]
    assert warn and "数据集" in warn[0].text  # GBK decoded, evidence readable
    assert [e.data["next_scale"] for e in run.events if e.data.get("tag") == "overflow"] == [32768.0]
    err = [e for e in run.events if e.line == 4]
    assert err and err[0].text.startswith("RuntimeError: caf")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be-bom"])
def test_utf16_log_reads_like_its_utf8(tmp_path, encoding):
    # PowerShell 5's `python train.py > train.log` writes UTF-16 with a BOM
    from logpost.analyze import analyze
    from logpost.report.appendix import excerpts

    src = fixture("generated/axolotl_dev_model_role.log")
    text = open(src, encoding="utf-8").read()
    data = text.encode("utf-16") if encoding == "utf-16" else b"\xfe\xff" + text.encode("utf-16-be")
    path = write(tmp_path, data, "u16.log")
    pm, ref = analyze(path), analyze(src)
    assert [(f.id, f.first_line, f.first_step) for f in pm.findings] == \
           [(f.id, f.first_line, f.first_step) for f in ref.findings]
    assert pm.run.lines == ref.run.lines and pm.run.frame["loss"].fillna(-1).tolist() == ref.run.frame["loss"].fillna(-1).tolist()
    (ex,) = excerpts(path, [740], context=0)  # cited lines are re-read as the parsers read them
    assert "total_supervised_tokens: 0" in ex.lines[0].text


def test_crlf_paste_that_lost_its_brace(tmp_path):
    # the first line of a source is read whatever it holds (pastes are cut there), also with a CR in it
    text = b"'loss': 1.2, 'learning_rate': 1e-05, 'epoch': 0.1}\r\n{'loss': 1.1, 'learning_rate': 1e-05, 'epoch': 0.2}\r\n"
    assert list(parse(write(tmp_path, text)).train_rows().loss) == [1.2, 1.1]


@pytest.mark.parametrize("line", [
    "step=inf loss=2.0", "step=1e300 loss=1.0", "step=nan loss=1",
    "Step: 99999999999999999999999999 {'loss': 1.0, 'epoch': 0.2}",
    "01/29 21:35:34 - mmengine - INFO - Iter(train) [ 99999999999999999999999/720]  loss: 2.6900",
    " 50%|##   | 99999999999999999999999/99999999999999999999999 [00:01<00:01, 1.0it/s]{'loss': 1.0, 'epoch': 0.1}",
    "[Rank 0] step=99999999999999999999999, skipped=0, lr=[1e-05], mom=[(0.9, 0.999)]",
])
def test_absurd_step_numbers_are_no_steps(tmp_path, line):
    run = parse(write(tmp_path, (line + "\n").encode() + b"step=5 loss=1.0\n"))
    assert run.frame["step"].dropna().le(1 << 53).all()


def test_single_100mb_line(tmp_path):
    size = 100 * 1024 * 1024
    p = tmp_path / "long.log"
    with open(p, "wb") as fh:
        fh.write(DICT + b"\n")
        chunk = b"x" * (1 << 20)
        for _ in range(size >> 20):
            fh.write(chunk)
        fh.write(b" RuntimeError: at the end\n" + DICT + b"\n")
    run = parse(str(p))
    assert run.lines == 3 and list(run.train_rows().line) == [1, 3]


def test_binary_junk_empty_truncated(tmp_path):
    junk = bytes(range(256)) * 4000 + b"\x00\x1b[31m" + DICT
    with pytest.raises(InputError, match="binary data, not a log"):  # judged on its first bytes
        parse(write(tmp_path, junk))
    start = (DICT + b"\n") * 64  # 4.6 KB of log, then the junk: read through, nothing raises
    assert len(parse(write(tmp_path, start + junk)).train_rows()) == 65
    with pytest.raises(InputError, match="empty file"):
        parse(write(tmp_path, b"", "empty.log"))
    cut = parse(write(tmp_path, DICT + b"\n" + DICT[:30], "cut.log"))  # last line cut mid-dict
    assert cut.lines == 2 and len(cut.train_rows()) == 1


def test_out_of_order_buffered_output(tmp_path):
    # stdout (dicts) and stderr (tqdm, warnings) buffered separately: the dicts arrive in bursts, the
    # bars later; logged steps keep their order and nothing raises
    lines = [f'{{"step": {s}, "loss": {3 - s / 10}}}' for s in (3, 1, 2)]
    run = parse(write(tmp_path, ("\n".join(lines) + "\n").encode()))
    assert sorted(run.train_rows().step) == [1, 2, 3]


def test_lines_across_block_boundaries(tmp_path):
    # a marker line that straddles the 4 MiB block boundary keeps its physical line number
    filler = b"." * 99 + b"\n"
    n = BLOCK // len(filler)
    data = filler * n + b"x" * 60 + DICT + b"\n" + OVERFLOW.encode() + b"\n"
    run = parse(write(tmp_path, data))
    assert list(run.train_rows().line) == [n + 1]
    assert [e.line for e in run.events] == [n + 2]


def test_missing_unreadable_and_empty_dir_exit_2(tmp_path):
    runner = CliRunner()
    for target, needle in ((tmp_path / "nope.log", "no such file"), (tmp_path, "holds no logs")):
        res = runner.invoke(main, ["analyze", str(target)])
        assert res.exit_code == 2 and needle in res.stderr and str(target) in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(main, ["frame", str(tmp_path / "nope.log")])
    assert res.exit_code == 2 and "no such file" in res.stderr
    bad = write(tmp_path, b"\x1f\x8b\x08\x00garbage-not-gzip", "bad.log.gz")
    with pytest.raises(InputError, match="bad.log.gz"):
        parse(bad)
    whole = gzip.compress(b"".join(DICT + b"\n" for _ in range(5000)))
    cut = parse(write(tmp_path, whole[: len(whole) // 2], "cut.log.gz"))  # copied while being written
    assert 0 < len(cut.train_rows()) < 5000
    assert cut.meta["truncated"] == {"file": str(tmp_path / "cut.log.gz"), "line": cut.lines,
                                     "byte": cut.meta["bytes"], "gz": True}


def test_frame_command_outputs(tmp_path):
    import pandas as pd

    from logpost.frame import COLUMNS

    runner = CliRunner()
    log = fixture("deepspeed/healthy-steps-samplespersec-notebook-ds-1825.log")
    for ext in (".csv", ".parquet", ".json"):
        out = tmp_path / f"metrics{ext}"
        res = runner.invoke(main, ["frame", log, "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 0
    back = pd.read_parquet(tmp_path / "metrics.parquet")
    for col in COLUMNS:
        assert str(back[col.name].dtype) == col.dtype, col.name
    assert list(back.step) == [40, 50, 60]
    table = pd.read_json(tmp_path / "metrics.json", orient="table")
    assert list(table.kind) == ["optimizer"] * 3
    res = runner.invoke(main, ["frame", log])
    assert res.exit_code == 0 and res.stdout.splitlines()[0].startswith("step,step_source,kind")
    res = runner.invoke(main, ["frame", log, "-o", str(tmp_path / "m.xlsx")])
    assert res.exit_code == 2 and "unknown frame format" in res.stderr


# ------------------------------------------------------------------------------------ hypothesis

# pieces of real lines, so generated input reaches the parsers' code paths and not only the scanner
PIECES = [DICT, OVERFLOW.encode(), b"Traceback (most recent call last):", b'  File "a.py", line 1, in f',
          b"ValueError: x", b"[rank1]: ", b"[default0]:", b"\r", b"\n", b"\r\n", b"\x1b[33m", b"[39m", b"%|###| 3/10 [",
          b"step=10, skipped=2, lr=[1e-05], mom=[(0.9, 0.999)]", b"exits with return code = -9", b"Killed",
          b"failed (exitcode: -9) local_rank: 1 (pid: 3)", b"ChildFailedError:", b"Root Cause", b"[0]:",
          b"  exitcode  : -6 (pid: 5)", b"WorkNCCL(SeqNum=1, OpType=ALLREDUCE, Timeout(ms)=600000) ran for 9 ms",
          b"Watchdog caught collective operation timeout", b"CUDA out of memory. Tried to allocate 2.00 GiB",
          b'{"step": 1, "loss": 2}', b"{'loss': nan, 'eval_loss': inf}", b"***** train metrics *****",
          b"  train_loss = 0.1", b"iteration 5/ 10 | lm loss: 1.0E+00 | elapsed time per iteration (ms): 1 |",
          b"step: 3  loss: 2.0  memory: 1GiB(1%)", b"\xff\xfe", "数据".encode("gbk"), b"\x00", b"   "]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40)), max_size=40))
def test_parse_never_raises_on_bytes(tmp_path, pieces):
    path = tmp_path / "h.log"
    data = b"".join(pieces)
    path.write_bytes(data)
    try:  # empty, binary or not gzip: one clear error naming the file; else read as far as it goes
        run = parse(str(path))
    except InputError as exc:
        assert str(exc).startswith(str(path) + ": ") and "\n" not in str(exc)
        return
    assert run.lines >= 0 and len(run.texts) == len(run.frame)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_normaliser_never_raises_on_text(text):
    for line in split_line(1, text.encode("utf-8", "surrogatepass")):
        assert line.no == 1 and "\r" not in line.text
    lift_rank(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=64))
def test_scanner_line_numbers_match_grep(data, block):
    """Whatever the bytes and block size, a handed-out line's number is its grep -n number."""
    markers = (b"E", b"{'")
    sc = Scanner(io.BytesIO(data), markers, block=block)
    phys = data.split(b"\n")
    for no, raw in sc:
        assert raw == phys[no - 1][: len(raw)]
    assert sc.lines == data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=8))
def test_matcher_finds_the_lines_holding_a_marker(data, markers):
    """Compiled or not, the matcher hands out exactly the lines holding a marker (as a line filter would)."""
    starts = Matcher(tuple(markers)).starts(data)
    offsets, off = [], 0
    for line in data.split(b"\n"):
        if any(m in line for m in markers if b"\n" not in m):
            offsets.append(off)
        off += len(line) + 1
    if not any(b"\n" in m for m in markers):
        assert starts == offsets


def test_matcher_on_junk_dense_with_markers():
    # more matches than MAX_MATCHES in one block (junk, not a log): still every line holding one, bounded
    junk = b"E0" * normalise.MAX_MATCHES + b"\r{'x\n"
    data = junk + b"plain\n" + b"x E0\n"
    m = Matcher((b"E0", b"{'"))
    assert m.starts(data) == [0, len(junk) + 6]
    assert len(m.ends(data)) <= normalise.MAX_MATCHES + 3


@pytest.mark.skipif(normalise.hs is None, reason="Hyperscan has no wheel on this platform")
def test_fallback_search_finds_the_same_lines(monkeypatch):
    markers = tuple(m.encode() for p in line_parsers() for m in p.markers)
    compiled = Matcher(markers)
    monkeypatch.setattr(normalise, "hs", None)
    plain = Matcher(markers)
    assert plain._db is None and compiled._db is not None
    for rel in ("generated/axolotl_dev_model_role.log", "deepspeed/exit-9-torchrun-zero-partition-alpaca-202.log",
                "hf/llava-918-lora-loss-spike-tqdm-lines.log"):
        data = open(fixture(rel), "rb").read()
        assert compiled.starts(data) == plain.starts(data) != []


def test_hypothesis_corpus_sanity():
    # the hypothesis pieces are real: each parses to something on its own
    assert os.path.exists(fixture("deepspeed/fp16-overflow-hysteresis-startup-ds-931.log"))


@pytest.mark.parametrize("cut", ['"log_history"', '    {'])
def test_trainer_state_excerpt(tmp_path, cut):
    # a paste of log_history from the key, or from an entry, and cut anywhere at the end: the entries
    # that are whole become records at their logged steps
    raw = open(fixture("generated/hf_healthy.trainer_state.json"), encoding="utf-8").read()
    whole = parse(fixture("generated/hf_healthy.trainer_state.json"))
    start = raw.index(cut, raw.index('"log_history"') + (len(cut) if cut.strip() == "{" else 0))
    excerpt = raw[start: start + len(raw) // 2]
    run = parse(write(tmp_path, excerpt.encode(), "state_excerpt.txt"))
    steps = list(run.train_rows().step)
    assert len(steps) > 10 and steps == list(whole.train_rows().step[: len(steps)])
    assert run.frameworks[0] == "hf"


def test_trainer_state_cut_short(tmp_path):
    raw = open(fixture("generated/hf_healthy.trainer_state.json"), "rb").read()
    whole = parse(fixture("generated/hf_healthy.trainer_state.json"))
    run = parse(write(tmp_path, raw[: len(raw) // 2], "trainer_state.json"))
    n = len(run.train_rows())
    assert 0 < n < len(whole.train_rows())
    assert run.meta["truncated"] == {"file": str(tmp_path / "trainer_state.json"), "line": run.lines,
                                     "byte": len(raw) // 2, "gz": False}
    assert list(run.train_rows().step) == list(whole.train_rows().step[:n])


@pytest.mark.parametrize("rel", ["generated/axolotl_dev_model_role.log", "generated/hf_eval_overfit.log",
                                 "full/hykun1989__360-LLaMA-Factory-grpo__trainer_log.jsonl",
                                 "deepspeed/hang-at-eval-no-nccl-timeout-bloom176b-chronicles.log",
                                 "hf/tinyllama-153-fp16-train-metrics-eval-nan.log"])
def test_packed_records_give_the_same_frame(monkeypatch, rel):
    """Records packed into typed columns (as in a large log) rebuild exactly the frame of plain dicts."""
    import pandas as pd

    from logpost.parsers.base import Records

    plain = parse(fixture(rel))
    monkeypatch.setattr(Records, "BATCH", 3)
    monkeypatch.setattr(Records, "TAIL", 1)
    packed = parse(fixture(rel))
    pd.testing.assert_frame_equal(plain.frame, packed.frame)
    assert plain.texts == packed.texts


def plain_and_packed(tmp_path, monkeypatch, lines, batch, tail):
    """The same log parsed with the default record batches, then packed every ``batch`` records."""
    from logpost.parsers.base import Records

    text = ("\n".join(lines) + "\n").encode()
    plain = parse(write(tmp_path, text))
    monkeypatch.setattr(Records, "BATCH", batch)
    monkeypatch.setattr(Records, "TAIL", tail)
    return plain, parse(write(tmp_path, text, "p.log"))


def test_packed_mixed_types(tmp_path, monkeypatch):
    lines = []
    for i in range(40):
        if i % 3 == 0:
            lines.append(f'{{"step": {i}, "loss": {i}, "lr": 0, "note": "x{i}"}}')  # ints and a string
        elif i % 3 == 1:
            lines.append(f"{{'loss': nan, 'grad_norm': {i}.5, 'learning_rate': 1e-05, 'epoch': 0.{i}}}")
        else:
            lines.append(f"[INFO] [logging.py:96:log_dist] [Rank 0] step={i}, skipped=1, lr=[0.1], mom=[0.9]")
    plain, packed = plain_and_packed(tmp_path, monkeypatch, lines, 4, 2)
    import pandas as pd

    pd.testing.assert_frame_equal(plain.frame.drop(columns="source"), packed.frame.drop(columns="source"))
    assert packed.frame.note.dropna().iloc[0] == "x0" and packed.frame.loss.isna().sum() > 0


def test_packed_rows_and_dicts_of_one_shape(tmp_path, monkeypatch):
    """The same metric dict recorded as a row (fast lane) and as a dict (the generic path: a colour code the
    normaliser strips) packs into one group, in order."""
    import pandas as pd

    lines = []
    for i in range(1, 41):
        bar = f"  {i}%|##   | {i}/40 [00:0{i % 10}<00:10,  1.00it/s]"
        tail = "\x1b[0m" if i % 3 == 0 else ""
        lines.append(f"{bar}\r{{'loss': {1 + i / 100}, 'grad_norm': {i}.5, 'learning_rate': 1e-05, 'epoch': 0.{i:02d}}}{tail}")
    plain, packed = plain_and_packed(tmp_path, monkeypatch, lines, 4, 2)
    pd.testing.assert_frame_equal(plain.frame.drop(columns="source"), packed.frame.drop(columns="source"))
    assert packed.texts == plain.texts
    assert packed.frame["loss"].tolist() == [1 + i / 100 for i in range(1, 41)]
    assert packed.frame["step"].tolist() == list(range(1, 41))
