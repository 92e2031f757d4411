"""Stream the first rows of a local dataset: JSON Lines / JSON array, CSV, Parquet, Arrow, text, a folder.

Nothing here reads a whole large file: JSON Lines and CSV are read line by line, a JSON array is
decoded element by element from 64 KiB chunks, Parquet through ``iter_batches`` and Arrow through the
IPC stream (or file) reader, one record batch at a time. Each row comes with its position in the
file: the 1-based physical line where it starts for text formats (what ``grep -n`` shows), the
1-based row index for Parquet and Arrow.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# Axolotl's own mapping (utils/data/shared.py EXTENSIONS_TO_DATASET_TYPES); anything else is json.
EXTENSION_FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".txt": "text",
                     ".json": "json", ".jsonl": "json", ".ndjson": "json"}
FORMATS = ("json", "csv", "parquet", "arrow", "text")
CHUNK = 1 << 16
SINGLE_OBJECT_LIMIT = 64 << 20  # a single JSON object (not rows) is decoded whole only up to this size
FOLDER_FILE_LIMIT = 50  # data files listed from a folder; the first rows come from the first files
METADATA_FILES = frozenset({"dataset_info.json", "dataset_dict.json", "state.json", "config.json",
                            "dataset_infos.json", "tokenizer_config.json"})


class ReadError(Exception):
    """A local dataset file that cannot be read; ``row`` is where, when known."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


@dataclass(frozen=True)
class Row:
    file: str  # the file this row came from (as displayed)
    row: int  # 1-based physical line (text formats) or row index (parquet, arrow)
    data: Any


def format_of(path: str, ds_type: str | None = None) -> str:
    """The reader for a file: ``ds_type`` when given, else by extension like Axolotl, else json."""
    if ds_type:
        fmt = ds_type.strip().lower()
        return {"jsonl": "json", "ndjson": "json", "txt": "text"}.get(fmt, fmt)
    name = path.lower().removesuffix(".gz")
    for ext, fmt in EXTENSION_FORMATS.items():
        if name.endswith(ext):
            return fmt
    return "json"


