"""Start-up lines (ZeRO stage, Axolotl token counts, the HF header) are looked for in a window, not
everywhere (they cost ~4x the other markers): the first 32 MiB, stretched until the first metric record
(a long multi-rank preamble), and opened again where a run ends (a log that concatenates runs)."""

from __future__ import annotations

from logpost.parsers import parse
from logpost.parsers.normalise import HEAD

NCCL = b"gpu-node-0:4000:4100 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/IPC/read\n"
ZERO = b"[2024-01-01 00:00:01,000] [INFO] [logging.py:96:log_dist] [Rank 0] Creating torch.bfloat16 ZeRO stage 2 optimizer\n"
TOKENS = b"[2024-01-01 00:00:02,000] [DEBUG] [axolotl.calculate_total_num_steps:299] [PID:1] total_num_tokens: 12342\n"
STEPS = b"[INFO|trainer.py:2086] 2024-05-01 00:00:10,125 >>   Total optimization steps = 40\n"


def dicts(first: int, n: int) -> bytes:
    return b"".join(b"{'loss': %.1f, 'grad_norm': 0.5, 'learning_rate': 1e-05, 'epoch': %.2f}\n" % (2.0 - i / 100, i / 40)
                    for i in range(first, first + n))


def filler(size: int) -> bytes:
    return NCCL * (size // len(NCCL) + 1)


def test_startup_lines_after_a_long_preamble(tmp_path):
    p = tmp_path / "preamble.log"
    p.write_bytes(filler(HEAD + (4 << 20)) + ZERO + TOKENS + STEPS + dicts(1, 20))
    run = parse(str(p))
    assert run.meta["zero_stage"] == 2 and run.meta["total_num_tokens"] == 12342
    assert run.meta["header"]["total_steps"] == 40
    assert (run.frame["kind"] == "train").sum() == 20


def test_startup_lines_of_a_second_run(tmp_path):
    # run 1 trains past the first 32 MiB and ends with its summary; run 2 starts in the same 4 MiB block
    p = tmp_path / "concat.log"
    summary = b"{'train_runtime': 12.5, 'train_samples_per_second': 3.2, 'train_loss': 1.7, 'epoch': 1.0}\n"
    p.write_bytes(dicts(1, 10) + filler(HEAD + (6 << 20)) + dicts(11, 10) + summary
                  + NCCL * 10 + ZERO + TOKENS + dicts(1, 5))
    run = parse(str(p))
    assert run.meta["zero_stage"] == 2 and run.meta["total_num_tokens"] == 12342
    assert run.meta["_lines"]["zero_stage"][0] > HEAD // len(NCCL)


def test_startup_lines_mid_training_are_not_searched(tmp_path):
    # the window's cost trade-off: a start-up line deep inside a training run (no run end before it) is
    # not looked for; when it starts a line that another marker hands out, it is still read
    p = tmp_path / "mid.log"
    p.write_bytes(dicts(1, 10) + filler(HEAD + (6 << 20)) + TOKENS + dicts(11, 10))
    run = parse(str(p))
    assert "total_num_tokens" not in run.meta
    assert (run.frame["kind"] == "train").sum() == 20


def test_promoted_marker_found_everywhere_once_seen_at_start(tmp_path):
    # TRL's masking warning, seen in the first 32 MiB, is then looked for everywhere (promote); it is
    # found in the head through the head candidates, not by a pass of its own
    warn = (b"/usr/lib/python3.10/site-packages/trl/trainer/utils.py:456: UserWarning: Could not find response key "
            b"`### Answer:` in the following instance: hello. This instance will be ignored in loss calculation.\n")
    p = tmp_path / "promote.log"
    p.write_bytes(dicts(1, 5) + warn + filler(HEAD + (6 << 20)) + warn + dicts(6, 5))
    run = parse(str(p))
    (ev,) = [e for e in run.events if e.data.get("tag") == "masked_labels"]
    assert ev.count == 2 and ev.last_line > HEAD // len(NCCL)
