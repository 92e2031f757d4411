"""Fuzz: real corpus files mutated (cut at random offsets, bit flips, NUL runs, halves of two logs
interleaved, a .gz cut or flipped anywhere) go through the CLI. Never a traceback; exit 2 comes with
one line naming the file; and input that could not be read as a log never exits 0 or 1 with a verdict,
unless the report says the file is cut short.

Seeded, so a failure reproduces; ``LOGPOST_FUZZ_ROUNDS=20`` runs more rounds locally (CI: 1).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import zlib

import pytest
from click.testing import CliRunner

from logpost.cli import main
from tests.conftest import fixture

ROUNDS = int(os.environ.get("LOGPOST_FUZZ_ROUNDS", "1"))
FILES = [
    "generated/hf_healthy.log",
    "axolotl/axo-1706-flash-attn-zero-loss-nan-gradnorm.log",
    "deepspeed/fp16-overflow-to-1-nan-loss-accelerate-faithdiff-34.log",
    "deepspeed/torchrun-childfailed-sigabrt-after-watchdog-simpletuner-759.log",
    "full/hykun1989__360-LLaMA-Factory-grpo__trainer_log.jsonl",
    "generated/hf_lr_nan_5e5.trainer_state.json",
]


def read(rel: str) -> bytes:
    with open(fixture(rel), "rb") as fh:
        return fh.read()


def cut(rnd: random.Random, data: bytes) -> bytes:
    return data[: rnd.randrange(len(data) + 1)]


def flip(rnd: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.choice((1, 3, 30))):
        if out:
            out[rnd.randrange(len(out))] ^= 1 << rnd.randrange(8)
    return bytes(out)


def nul_run(rnd: random.Random, data: bytes) -> bytes:
    at = rnd.randrange(len(data) + 1)
    return data[:at] + b"\0" * rnd.choice((1, 64, 4096, 20000)) + data[at:]


def interleave(rnd: random.Random, data: bytes) -> bytes:
    other = read(rnd.choice(FILES))
    a, b = data.split(b"\n"), other.split(b"\n")
    if rnd.random() < 0.5:  # the first half of one, the second half of the other
        return b"\n".join(a[: len(a) // 2] + b[len(b) // 2:])
    k = rnd.choice((1, 3, 10))  # runs of k lines of each, alternating
    out: list[bytes] = []
    for i in range(0, max(len(a), len(b)), k):
        out += a[i: i + k] + b[i: i + k]
    return b"\n".join(out)


def gz_cut(rnd: random.Random, data: bytes) -> bytes:
    z = gzip.compress(data, mtime=0)
    return z[: rnd.randrange(len(z))]  # never the whole stream


def gz_flip(rnd: random.Random, data: bytes) -> bytes:
    return flip(rnd, gzip.compress(data, mtime=0))


MUTATIONS = {f.__name__: f for f in (cut, flip, nul_run, interleave, gz_cut, gz_flip)}


def readable_text(data: bytes) -> tuple[bool, bool]:
    """(can the bytes be read at all, as far as they go; is a .gz among them cut short or corrupt)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return False, True
    return bool(data.replace(b"\0", b"").strip()), False


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_mutated_corpus_never_passes_unreadable_input(tmp_path, mutation):
    runner = CliRunner()
    rnd = random.Random(f"{mutation}-17")
    for n in range(ROUNDS * len(FILES)):
        rel = FILES[n % len(FILES)]
        data = MUTATIONS[mutation](rnd, read(rel))
        name = os.path.basename(rel) + (".gz" if mutation.startswith("gz") else "")
        path = tmp_path / f"{n}-{name}"
        path.write_bytes(data)
        r = runner.invoke(main, ["analyze", str(path), "-f", "json"])
        case = f"{mutation} of {rel} (round {n}, {len(data)} bytes): exit {r.exit_code}, stderr {r.stderr!r}"
        assert r.exception is None or isinstance(r.exception, SystemExit), case
        assert "Traceback" not in r.stderr, case
        assert r.exit_code in (0, 1, 2), case
        text, broken_gz = readable_text(data)
        if r.exit_code == 2:
            lines = r.stderr.strip().splitlines()
            assert r.stdout == "" and len(lines) == 1 and lines[0].startswith(f"logpost: error: {path}: "), case
            continue
        doc = json.loads(r.stdout)
        assert doc["verdict"] in ("failed", "degraded", "healthy", "unknown"), case
        assert text or broken_gz, case  # nothing readable in it, yet a verdict
        if broken_gz:  # a .gz that does not decompress whole: read as far as it goes, and said so
            assert doc["input"]["truncated"] and doc["input"]["truncated"]["file"] == str(path), case