def display(path: Path) -> str:
    """A path as shown in findings: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def iter_rows(path: Path, fmt: str, limit: int) -> Iterator[Row]:
    """The first ``limit`` rows of one file.

    Raises:
        ReadError: the file cannot be opened or decoded (with the row where decoding failed).
    """
    if fmt not in FORMATS:
        raise ReadError(f"unsupported format {fmt!r} (supported: {', '.join(FORMATS)})")
    shown = display(path)
    reader = {"json": _json_rows, "csv": _csv_rows, "parquet": _parquet_rows, "arrow": _arrow_rows,
              "text": _text_rows}[fmt]
    try:
        n = 0
        for no, data in reader(path):
            if n >= limit:
                return
            n += 1
            yield Row(shown, no, data)
    except ReadError:
        raise
    except (OSError, EOFError) as exc:
        raise ReadError(f"cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    except Exception as exc:  # pyarrow and csv raise their own types on corrupt input
        raise ReadError(f"cannot read as {fmt} ({type(exc).__name__}: {str(exc)[:200]})") from None


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with _open_text(path) as fh:
        head = ""
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            head += chunk
            if head.strip():
                break
        stripped = head.lstrip().lstrip("\ufeff").lstrip()
        if not stripped:
            return
        line_offset = head[: len(head) - len(stripped)].count("\n")
        if stripped[0] == "[":
            yield from _json_array(fh, stripped[1:], line_offset + 1)
            return
        yield from _json_lines(fh, head, path)


def _json_lines(fh: IO[str], head: str, path: Path) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    buffer = head
    no = 0
    first = True
    while True:
        nl = buffer.find("\n")
        while nl < 0:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            buffer += chunk
            nl = buffer.find("\n")
        if nl < 0:
            line, buffer = buffer, ""
        else:
            line, buffer = buffer[:nl], buffer[nl + 1:]
        no += 1
        text = line.strip().lstrip("\ufeff")
        if text:
            try:
                value, end = decoder.raw_decode(text)
                if text[end:].strip():
                    raise ValueError("extra data after the value")
            except ValueError as exc:
                if first and text.startswith("{"):
                    yield from _single_object(path)
                    return
                raise ReadError(f"line {no} is not valid JSON ({str(exc)[:120]})", no) from None
            first = False
            yield no, value
        if nl < 0 and not buffer:
            return


def _single_object(path: Path) -> Iterator[tuple[int, Any]]:
    """A pretty-printed JSON document: a list of rows, or an object holding one (``{"data": [...]}``)."""
    if path.stat().st_size > SINGLE_OBJECT_LIMIT:
        raise ReadError("not JSON Lines and too large to read as one JSON document", 1)
    with _open_text(path) as fh:
        try:
            doc = json.load(fh)
        except ValueError as exc:
            raise ReadError(f"not valid JSON ({str(exc)[:120]})", 1) from None
    lists = [v for v in doc.values() if isinstance(v, list)] if isinstance(doc, dict) else []
    if len(lists) == 1:
        yield from enumerate(lists[0], 1)
        return
    yield 1, doc


def _json_array(fh: IO[str], rest: str, line: int) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    buffer = rest
    eof = False
    while True:
        i = 0
        while i < len(buffer) and buffer[i] in " \t\r\n,":
            i += 1
        line += buffer[:i].count("\n")
        buffer = buffer[i:]
        if not buffer and not eof:
            chunk = fh.read(CHUNK)
            eof = not chunk
            buffer += chunk
            continue
        if not buffer or buffer[0] == "]":
            return
        try:
            value, end = decoder.raw_decode(buffer)
        except ValueError as exc:
            if eof:
                raise ReadError(f"JSON array element at line {line} is not valid JSON ({str(exc)[:120]})",
                                line) from None
            chunk = fh.read(CHUNK)
            eof = not chunk
            buffer += chunk
            continue
        if end == len(buffer) and not eof:  # a number may continue in the next chunk
            chunk = fh.read(CHUNK)
            eof = not chunk
            if chunk:
                buffer += chunk
                continue
        yield line, value
        line += buffer[:end].count("\n")
        buffer = buffer[end:]


CSV_FIELD_LIMIT = 1 << 26  # the csv module's default (128 KiB) is smaller than a long conversation


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        try:
            reader.fieldnames  # noqa: B018 - reads the header, so line_num points at the first data row
        except csv.Error as exc:
            raise ReadError(f"line 1: {exc}", 1) from None
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ReadError(f"line {start}: {exc}", start) from None
            yield start, dict(row)


def _text_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with _open_text(path) as fh:
        for no, line in enumerate(fh, 1):
            yield no, {"text": line.rstrip("\r\n")}


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    n = 0
    for batch in pf.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def _arrow_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    n = 0
    with pa.memory_map(str(path), "r") as source:
        try:
            stream = ipc.open_stream(source)  # what `datasets` writes (save_to_disk, the cache)
            batches: Iterator[Any] = iter(stream)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        for batch in batches:
            for row in batch.to_pylist():
                n += 1
                yield n, row


def folder_files(folder: Path, fmt: str | None, split: str | None) -> list[Path]:
    """The data files of a local dataset folder, in a stable order.

    A ``save_to_disk`` folder gives its Arrow files (a DatasetDict folder: those of ``split``, else
    ``train``); any other folder gives the files whose extension matches the format.
    """
    if (folder / "dataset_dict.json").is_file():
        name = (split or "train").split("[")[0]
        sub = folder / name
        if not sub.is_dir():
            raise ReadError(f"split {name!r} not found in the saved DatasetDict {display(folder)}")
        folder = sub
    state = folder / "state.json"
    if state.is_file():
        try:
            files = [folder / f["filename"] for f in json.loads(state.read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError, OSError):
            files = sorted(folder.glob("*.arrow"))
        return files
    wanted = {fmt} if fmt else set(FORMATS) - {"text"}  # a stray LICENSE.txt is not data
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name in METADATA_FILES:
                continue
            lower = name.lower().removesuffix(".gz")
            ext = next((e for e in EXTENSION_FORMATS if lower.endswith(e)), None)
            if ext and EXTENSION_FORMATS[ext] in wanted:
                found.append(Path(root) / name)
        if len(found) >= FOLDER_FILE_LIMIT * 4:
            break
    # like `datasets`' data-file patterns: the split's files are those whose path names the split
    name = re.escape((split or "train").split("[")[0].lower())
    pattern = re.compile(rf"(^|[/_.\-]){name}([/_.\-]|\d|$)")
    of_split = [f for f in found if pattern.search(str(f.relative_to(folder)).lower())]
    return (of_split or found)[:FOLDER_FILE_LIMIT]
