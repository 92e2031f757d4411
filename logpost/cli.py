"""The command line: the only module that imports click. Each command is a thin layer over the library.

Exit codes: 0 nothing at or above ``--fail-on``; 1 something is; 2 usage error or unreadable input
(one line on stderr, no traceback unless ``--debug``).
"""

from __future__ import annotations

import functools
import locale
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from logpost import __version__
from logpost.model import InputError, Severity

FORMATS = ("terminal", "md", "json")
SEVERITIES = tuple(s.label for s in Severity)


def _default_lang() -> str:
    """Terminal output follows the locale (zh_* gives Chinese); documents default to both."""
    loc = os.environ.get("LC_ALL") or os.environ.get("LANG") or (locale.getlocale()[0] or "")
    return "zh" if loc.lower().startswith("zh") else "en"


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn InputError (and a broken pipe) into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"logpost: error: {exc}", err=True)
            ctx.exit(2)
        except BrokenPipeError:
            sys.stderr.close()
            ctx.exit(1)

    return wrapper


def _ids(value: str | None) -> tuple[str, ...]:
    return tuple(i.strip().upper() for i in (value or "").split(",") if i.strip())


def emit(text: str, output: str | None) -> None:
    """Data to stdout, or atomically to a file."""
    if output and output != "-":
        from logpost.outputs import write_atomic

        write_atomic(output, text)
    else:
        click.echo(text, nl=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="logpost")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Turn LLM fine-tuning logs into a diagnosis.

    \b
    Example:
      logpost analyze train.log
      logpost analyze train.log -f md --lang zh -o postmortem.md
    """


@main.command()
@click.argument("log", metavar="LOG")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True,
              help="Output format.")
@click.option("--lang", type=click.Choice(("en", "zh", "both")), default=None,
              help="Report language [default: both for documents, the locale's for the terminal].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=False), default=None,
              help="Write to this file (atomically) instead of stdout.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="error", show_default=True,
              help="Exit 1 when a finding is at or above this severity.")
@click.option("--select", default=None, help="Only these signature ids (comma-separated).")
@click.option("--ignore", default=None, help="Skip these signature ids (comma-separated).")
@click.option("--rules", "rules", multiple=True, type=click.Path(), help="Folder of extra TOML rules (repeatable).")
@click.option("--color/--no-color", default=None, help="Colour the terminal output [default: when a TTY].")
@handle_errors
def analyze(log: str, fmt: str, lang: str | None, output: str | None, fail_on: str, select: str | None,
            ignore: str | None, rules: tuple[str, ...], color: bool | None) -> None:
    """Diagnose one training log (a path, '-' for stdin, or a .gz file).

    \b
    Example:
      logpost analyze train.log
      logpost analyze train.log -f md --lang zh -o postmortem.md
      logpost analyze trainer_state.json -f json
      cat train.log | logpost analyze -
    """
    from logpost.analyze import Options
    from logpost.analyze import analyze as run_analysis
    from logpost.report import render

    pm = run_analysis(log, Options(select=_ids(select), ignore=_ids(ignore), rules=rules))
    if fmt == "json":
        emit(render.render_json(pm), output)
    elif fmt == "md":
        emit(render.render_markdown(pm, lang or "both"), output)
    else:
        colour = color if color is not None else (output is None and sys.stdout.isatty())
        emit(render.render_terminal(pm, lang or _default_lang(), colour=bool(colour)), output)
    worst = pm.worst
    if worst is not None and worst >= Severity.parse(fail_on):
        sys.exit(1)


@main.command()
@click.option("--lang", type=click.Choice(("en", "zh")), default=None, help="Title language.")
@handle_errors
def signatures(lang: str | None) -> None:
    """List the signature catalogue: id, severity, status, title.

    \b
    Example:
      logpost signatures --lang zh
    """
    from logpost.signatures.registry import load_catalogue

    lg = lang or _default_lang()
    for sig in load_catalogue().values():
        click.echo(f"{sig.id:<20} {sig.severity.label:<9} {sig.status:<8} {sig.title[lg]}")


@main.command()
@click.argument("sig_id", metavar="ID")
@click.option("--lang", type=click.Choice(("en", "zh", "both")), default=None, help="Language.")
@handle_errors
def explain(sig_id: str, lang: str | None) -> None:
    """Explain one signature: what it means, why it happens, what to do.

    \b
    Example:
      logpost explain ZERO_LOSS --lang zh
    """
    from logpost.signatures.registry import load_catalogue

    sigs = load_catalogue()
    sig = sigs.get(sig_id.upper())
    if sig is None:
        raise InputError(f"unknown signature id {sig_id!r} (see `logpost signatures`)")
    langs = ("zh", "en") if lang == "both" else (lang or _default_lang(),)
    for lg in langs:
        click.echo(f"{sig.id} · {sig.severity.label} · {sig.title[lg]}\n")
        click.echo(sig.why[lg] + "\n")
        for i, step in enumerate(sig.remediation, 1):
            scope = f" [{', '.join(step.frameworks)}]" if step.frameworks else ""
            click.echo(f"{i}.{scope} {step.text[lg]}")
        click.echo("")


@main.command("frame")
@click.argument("log", metavar="LOG")
@click.option("-o", "--output", default=None, metavar="FILE",
              help="metrics.csv | metrics.parquet | metrics.json (written atomically) [default: CSV on stdout].")
@handle_errors
def frame_cmd(log: str, output: str | None) -> None:
    """Write the metrics frame of a log (file, '-', .gz or run directory) with the declared dtypes.

    \b
    Example:
      logpost frame train.log -o metrics.parquet
      logpost frame output_dir/ -o metrics.csv
      logpost frame train.log | head
    """
    from logpost.frame import frame_bytes
    from logpost.parsers import parse

    fmt = os.path.splitext(output)[1].lower() if output and output != "-" else ".csv"
    data = frame_bytes(parse(log).frame, fmt)
    if output and output != "-":
        from logpost.outputs import write_atomic

        write_atomic(output, data)
    else:
        click.echo(data.decode("utf-8"), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
