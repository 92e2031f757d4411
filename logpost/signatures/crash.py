"""The exception a run died of, and where it belongs: classified by its type, its message and the
frames above it rather than by a list of known sentences. The detectors of :mod:`exceptions` turn the
placed ones into CONFIG_ERROR, DATASET_ERROR and ENV_ERROR findings; EARLY_TERMINATION's ``crashed``
variant names any of them (a CUDA kernel fault too).

A run died of an exception when its traceback is followed by no training record (a traceback the run
trained past was handled).
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

from logpost.model import Event, RunLog

# Types that say what failed by themselves
_CONFIG_TYPES = frozenset({"ValidationError", "ArgumentError", "ArgumentTypeError", "ConfigError",
                           "ConfigValidationError", "OmegaConfBaseException", "MissingMandatoryValue"})
_ENV_TYPES = frozenset({"ImportError", "ModuleNotFoundError"})
# Lookup and value errors say what failed only with the frames they were raised from
_DATA_TYPES = frozenset({"KeyError", "IndexError", "ValueError", "TypeError", "AttributeError", "AssertionError",
                         "ArrowInvalid", "ArrowTypeError", "ArrowNotImplementedError", "JSONDecodeError",
                         "UnicodeDecodeError", "DatasetGenerationError", "SchemaInferenceError", "CastError"})
# datasets (map / load / arrow), tokenisation, collators, chat templates, the frameworks' data preparation
_DATA_FRAMES = regex.compile(
    r"(?:^|/)datasets/|arrow_dataset\.py|multiprocess/pool\.py|tokenization_utils|tokenizer|_tokeniz|collat"
    r"|prompt_strategies/|prompt_tokenizers\.py|/data/(?:loader|template|processor|converter|aligner|preprocess)"
    r"|chat_template|preprocess|dataset|(?:^|/)data_utils|formatting_func|apply_chat_template"
    # a sample fetched by the dataloader (a Dataset's __getitem__, torch's fetch, accelerate's data_loader)
    r"|data_?loader\.py|_utils/fetch\.py| in __getitem__", regex.I)
# transformers' model registries: a KeyError there is a model type this transformers does not know
_REGISTRY_FRAMES = regex.compile(r"configuration_auto\.py|modeling_auto\.py|auto_factory\.py")
_CONFIG_MESSAGE = regex.compile(
    r"unrecognized arguments|the following arguments are required|invalid choice|validation errors? for"
    r"|not used by the HfArgumentParser|Some specified arguments are not used|Extra inputs are not permitted"
    r"|Field required|Input should be", regex.I)
_ENV_MESSAGE = regex.compile(
    r"undefined symbol|cannot open shared object file|CUDA capability sm_\d+ is not compatible"
    r"|not compatible with the current PyTorch installation|no kernel image is available|only supports Ampere"
    r"|GLIBC(?:XX)?_[\d.]+' not found|is not installed|No module named"
    r"|compiled (?:with|against) .*(?:CUDA|torch|numpy)|Numpy is not available|numpy\.dtype size changed", regex.I)
# CUDA faults: a kernel crashed; named as such (they are no tokenizer, data or config message)
CUDA_FAULT = regex.compile(r"illegal memory access|device-side assert|unspecified launch failure|misaligned address"
                           r"|illegal instruction|CUDA error: an? (?:illegal|unknown)")


@dataclass(frozen=True)
class Placed:
    """A fatal exception and where it belongs: ``sig`` (None: no family claims it) and ``how`` it was
    placed (``type``, ``message``, ``frames``)."""

    event: Event
    sig: str | None
    how: str | None


def place(event: Event) -> tuple[str | None, str | None]:
    """The signature an exception event belongs to, from its type, message and frames."""
    data = event.data or {}
    tag = data.get("tag")
    if tag == "usage_error":
        return "CONFIG_ERROR", "type"
    exc = str(data.get("exc_type") or "").rsplit(".", 1)[-1]
    message = str(data.get("message") or event.text)
    chain = " ".join(str(c) for c in data.get("chain") or ())
    frames = list(data.get("frames") or ())
    inner = "\n".join(frames[-4:])
    if CUDA_FAULT.search(message):
        return None, None  # a kernel fault: EARLY_TERMINATION names it (and TOKENIZER_ERROR's index pattern)
    if exc in _CONFIG_TYPES or _CONFIG_MESSAGE.search(message):
        return "CONFIG_ERROR", "type" if exc in _CONFIG_TYPES else "message"
    if exc in _ENV_TYPES or _ENV_MESSAGE.search(message):
        return "ENV_ERROR", "type" if exc in _ENV_TYPES else "message"
    if exc == "KeyError" and _REGISTRY_FRAMES.search(inner):
        return "ENV_ERROR", "frames"  # KeyError: 'qwen3' from CONFIG_MAPPING: transformers too old for the model
    if "RemoteTraceback" in chain or "RemoteTraceback" in event.text:
        if _DATA_FRAMES.search("\n".join(frames)):
            return "DATASET_ERROR", "frames"
    if exc in _DATA_TYPES and _DATA_FRAMES.search(inner):
        return "DATASET_ERROR", "frames"
    return None, None


def fatal_exceptions(run: RunLog) -> list[Placed]:
    """The exceptions the run died of: tracebacks with an exception line (and argparse's usage errors)
    after which no training record was logged, in line order."""
    train_lines = run.frame.loc[run.frame["kind"] == "train", "line"].dropna()
    last_train = float(train_lines.max()) if len(train_lines) else -1.0
    out = []
    for e in run.events:
        data = e.data or {}
        if not ((e.kind == "traceback" and data.get("exc_type")) or data.get("tag") == "usage_error"):
            continue
        if e.line <= last_train:
            continue  # the run trained on after it: handled, or a warning printed as a traceback
        sig, how = place(e)
        out.append(Placed(e, sig, how))
    out.sort(key=lambda p: p.event.line)
    return out
