"""HF Trainer / TRL console output (transformers 4.x and 5.x).

* metric dicts printed by ``ProgressCallback``/``PrinterCallback``: a Python dict repr, bare
  floats and bare ``nan``/``inf`` in 4.x, every float a quoted ``.4g`` string in 5.x, often glued
  to tqdm fragments or with a missing ``{`` in pastes;
* the tqdm training bar (``12/40 [``), used to place records on steps;
* the ``***** Running training *****`` header;
* ``trainer.log_metrics`` tables (``***** train metrics *****`` + ``  key = value``);
* ``Training completed.``
* what a notebook shows (``NotebookProgressCallback``), pasted as text: the ``Step | Training Loss |
  Validation Loss | <metrics>`` table (tab-, pipe- or space-separated; ``No log`` cells), the
  ``[80/80 02:02, Epoch 0/1]`` progress line, and ``TrainOutput(...)`` as the run's summary;
* the ``TrainingArguments(...)`` dump of HF example scripts and LLaMA-Factory (one ``key=value,`` per
  line since transformers 4.10, one line before): the settings that explain failures become run metadata;
* ms-swift's dicts, which carry their step: ``'global_step/max_steps': '10/1000'``, and
  text-generation-webui's ``Step:      3 {'loss': ...}``;
* a custom loop's ``step=110  loss=3.80  gnorm=24.4`` line (a step key and a loss key);
* Unsloth's start-up banner (``Num examples = 3,011 | Num Epochs = 1 ... Total steps = 80``).
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any, NamedTuple

from logpost.frame import ALIASES, to_number
from logpost.model import Line
from logpost.parsers.base import Builder, LineParser
from logpost.parsers.normalise import MAX_TEXT, clean, decode, lift_rank, part_at

# A dict repr: from "{'" to the matching "}" (metric dicts hold no nested braces).
_DICT = re.compile(r"\{\s*'[^{}]*\}")
# A paste that lost its opening brace: "'loss': 1.2, 'learning_rate': ...}"
_BRACELESS = re.compile(r"^\s*'(?:loss|eval_loss|train_runtime)'\s*:[^{}]*\}")
_PAIR = re.compile(r"'([^']{1,200})'\s*:\s*('(?:[^'\\]|\\.)*'|\"[^\"]*\"|tensor\([^)]*\)|[^,}]+)")
_TENSOR = re.compile(r"tensor\(\s*([^,)]+)")
_intern = sys.intern  # the same few keys on every record: one string each
METRIC_KEYS = frozenset({"loss", "eval_loss", "train_runtime", "learning_rate", "lr", "grad_norm", "train_loss"})

# tqdm: "  45%|████▌     | 18/40 [00:03<00:05,  4.21it/s]"
_BAR = re.compile(r"(?:^|[\s|:])(\d{1,3})%\|[^|]*\|\s*(\d+)/(\d+)\s*\[")
_BAR_TEXT = re.compile(r"(\d{1,3})%\|[^|]*\|\s*(\d+)/(\d+)\s*\[[^\]]*\]")
_RATE = re.compile(r"([\d.]+)\s*(s/it|it/s)")
_BAR_B = re.compile(rb"(?:^|[\s|:])(\d{1,3})%\|[^|]*\|\s*(\d+)/(\d+)\s*\[")
# first bytes of a launcher prefix ("[rank1]:", "(job, pid=1)", "3: ", "host: "); a bar starts otherwise
_PREFIX_START = tuple(bytes([c]) for c in b"[(0123456789 abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# a custom loop's bar with its postfix: "Steps:  0%|▏ | 16/6000 [00:55<4:54:46,  2.96s/it, lr=0, loss=0.3]"
_POSTFIX_BAR = re.compile(r"(\d+)/(\d+)\s*\[[^\]]*?,\s*([A-Za-z_][\w/.]*=[^\]]*)\]")
_EVAL_BAR = re.compile(r"(?i)\b(?:eval|val|valid|validation|test)\w*\s*:?\s*\d{1,3}%\|")
_BAR_DESC = re.compile(r"([^\s|%][^|%]*?):?\s*\d{1,3}%\|")

# The Running-training header, and Unsloth's banner ("Num examples = 3,011 | Num Epochs = 1 | Total steps = 80",
# "Batch size per device = 2 | Gradient accumulation steps = 4", "Total batch size (2 x 4 x 1) = 8",
# "Trainable parameters = 83,886,080 of 7,000,000,000 (1.2% trained)"): several on one line.
_HEADER = re.compile(
    r"(Num examples|Num Epochs|Num update steps per epoch|Instantaneous batch size per device|Batch size per device|"
    r"Total train batch size \(w\. parallel, distributed & accumulation\)|Total batch size(?: \([^)]*\))?|"
    r"Gradient [Aa]ccumulation steps|Total optimization steps|Total steps|Number of trainable parameters|"
    r"Trainable parameters)\s*=\s*([\d,.]+)")
_HEADER_KEYS = {
    "num examples": "num_examples",
    "num epochs": "num_epochs",
    "num update steps per epoch": "steps_per_epoch",
    "instantaneous batch size per device": "per_device_batch_size",
    "batch size per device": "per_device_batch_size",
    "total train batch size (w. parallel, distributed & accumulation)": "total_batch_size",
    "total batch size": "total_batch_size",
    "gradient accumulation steps": "gradient_accumulation_steps",
    "total optimization steps": "total_steps",
    "total steps": "total_steps",
    "number of trainable parameters": "trainable_parameters",
    "trainable parameters": "trainable_parameters",
}
# A notebook's metric table pasted as text: a header row "Step<sep>Training Loss<sep>..." (or "Epoch"),
# then one row per logging step; <sep> is a tab, a pipe or a run of spaces.
_NB_HEADER = re.compile(r"^\s*\|?\s*(Step|Epoch)(\t|\s*\|\s*|\s{2,})Training Loss\b")
_NB_CELL = re.compile(r"^[*_~\s]*([-+]?(?:\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?|nan|inf)|No log)[*_~\s]*$")
# "[80/80 02:02, Epoch 0/1]", "[ 15/500 00:31 < 17:02, 0.47 it/s, Epoch 0.09/3]"
_NB_BAR = re.compile(r"^\s*\[\s*(\d+)/(\d+) [\d:]+(?: < [\d:]+)?(?:, [\d.]+ (?:it/s|s/it))?, Epoch [\d.]+/\d+\]")
# TrainingArguments settings kept as run metadata (the dump has ~150); precision, schedule, clipping, batch
ARG_KEYS = ("bf16", "fp16", "learning_rate", "lr_scheduler_type", "warmup_steps", "warmup_ratio", "max_grad_norm",
            "max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
            "logging_nan_inf_filter", "logging_steps", "optim", "weight_decay", "gradient_checkpointing", "deepspeed")
_ARG = re.compile(r"(?:^|[(,]\s*)(" + "|".join(ARG_KEYS) + r")=([^,()]*(?:\([^()]*\))?[^,()]*)")
# key=value pairs of a custom loop's line ("step=110  loss=3.80  gnorm=24.4"); "lr=[...]" lists do not match
_KV = re.compile(r"(?<![\w.])([A-Za-z_][\w/.]*)=\s*([-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf))(?=[\s,;|]|$)")
_STEP_PREFIX = re.compile(r"\bStep:\s*(\d+)\s*$")
# an enum's repr in the dump: "SchedulerType.COSINE" (-> cosine), "<SchedulerType.LINEAR: 'linear'>" (-> linear)
_ENUM = re.compile(r"<?[A-Z]\w*(?:Type|Names|Strategy|Mode)\.(\w+)(?:: '([^']*)'>)?")
_TRAIN_OUTPUT = re.compile(r"TrainOutput\(global_step=(\d+), training_loss=([^,]+), metrics=(\{[^{}]*\})")
_TABLE_START = re.compile(r"\*{5} (\w+) metrics \*{5}")
_TABLE_ROW = re.compile(r"^\s+([\w/.\-]+)\s+=\s+(\S+)\s*$")
_HMS = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")
_PEFT = re.compile(r"trainable params:\s*([\d,]+)\s*\|\|\s*all params:\s*([\d,]+)")
_MODEL = re.compile(r"""["']?(?:_name_or_path|model_name_or_path|base_model)["']?\s*[:=]\s*["']?([^"',\s}]+)""")


# The fast lane (see LineParser.fast): a metric dict alone, or after the bare tqdm bar glued before it
# ("  0%|▏   | 30/1000 [00:30<16:10, 0.80s/it]{'loss': ...}"); the bar drawn with tqdm's own characters
# (UTF-8 blocks, or ASCII "#" and digits), the dict printable ASCII without brackets, pipes or braces
# inside, so that no launcher prefix, second bar, nested dict or other encoding can hide in it.
# tqdm's bare bar as it is glued before a line (the normaliser cuts it off: ``_TQDM_HEAD``); shared with the
# DeepSpeed lane, whose step line is glued to the bar it interrupts
GLUED_BAR = rb"(?:[ \d]{0,2}\d%\|[ #\d]*(?:\xe2\x96[\x88-\x8f][ #\d]*)*\|[ \d/]*\[[\d:<?, .a-z/]*\][ \t]*)?"
_FAST = re.compile(
    GLUED_BAR +
    rb"(?P<text>\{'[^\x00-\x1f\x7f-\xff'{}\[\]|\\]+': [^\x00-\x1f\x7f-\xff{}\[\]|\\]*\}[ \t]*)")


def _bar_step(part: bytes, total: int | None) -> int | None:
    """The position of the last bare training bar in one redraw (``| 12/40 [``): not a described bar
    ("Tokenizing Prompts: 45%|"), not an eval bar, and of ``total`` steps when that is known."""
    first = part.find(b"%|", 0, MAX_TEXT)  # a match holds "%|" 1-4 bytes after its start: search from there
    m = _BAR_B.search(part, max(first - 4, 0), MAX_TEXT) if first != -1 else None
    if m is None:
        return None
    # one redraw holds one bar: no second one can start after a match without another "%|"
    found = (m,) if part.find(b"%|", m.end(), MAX_TEXT) == -1 else reversed(list(_BAR_B.finditer(part[:MAX_TEXT])))
    for m in found:
        pre = part[: m.start(1)]
        if pre.strip(b" |:"):  # (a bare bar, the common case, has no description to decode)
            desc = clean(decode(pre)).strip(" |:")
            desc = lift_rank(desc)[0].strip(" |:") if desc else desc
        else:
            desc = ""
        if desc and not desc.endswith("]"):
            continue
        if total and int(m.group(3)) != total:
            continue
        return int(m.group(2))
    return None


def _nb_split(text: str, sep: str) -> list[str]:
    """The cells of a pasted notebook table row."""
    text = text.strip()
    if sep == "|":
        return text.strip("|").split("|")
    if sep == "\t":
        return text.split("\t")
    return re.split(r"\s{2,}", text)


def parse_dict(text: str) -> dict[str, Any] | None:
    """The key/value pairs of a printed metric dict, values as float where numeric."""
    pairs = _PAIR.findall(text)
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for key, raw in pairs:
        try:  # the common case, a bare number: float() is what to_number would end with
            out[_intern(key)] = float(raw)
            continue
        except ValueError:
            pass
        raw = raw.strip()
        if raw.startswith("tensor("):
            m = _TENSOR.match(raw)
            raw = m.group(1) if m else raw
        out[_intern(key)] = to_number(raw)
    return out


# keys the short path of the fast lane takes ("memory/max_active (GiB)"): none can hold what HFParser.feed
# acts on besides the dict (no "=", "*", "|" or ":"; not the texts below)
_PLAIN_KEY = re.compile(r"[\w/.\- ()]{1,200}", re.ASCII)
_FEED_KEYS = ("name_or_path", "TrainingArguments(", "TrainOutput(", "global_step/max_steps")


def quick_pairs(chunk: str) -> dict[str, Any] | None:
    """``parse_dict(chunk)`` for the common dict, ``{'key': value, ...}`` whose values are bare numbers or
    quoted ones (transformers 5) and whose keys and values hold no quote or ``", "``; None otherwise."""
    out: dict[str, Any] = {}
    for item in chunk[1:-1].split(", "):
        key, sep, raw = item.partition(": ")
        if not sep or len(key) < 3 or key[0] != "'" or key[-1] != "'" or "'" in key[1:-1]:
            return None
        try:
            out[_intern(key[1:-1])] = float(raw)
        except ValueError:
            if len(raw) < 2 or raw[0] != "'" or raw[-1] != "'" or "'" in raw[1:-1]:
                return None
            out[_intern(key[1:-1])] = to_number(raw)
    return out


class Shape(NamedTuple):
    """A metric dict's key sequence, as the fast lane matches it (see HFParser.fast_feed)."""

    template: re.Pattern[str]  # the dict with these keys; a group per value
    keys: tuple[str, ...]
    kind: str  # record_kind
    fold: bool  # metric_values changes the keys
    rows: tuple[tuple[str, ...], tuple[str, ...]]  # the keys of its record (Builder.row), without and with _progress
    picks: tuple[int, ...] | None  # when fold: which values metric_values keeps, in its order (see folded)


_VALUE = "[^,']*|'[^,']*'"  # a value quick_pairs reads: no comma, quoted whole or not at all


def shape_values(keys: tuple[str, ...], values: tuple[str, ...]) -> dict[str, Any] | None:
    """What quick_pairs reads from the dict a shape's template matched (``values``: its groups)."""
    try:
        return dict(zip(keys, map(float, values), strict=True))
    except ValueError:
        pass
    out: dict[str, Any] = {}
    for key, raw in zip(keys, values, strict=True):
        try:
            out[key] = float(raw)
        except ValueError:
            if len(raw) < 2 or raw[0] != "'" or raw[-1] != "'":
                return None
            out[key] = to_number(raw)
    return out


def finite_numbers(values: tuple[str, ...]) -> list[float] | None:
    """What :func:`shape_values` reads from a shape's groups, when every value is a finite number (bare, or
    quoted as transformers 5 prints them); else None."""
    try:
        out: list[Any] = list(map(float, values))
    except ValueError:
        try:  # quoted: a group is "'...'" without a quote inside, and where float() reads the inside,
            # to_number (which strips the quotes) gives the same float
            out = [float(v[1:-1]) if v[:1] == "'" else float(v) for v in values]
        except ValueError:
            try:
                out = [to_number(v) if v[:1] == "'" else float(v) for v in values]
            except ValueError:
                return None
            if not all(type(x) is float for x in out):
                return None
    return out if math.isfinite(sum(out)) else None


def _swift_step(value: Any, out: Builder) -> int | None:
    """ms-swift's ``'global_step/max_steps': '10/1000'``: the step, and the planned total as the header's."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value) if isinstance(value, str) else None
    if not m:
        return None
    out.meta.setdefault("header", {}).setdefault("total_steps", int(m.group(2)))
    out.saw("swift")
    return int(m.group(1))


def metric_values(pairs: dict[str, Any]) -> dict[str, Any]:
    """Fold logged keys onto frame columns (``lr`` -> ``learning_rate`` ...), keeping the rest."""
    if "step" not in pairs and ALIASES.keys().isdisjoint(pairs):
        return dict(pairs)
    out: dict[str, Any] = {}
    for key, value in pairs.items():
        col = ALIASES.get(key, key)
        if col == "step":
            continue
        if col not in out or out[col] is None:
            out[col] = value
    return out


def folded(keys: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """What :func:`metric_values` makes of a dict with these keys whose values are all numbers (none is
    None): its keys, and the index of the value each takes."""
    cols: dict[str, int] = {}
    for i, key in enumerate(keys):
        col = ALIASES.get(key, key)
        if col != "step" and col not in cols:
            cols[col] = i
    return tuple(cols), tuple(cols.values())


def record_kind(pairs: dict[str, Any]) -> str:
    if "train_runtime" in pairs or "train_loss" in pairs:
        return "summary"
    if "loss" not in pairs and any(k.startswith("eval_") for k in pairs):
        return "eval"
    return "train"


def seconds(text: str) -> float | str | None:
    m = _HMS.match(text)
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return to_number(text)


class HFParser(LineParser):
    # tqdm bars ("%|") are far too common to be candidates: the bar before a record is found with
    # look_back. Header lines are followed after "***** Running training *****".
    # A paste that lost the opening brace ("'loss': 1.2, ...}") is read on the first line of a source,
    # which the scanner always hands out (where pastes are cut); a quoted key alone would need a pass.
    markers = ("{'", "*****", "loss=", "Total optimization steps", "trainable params", "name_or_path",
               "Training Loss", ", Epoch ", "==((====))==", "TrainingArguments(")
    remember = ("%|",)
    fast = _FAST

    def __init__(self) -> None:
        self.table: dict[str, Any] | None = None
        self.table_kind = ""
        self.table_line: Line | None = None
        self.postfix_step: dict[int | None, int] = {}  # last bar position recorded from a postfix, per rank
        self.nb: tuple[list[str], str] | None = None  # an open notebook table: (column names, separator)
        self.nb_bar: tuple[int, str, int, int] | None = None  # the last notebook progress line: line, text, step, total
        self.args_open = False  # inside a multi-line TrainingArguments(...) dump
        self._shapes: list[Shape] = []  # see fast_feed

    def idle(self) -> bool:
        return self.table is None and not self.args_open and self.nb is None

    def feed(self, line: Line, out: Builder) -> None:
        text = line.text
        if self.table is not None:
            m = _TABLE_ROW.match(text)
            if m:
                key, raw = m.group(1), m.group(2)
                self.table[key] = seconds(raw) if key.endswith("_runtime") else to_number(raw)
                if "*****" not in text:
                    return
            self._close_table(out)
        if self.args_open or "TrainingArguments(" in text:
            self._training_args(line, out)
            if self.args_open:
                return
        if self.nb is not None:
            if self._nb_row(line, out):
                return
            self.nb = None
            out.stop_following(self)
        if "Training Loss" in text:
            m = _NB_HEADER.match(text)
            if m:
                sep = "\t" if m.group(2) == "\t" else "|" if "|" in m.group(2) else "  "
                self.nb = ([c.strip() for c in _nb_split(text, sep)], sep)
                out.saw("hf", 2)
                out.follow(self, 3)
                return
        if ", Epoch " in text:
            m = _NB_BAR.match(text)
            if m:
                self.nb_bar = (line.no, m.group(0).strip(), int(m.group(1)), int(m.group(2)))
                out.meta.setdefault("header", {}).setdefault("total_steps", int(m.group(2)))
        if "==((====))==" in text:  # Unsloth's banner: its header values are on the next 4 lines
            out.saw("hf", 2)
            out.follow(self, 5)
        if "{'" in text or text.lstrip().startswith("'"):
            self._dicts(line, out)
        if "loss=" in text:
            if "%|" in text:
                self._postfix(line, out)
            elif "step=" in text or "iter=" in text:
                self._kv_line(line, out)
        if "*****" in text:
            if "Running training" in text:
                out.saw("hf", 2)
                out.follow(self, 30)
            m = _TABLE_START.search(text)
            if m:
                self.table, self.table_kind, self.table_line = {}, m.group(1), line
                out.follow(self, 40)
        if " = " in text:
            for m in _HEADER.finditer(text):
                name = m.group(1).lower()
                key = _HEADER_KEYS.get(name) or _HEADER_KEYS[name.split(" (")[0]]  # "Total batch size (2 x 4 x 1)"
                value = to_number(m.group(2).replace(",", "").rstrip("."))
                out.meta.setdefault("header", {}).setdefault(key, value)
                out.set_meta("header:" + key, value, line)
        if "trainable params" in text:
            m = _PEFT.search(text)
            if m:
                out.set_meta("peft_trainable_params", int(m.group(1).replace(",", "")), line)
        if "name_or_path" in text:
            m = _MODEL.search(text)
            if m and m.group(1) not in ("None", "null", ""):
                out.set_meta("model", m.group(1), line)

    def fast_feed(self, line: Line, match: re.Match[bytes], out: Builder) -> bool:
        """A line of the fast lane (a lone metric dict): what :meth:`feed` does with it, the short way
        when its keys are plain (``_PLAIN_KEY``) and its values numbers. The dict is matched against the
        shapes (key sequences) seen before, else read by :func:`quick_pairs` and its shape learnt; one whose
        values are all finite numbers (bare or quoted) becomes a row (:meth:`Builder.row`), no dict made."""
        chunk = line.text.rstrip()
        shape: Shape | None = None
        numbers: list[Any] | None = None
        for known in self._shapes:
            m = known.template.fullmatch(chunk)
            if m is not None:
                shape, pairs = known, None
                numbers = finite_numbers(m.groups())
                if numbers is not None and known.picks is not None:
                    numbers = [numbers[i] for i in known.picks]
                if numbers is None:
                    pairs = shape_values(known.keys, m.groups())
                break
        else:
            pairs = quick_pairs(chunk)
            shape = self._learn(pairs) if pairs else None
        if shape is None or (numbers is None and pairs is None):
            self.feed(line, out)
            return out.is_claimed(line)
        out.saw("hf")
        kind = shape.kind
        step = None
        if kind == "train":
            step = self._lane_progress(match, out)
            step = self._progress(line, out) if step is None else step
        if numbers is not None:
            numbers += (kind, line.no, chunk[:500]) if step is None else (kind, line.no, chunk[:500], step)
            out.row(shape.rows[step is not None], numbers, line)
        else:
            assert pairs is not None
            extra = {} if step is None else {"_progress": step}
            out.record(kind, metric_values(pairs) if shape.fold else pairs, line, text=chunk, **extra)
        if kind == "summary":
            out.set_meta("summary_line", line.no, line)
            out.set_meta("completed", True, line)
        return True

    @staticmethod
    def _lane_progress(match: re.Match[bytes], out: Builder) -> int | None:
        """:meth:`_progress` for a lane line whose earlier redraws hold a bar: the last of them (what
        ``Scanner.last_part`` finds, read from the line itself); None: ask :meth:`_progress`."""
        raw, cut = match.string, match.pos
        i = raw.rfind(b"%|", 0, cut)
        if i == -1:
            return None
        part = raw[raw.rfind(b"\r", 0, i) + 1: raw.find(b"\r", i, cut)]
        return _bar_step(part, out.meta.get("header", {}).get("total_steps"))

    def _learn(self, pairs: dict[str, Any]) -> Shape | None:
        """The shape of a dict read by :func:`quick_pairs`, kept (up to 16) when :meth:`feed` would do no
        more than record it: plain keys (none that feed acts on), a metric dict."""
        keys = tuple(pairs)
        if not all(_PLAIN_KEY.fullmatch(k) and not any(f in k for f in _FEED_KEYS) for k in keys) \
                or not (METRIC_KEYS & pairs.keys() or any(k.startswith("eval_") for k in keys)):
            return None
        template = re.compile("\\{" + ", ".join(f"'{re.escape(k)}': ({_VALUE})" for k in keys) + "\\}")
        fold = "step" in pairs or not ALIASES.keys().isdisjoint(pairs)
        cols, picks = folded(keys) if fold else (keys, None)
        row = (*cols, "kind", "line", "_text")
        shape = Shape(template, keys, record_kind(pairs), fold, (row, (*row, "_progress")), picks)
        if len(self._shapes) < 16:
            self._shapes.append(shape)
        return shape

    def _progress(self, line: Line, out: Builder) -> int | None:
        """The step of the last training bar before this record (same rank), found by look_back on
        the raw bytes (a bar is decoded only when it carries a launcher prefix)."""
        total = out.meta.get("header", {}).get("total_steps")
        scanner = out.scanner
        if scanner is None:
            return None
        if line.rank is None:  # the common case first: the bar part just before, in this block
            part = scanner.last_part(b"%|")
            step = _bar_step(part, total) if part is not None else None
            if step is not None:
                return step
        for raw in scanner.look_back(b"%|", 4):  # the training bar is printed just before its dict
            # only the last redraw on each line: the earlier ones are older states of the same bar
            part = part_at(raw, raw.rfind(b"%|"), 0, len(raw))
            if line.rank is not None and part[:1] in _PREFIX_START:
                rank = lift_rank(clean(decode(part[:200])))[1]
                if rank is not None and rank != line.rank:
                    continue
            step = _bar_step(part, total)
            if step is not None:
                return step
        return None

    def _dicts(self, line: Line, out: Builder) -> None:
        text = line.text
        found = _DICT.findall(text) or ([m.group(0)] if (m := _BRACELESS.match(text)) else [])
        if "TrainOutput(" in text:  # trainer.train()'s return value, printed by a script or a notebook
            self._train_output(line, out)
            return
        for chunk in found:
            pairs = parse_dict(chunk)
            if not pairs or not (METRIC_KEYS & pairs.keys() or any(k.startswith("eval_") for k in pairs)):
                continue
            kind = record_kind(pairs)
            logged = _swift_step(pairs.pop("global_step/max_steps"), out) if "global_step/max_steps" in pairs else None
            if logged is None and "Step:" in text:  # text-generation-webui: "Step:      3 {'loss': ...}"
                m = _STEP_PREFIX.search(text, 0, text.find(chunk))
                logged = int(m.group(1)) if m else None
            values = metric_values(pairs)
            out.saw("hf")
            if logged is not None:  # ms-swift and text-generation-webui log the step itself
                rec = out.record(kind, values, line, step=logged, text=chunk.strip(), step_source="logged")
            else:
                rec = out.record(kind, values, line, text=chunk.strip())
            if kind == "train" and logged is None:
                step = self._progress(line, out)
                if step is not None:
                    rec["_progress"] = step
            if kind == "summary":
                out.set_meta("summary_line", line.no, line)
                out.set_meta("completed", True, line)

    def _postfix(self, line: Line, out: Builder) -> None:
        """Metrics a training loop shows in its tqdm postfix (accelerate/diffusers scripts): one train
        record per bar position, at the step the bar shows (the first redraw at that position)."""
        m = _POSTFIX_BAR.search(line.text)
        if not m or _EVAL_BAR.search(line.text[: m.start()]):
            return
        step = int(m.group(1))
        if self.postfix_step.get(line.rank) == step:
            return
        pairs = {}
        for item in m.group(3).split(","):
            key, sep, raw = item.strip().partition("=")
            if sep and key:
                pairs[_intern(key)] = to_number(raw)
        if not any(k == "loss" or k.endswith("loss") for k in pairs):
            return
        self.postfix_step[line.rank] = step
        values = metric_values(pairs)
        named = [k for k in pairs if k.endswith("loss") and k != "loss"]
        if "loss" not in values and len(named) == 1:  # the loop's one loss, whatever it is called
            values["loss"] = pairs[named[0]]
        values["step_source"] = "progress"
        out.record("train", values, line, step=step, text=m.group(0))

    def _kv_line(self, line: Line, out: Builder) -> None:
        """A custom loop's ``step=110  loss=3.80  gnorm=24.4  lr=1e-05`` line: a train record at its step."""
        pairs = {_intern(k): float(v) for k, v in _KV.findall(line.text)}
        step = next((pairs.pop(k) for k in ("step", "global_step", "iter") if k in pairs), None)
        loss = next((k for k in ("loss", "train_loss", "train/loss") if k in pairs), None)
        if step is None or loss is None or not 0 <= step < 1e12 or step != int(step) or "skipped" in pairs \
                or "TrainOutput(" in line.text:
            return
        if loss != "loss":
            pairs["loss"] = pairs.pop(loss)
        out.saw("custom")
        out.record("train", metric_values(pairs), line, step=int(step), step_source="logged")

    def _training_args(self, line: Line, out: Builder) -> None:
        """Settings from a ``TrainingArguments(`` dump: a multi-line one is followed to its ``)``."""
        text = line.text
        if "TrainingArguments(" in text:
            text = text[text.index("TrainingArguments(") + len("TrainingArguments("):]
            self.args_open = not text.strip()  # "TrainingArguments(" ends the line: one key per line follows
            if self.args_open:
                out.saw("hf")
                out.follow(self, 300)
                return
        elif text.strip() == ")" or "=" not in text:
            self.args_open = False
            out.stop_following(self)
            return
        for key, raw in _ARG.findall(text.strip()):
            raw = raw.strip().rstrip(",").strip()
            value: Any = {"True": True, "False": False, "None": None}.get(raw, raw)
            if isinstance(value, str):
                enum = _ENUM.fullmatch(value)
                if enum:
                    value = enum.group(2) or enum.group(1).lower()
                value = to_number(value)
            if key == "max_steps" and isinstance(value, float) and value <= 0:  # -1: train by epochs
                continue
            if value is not None and value != "":
                out.set_meta(key, value, line)
                if key in ("bf16", "fp16") and value is True:
                    out.set_meta("dtype", key, line)

    def _train_output(self, line: Line, out: Builder) -> None:
        """``TrainOutput(global_step=.., training_loss=.., metrics={..})`` repeats the summary the trainer
        printed; it is the summary when none was printed (a notebook prints no dict)."""
        m = _TRAIN_OUTPUT.search(line.text)
        if not m or "summary_line" in out.meta:
            return
        pairs = parse_dict(m.group(3)) or {}
        pairs.setdefault("train_loss", to_number(m.group(2)))
        out.saw("hf")
        out.record("summary", metric_values(pairs), line, step=int(m.group(1)), text=m.group(0))
        out.set_meta("summary_line", line.no, line)
        out.set_meta("completed", True, line)

    def _nb_row(self, line: Line, out: Builder) -> bool:
        """A row of the open notebook table: a train record (``Training Loss`` and, without a validation
        column, the other metrics: GRPO's reward, kl...) and, with ``Validation Loss``, an eval record
        holding the other columns as ``eval_*``. Blank, ``...`` and ``|---|`` lines inside the table are skipped."""
        assert self.nb is not None
        names, sep = self.nb
        text = line.text
        if not text.strip(" .\t|-:"):  # blank, "...", or a Markdown table's |---|---| rule
            out.follow(self, 3)
            return True
        cells = [c.strip() for c in _nb_split(text, sep)]
        if len(cells) < 2 or len(cells) > len(names):
            return False
        values: list[Any] = []
        for cell in cells:
            m = _NB_CELL.match(cell)
            if not m:
                return False
            values.append(None if m.group(1) == "No log" else to_number(m.group(1).replace(",", "")))
        if not isinstance(values[0], float):
            return False
        out.follow(self, 3)
        by_epoch = names[0] == "Epoch"
        pos = {"epoch": values[0]} if by_epoch else {}
        step = None if by_epoch else int(values[0])
        evaluated = "Validation Loss" in names
        train: dict[str, Any] = dict(pos)
        evals: dict[str, Any] = dict(pos)
        for name, value in zip(names[1:], values[1:], strict=False):
            if name == "Training Loss":
                train["loss"] = value
            elif name == "Validation Loss":
                evals["eval_loss"] = value
            else:
                key = _intern(re.sub(r"\s*/\s*", "/", name).replace(" ", "_").lower())
                (evals if evaluated else train)[f"eval_{key}" if evaluated else key] = value
        source = {} if by_epoch else {"step_source": "logged"}
        if train.get("loss") is not None:
            out.record("train", metric_values(train), line, step=step, **source)
        if evaluated and evals.get("eval_loss") is not None:
            out.record("eval", metric_values(evals), line, step=step, **source)
        return True

    def _close_table(self, out: Builder) -> None:
        table, kind, line = self.table, self.table_kind, self.table_line
        self.table = None
        out.stop_following(self)
        if not table or line is None:
            return
        rec_kind = "summary" if kind == "train" else "eval" if kind in ("eval", "test", "predict") else kind
        if rec_kind == "summary":
            out.set_meta("completed", True, line)
        out.saw("hf")
        values = metric_values(table)
        text = f"***** {kind} metrics ***** " + ", ".join(f"{k} = {v}" for k, v in table.items())
        out.record(rec_kind, values, line, text=text[:2000], table=True)

    def finish(self, out: Builder) -> None:
        if self.table is not None:
            self._close_table(out)
        self._last_progress(out)
        if self.nb_bar is not None and not any(e.get("data", {}).get("tag") == "progress" for e in out._events.values()):
            no, text, step, total = self.nb_bar
            out.event("info", Line(no, text, None), tag="progress", step=step, total=total, sec_per_step=None)

    def _last_progress(self, out: Builder) -> None:
        """Where the training bar stood at the end, as an info event (tag ``progress``): step, total,
        and the rate tqdm showed (``572.77s/it`` or ``4.21it/s``, as seconds per step)."""
        last = getattr(out.scanner, "last_line", {}).get(b"%|")
        if not last:
            return
        no, raw = last
        part = raw[raw.rfind(b"\r", 0, raw.rfind(b"%|")) + 1:].split(b"\r")[0]
        text, rank = lift_rank(clean(decode(part)))
        m = _BAR_TEXT.search(text)
        if not m:
            return
        desc = text[: m.start()].strip(" |:")
        total = out.meta.get("header", {}).get("total_steps")
        if (desc and not desc.endswith("]")) or (total and int(m.group(3)) != total):
            return
        r = _RATE.search(m.group(0))
        rate, unit = (float(r.group(1)), r.group(2)) if r and r.group(1).count(".") <= 1 else (None, None)
        sec = None if rate is None else rate if unit == "s/it" else (1 / rate if rate else None)
        out.event("info", Line(no, m.group(0).strip(), rank), tag="progress", step=int(m.group(2)),
                  total=int(m.group(3)), sec_per_step=sec)
