"""Start-up lines (ZeRO stage, Axolotl token counts, the HF header) are found wherever they are: after a
long multi-rank preamble, in a second run appended to the same file, deep inside a training run. All
markers are searched in one compiled pass (normalise.Matcher), so there is no start-up window."""

from __future__ import annotations

from logpost.parsers import parse
from logpost.parsers.normalise import BLOCK

NCCL = b"gpu-node-0:4000:4100 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/IPC/read\n"
ZERO = b"[2024-01-01 00:00:01,000] [INFO] [logging.py:96:log_dist] [Rank 0] Creating torch.bfloat16 ZeRO stage 2 optimizer\n"
TOKENS = b"[2024-01-01 00:00:02,000] [DEBUG] [axolotl.calculate_total_num_steps:299] [PID:1] total_num_tokens: 12342\n"
STEPS = b"[INFO|trainer.py:2086] 2024-05-01 00:00:10,125 >>   Total optimization steps = 40\n"
FAR = 10 * BLOCK  # well past the first blocks


def dicts(first: int, n: int) -> bytes:
    return b"".join(b"{'loss': %.1f, 'grad_norm': 0.5, 'learning_rate': 1e-05, 'epoch': %.2f}\n" % (2.0 - i / 100, i / 40)
                    for i in range(first, first + n))


def filler(size: int) -> bytes:
    return NCCL * (size // len(NCCL) + 1)


def test_startup_lines_after_a_long_preamble(tmp_path):
    p = tmp_path / "preamble.log"
    p.write_bytes(filler(FAR) + ZERO + TOKENS + STEPS + dicts(1, 20))
    run = parse(str(p))
    assert run.meta["zero_stage"] == 2 and run.meta["total_num_tokens"] == 12342
    assert "total_num_steps" not in run.meta  # the logger name "calculate_total_num_steps:299" is not a count
    assert run.meta["header"]["total_steps"] == 40
    assert (run.frame["kind"] == "train").sum() == 20


def test_startup_lines_of_a_second_run(tmp_path):
    p = tmp_path / "concat.log"
    summary = b"{'train_runtime': 12.5, 'train_samples_per_second': 3.2, 'train_loss': 1.7, 'epoch': 1.0}\n"
    p.write_bytes(dicts(1, 10) + filler(FAR) + dicts(11, 10) + summary + NCCL * 10 + ZERO + TOKENS + dicts(1, 5))
    run = parse(str(p))
    assert run.meta["zero_stage"] == 2 and run.meta["total_num_tokens"] == 12342
    assert run.meta["_lines"]["zero_stage"][0] > FAR // len(NCCL)


def test_startup_lines_mid_training(tmp_path):
    p = tmp_path / "mid.log"
    p.write_bytes(dicts(1, 10) + filler(FAR) + TOKENS + dicts(11, 10))
    run = parse(str(p))
    assert run.meta["total_num_tokens"] == 12342
    assert run.meta["_lines"]["total_num_tokens"][0] == 10 + FAR // len(NCCL) + 2
    assert (run.frame["kind"] == "train").sum() == 20


def test_masking_warning_counted_everywhere(tmp_path):
    warn = (b"/usr/lib/python3.10/site-packages/trl/trainer/utils.py:456: UserWarning: Could not find response key "
            b"`### Answer:` in the following instance: hello. This instance will be ignored in loss calculation.\n")
    p = tmp_path / "masking.log"
    p.write_bytes(dicts(1, 5) + filler(FAR) + warn + filler(FAR) + warn + dicts(6, 5))
    run = parse(str(p))
    (ev,) = [e for e in run.events if e.data.get("tag") == "masked_labels"]
    assert ev.count == 2 and ev.last_line > 2 * FAR // len(NCCL)
