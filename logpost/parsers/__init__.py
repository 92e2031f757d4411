"""From a source (path, ``-``, ``.gz``) to a :class:`~logpost.model.RunLog`.

A real log mixes Axolotl, HF, DeepSpeed, torchrun and tracebacks, so the line parsers form a stack
that all see every line carrying one of their markers; none owns the file.
"""

from __future__ import annotations

import sys

from logpost.frame import assign_steps, build_frame
from logpost.model import InputError, Line, RunLog
from logpost.parsers.axolotl import AxolotlParser
from logpost.parsers.base import Builder, LineParser
from logpost.parsers.events import EventParser
from logpost.parsers.hf import HFParser
from logpost.parsers.jsonfiles import looks_like_state, parse_jsonl_line, parse_trainer_state
from logpost.parsers.normalise import Scanner, buffered, open_source, read_text_head, split_line

MAX_JSON = 1 << 30  # a trainer_state.json is read whole; refuse anything absurd

# Frameworks that wrap others win the name: Axolotl and LLaMA-Factory print HF Trainer dicts.
_WRAPPERS = ("axolotl", "llamafactory")


class JsonlParser(LineParser):
    markers = ('{"',)

    def feed(self, line: Line, out: Builder) -> None:
        parse_jsonl_line(line, out)


def line_parsers() -> list[LineParser]:
    return [HFParser(), AxolotlParser(), JsonlParser(), EventParser()]


def parse(path: str) -> RunLog:
    """Read one log source completely and return its RunLog.

    Raises:
        InputError: the source is missing, unreadable or not a log.
    """
    stream, name = open_source(path)
    try:
        stream = buffered(stream)
        out = Builder(name)
        head = read_text_head(stream)
        if looks_like_state(head):
            data = stream.read(MAX_JSON)
            parse_trainer_state(data, out)
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        else:
            lines = _scan(stream, out)
    except OSError as exc:
        raise InputError(f"{name}: read error ({exc.strerror or exc})") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return finish(out, lines)


def _scan(stream, out: Builder) -> int:  # type: ignore[no-untyped-def]
    parsers = line_parsers()
    table = [(p, p.markers) for p in parsers]
    markers = tuple(m.encode() for p in parsers for m in p.markers)
    scanner = Scanner(stream, markers)
    out.scanner = scanner
    for no, raw in scanner:
        out.tick()
        for line in split_line(no, raw):
            text = line.text
            for parser, marks in table:
                if out.following(parser) or any(m in text for m in marks):
                    parser.feed(line, out)
    for parser in parsers:
        parser.finish(out)
    out.meta["last_line_text"] = scanner.last_text.decode("utf-8", "replace").strip()[-500:]
    out.meta["bytes"] = scanner.bytes
    return scanner.lines


def finish(out: Builder, lines: int) -> RunLog:
    """Derive steps, build the frame and fix the framework order."""
    header = out.meta.get("header", {})
    completed = bool(out.meta.get("completed"))
    total = header.get("total_steps") or out.meta.get("max_steps")
    method = assign_steps(out.records, header.get("steps_per_epoch"), int(total) if total else None, completed)
    texts = [r.pop("_text", "") for r in out.records]
    for r in out.records:
        r.pop("table", None)
    frame = build_frame(out.records)
    frame.attrs["texts"] = texts  # evidence text of each row, same order as the frame
    ranked = sorted(out.frameworks.items(), key=lambda kv: (kv[0] not in _WRAPPERS, -kv[1], kv[0]))
    if out.events_dropped:
        out.meta["events_dropped"] = out.events_dropped
    return RunLog(source=out.source, frame=frame, events=out.events(), meta=out.meta,
                  frameworks=tuple(k for k, _ in ranked), lines=lines, step_method=method)
