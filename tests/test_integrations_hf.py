"""The trainer callback in real HF Trainer runs on the CPU (a tiny random Llama built here, offline)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI"):  # CI installs the hf extra (.ci/run): these tests must run there, not skip
    import transformers  # noqa: F401
pytest.importorskip("transformers")
pytest.importorskip("torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    default_data_collator,
)

from logpost.integrations import LogpostStop  # noqa: E402
from logpost.integrations.transformers import LogpostCallback, count_supervised  # noqa: E402

MAXLEN = 40


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-init Llama (~150k parameters) and a byte-level BPE tokenizer with a ChatML template, as
    shared/repro/hf/build_tiny.py makes them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = str(tmp_path_factory.mktemp("tiny-model"))
    rng = random.Random(0)
    torch.manual_seed(0)

    def corpus() -> Any:
        for _ in range(600):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            yield (f"<|im_start|>user\nwhat is {a} plus {b}?<|im_end|>\n<|im_start|>assistant\n"
                   f"the answer is {a + b}<|im_end|>\n")

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                     pad_token="<|pad|>", unk_token=None)
    hf_tok.chat_template = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
                            "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
                            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    cfg = LlamaConfig(vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                      bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id,
                      pad_token_id=hf_tok.pad_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def _dataset(model_dir: str, mode: str, n: int = 128) -> Any:
    import datasets

    tok = AutoTokenizer.from_pretrained(model_dir)
    rng = random.Random(1234)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        msgs = [{"role": "user", "content": f"what is {a} plus {b}?"},
                {"role": "assistant", "content": f"the answer is {a + b}"}]
        full = list(tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"])[:MAXLEN]
        prompt = tok.apply_chat_template(msgs[:1], tokenize=True, add_generation_prompt=True, return_dict=True)
        labels = [-100] * min(len(prompt["input_ids"]), len(full)) + full[len(prompt["input_ids"]):]
        if mode == "allmasked":  # a field mapping that never finds the trained role: every label -100
            labels = [-100] * len(full)
        pad = MAXLEN - len(full)
        rows.append({"input_ids": full + [tok.pad_token_id] * pad, "attention_mask": [1] * len(full) + [0] * pad,
                     "labels": labels + [-100] * pad})
    return datasets.Dataset.from_list(rows)


def _trainer(model_dir: str, out: Path, mode: str, steps: int, callbacks: list[Any]) -> Trainer:
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = TrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=8, learning_rate=3e-3,
                             warmup_steps=2, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                             seed=42, dataloader_num_workers=0, disable_tqdm=True)
    return Trainer(model=model, args=args, train_dataset=_dataset(model_dir, mode),
                   data_collator=default_data_collator, callbacks=callbacks)


def test_all_masked_data_is_stopped_before_the_first_optimizer_step(tiny: str, tmp_path: Path) -> None:
    report = tmp_path / "postmortem"
    trainer = _trainer(tiny, tmp_path / "run", "allmasked", 20, [LogpostCallback(report_dir=str(report))])
    with pytest.raises(LogpostStop) as stop:
        trainer.train()
    assert trainer.state.global_step == 0
    assert [f.id for f in stop.value.findings] == ["ZERO_LOSS"]
    pm = json.loads((report / "postmortem.json").read_text())
    zero = [f for f in pm["findings"] if f["id"] == "ZERO_LOSS"]
    assert zero and zero[0]["severity"] == "critical" and pm["verdict"] == "failed"
    assert "pre-flight" in zero[0]["evidence"][0]["text"] and "0 of" in zero[0]["evidence"][0]["text"]
    assert "前 8 个 batch" in zero[0]["summary"]["zh"]
    assert "ZERO_LOSS" in (report / "postmortem.md").read_text() and (report / "postmortem.html").exists()


def test_correct_data_runs_to_its_last_step_untouched(tiny: str, tmp_path: Path) -> None:
    """The same losses, step for step, with the callback as without it: the pre-flight changed neither the
    data order nor a random state."""
    plain = _trainer(tiny, tmp_path / "plain", "healthy", 8, [])
    plain.train()
    watched = _trainer(tiny, tmp_path / "watched", "healthy", 8, [LogpostCallback(report_dir=str(tmp_path / "pm"))])
    watched.train()
    assert watched.state.global_step == 8
    losses = [h["loss"] for h in watched.state.log_history if "loss" in h]
    assert len(losses) == 8 and losses == [h["loss"] for h in plain.state.log_history if "loss" in h]
    pm = json.loads((tmp_path / "pm" / "postmortem.json").read_text())
    assert not [f for f in pm["findings"] if f["severity"] in ("critical", "error")]


def test_a_failure_in_the_logs_stops_at_a_step_boundary(tiny: str, tmp_path: Path) -> None:
    """Without the pre-flight, the zero losses logged stop the run once ZERO_LOSS is found in them."""
    cb = LogpostCallback(report_dir=str(tmp_path / "pm"), preflight_batches=0)
    trainer = _trainer(tiny, tmp_path / "run", "allmasked", 400, [cb])
    with pytest.raises(LogpostStop):
        trainer.train()
    assert 3 <= trainer.state.global_step < 400
    assert cb.stopped_by is not None and cb.stopped_by.id == "ZERO_LOSS" and cb.stopped_by.first_step == 1
    pm = json.loads((tmp_path / "pm" / "postmortem.json").read_text())
    assert pm["findings"][0]["id"] == "ZERO_LOSS"


def test_preflight_count_keeps_data_order_and_random_state(tiny: str, tmp_path: Path) -> None:
    trainer = _trainer(tiny, tmp_path / "run", "healthy", 4, [])
    loader = trainer.get_train_dataloader()
    before = torch.get_rng_state()
    counts = count_supervised(loader, 3)
    assert counts is not None and counts[2] == 3 and 0 < counts[0] < counts[1]
    assert torch.equal(before, torch.get_rng_state())
