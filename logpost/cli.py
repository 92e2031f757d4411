"""The command line (the click commands; the terminal renderers use click only to colour). Each command is a thin layer over the library.

Exit codes: 0 nothing at or above ``--fail-on``; 1 something is; 2 usage error or unreadable input
(one line on stderr, no traceback unless ``--debug``).
"""

from __future__ import annotations

import contextlib
import functools
import locale
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# logpost does no linear algebra: numpy's OpenBLAS need not start a thread pool, whose threads spin on the
# other cores for ~0.15 s of CPU at start-up (set before numpy is first imported; a caller's value wins)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# pandas keeps string columns in Arrow arrays; Arrow's default pool (jemalloc) holds on to freed pages, ~30 MB
# more peak RSS on a 1 GiB log. A command runs once and exits: the system allocator (read by Arrow when its
# default pool is first used, so pyarrow need not be imported for --help, --version or shell completion).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import click  # noqa: E402

from logpost import __version__  # noqa: E402
from logpost.model import InputError, Severity  # noqa: E402

FORMATS = ("terminal", "md", "json", "html", "pdf")
SEVERITIES = tuple(s.label for s in Severity)
LAYOUTS = ("messages", "prompt-completion", "text")  # of a plain data file (`logpost check --layout`)


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


_warned: set[str] = set()


def warn_once(text: str) -> None:
    """One line on stderr, once per process."""
    if text not in _warned:
        _warned.add(text)
        click.echo(f"logpost: warning: {text}", err=True)


def check_cjk_font(lang: str) -> None:
    """Chinese in a PDF or a plot needs a CJK font; without one it is drawn as boxes (tofu): say so once."""
    if lang not in ("zh", "both"):
        return
    from logpost.report.charts import cjk_font

    if cjk_font() is None:
        warn_once("no CJK font found: install fonts-noto-cjk (Chinese in a PDF would be boxes; plots fall back "
                  "to English labels)")


def _colour(color: bool | None, output: str | None) -> bool:
    """--color/--no-color, else colour on a terminal unless NO_COLOR is set (https://no-color.org)."""
    if color is not None:
        return color
    return output is None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _term_width(output: str | None) -> int | None:
    """The width terminal output wraps at: the terminal's (or ``COLUMNS``); None into a pipe or a file."""
    if output is None and (sys.stdout.isatty() or os.environ.get("COLUMNS")):
        import shutil

        return max(40, shutil.get_terminal_size().columns)
    return None


def _ids(value: str | None) -> tuple[str, ...]:
    return tuple(i.strip().upper() for i in (value or "").split(",") if i.strip())


def emit(text: str | bytes, output: str | None) -> None:
    """Data to stdout, or atomically to a file."""
    if output and output != "-":
        from logpost.outputs import write_atomic

        write_atomic(output, text)
    else:
        if isinstance(text, bytes) and sys.stdout.isatty():
            raise InputError("a PDF is binary: write it with -o FILE (or pipe stdout to a file)")
        click.echo(text, nl=False)


def signature_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--select / --ignore / --rules, shared by analyze and scan."""
    fn = click.option("--rules", "rules", multiple=True, type=click.Path(),
                      help="Folder of extra TOML rules (repeatable).")(fn)
    fn = click.option("--ignore", default=None, help="Skip these signature ids (comma-separated).")(fn)
    return click.option("--select", default=None, help="Only these signature ids (comma-separated).")(fn)


def storage_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--storage-option, shared by analyze and scan: settings of the object store for s3://... paths."""
    return click.option("--storage-option", "storage_opts", multiple=True, metavar="KEY=VALUE",
                        help="Object storage setting for URL paths (repeatable), e.g. endpoint_url=http://host:9000,"
                             " profile=NAME, anon=true; credentials come from the standard variables and files.")(fn)


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
@signature_options
@click.option("--config", "config", default=None, type=click.Path(),
              help="The run's Axolotl config: check it against its data to name the cause of a zero loss.")
@click.option("--color/--no-color", default=None, help="Colour the terminal output [default: when a TTY].")
@click.option("--template-dir", type=click.Path(file_okay=False), default=None,
              help="Folder whose templates/strings override or extend the defaults (docs/templates.md).")
@storage_options
@handle_errors
def analyze(log: str, fmt: str, lang: str | None, output: str | None, fail_on: str, select: str | None,
            ignore: str | None, rules: tuple[str, ...], config: str | None, color: bool | None,
            template_dir: str | None, storage_opts: tuple[str, ...]) -> None:
    """Diagnose one training log (a path, '-' for stdin, a .gz file, or an object: s3://bucket/run/train.log.gz).

    \b
    Example:
      logpost analyze train.log
      logpost analyze train.log -f md --lang zh -o postmortem.md
      logpost analyze train.log -f pdf --lang zh -o postmortem.pdf
      logpost analyze train.log -f html -o postmortem.html --template-dir my_templates
      logpost analyze trainer_state.json -f json
      cat train.log | logpost analyze -
      logpost analyze train.log --config axolotl.yml
      logpost analyze s3://bucket/run-7/train.log.gz
    """
    from logpost import storage
    from logpost.analyze import Options
    from logpost.analyze import analyze as run_analysis
    from logpost.report import render

    storage.configure(storage.parse_options(storage_opts))
    if log == "-" and sys.stdin.isatty():
        click.echo("logpost: reading the log from stdin (paste it, then Ctrl-D on an empty line; "
                   "or give a file: logpost analyze train.log)", err=True)
    pm = run_analysis(log, Options(select=_ids(select), ignore=_ids(ignore), rules=rules, config=config))
    if fmt in ("html", "pdf"):
        check_cjk_font(lang or "both")
    if fmt == "json":
        emit(render.render_json(pm), output)
    elif fmt == "md":
        emit(render.render_markdown(pm, lang or "both", template_dir), output)
    elif fmt == "html":
        emit(render.render_html(pm, lang or "both", template_dir), output)
    elif fmt == "pdf":
        emit(render.render_pdf(pm, lang or "both", template_dir), output)
    else:
        colour = _colour(color, output)
        emit(render.render_terminal(pm, lang or _default_lang(), colour=bool(colour), width=_term_width(output)),
             output)
    worst = pm.worst
    if worst is not None and worst >= Severity.parse(fail_on):
        sys.exit(1)


@main.command()
@click.argument("target", metavar="CONFIG_OR_DATA")
@click.option("-f", "--format", "fmt", type=click.Choice(("terminal", "json", *LAYOUTS)), default="terminal",
              show_default=True, help="Output format (as in analyze and scan).")
@click.option("--output-format", "fmt_alias", type=click.Choice(("terminal", "json")), default=None, hidden=True)
@click.option("--layout", "data_format", type=click.Choice(LAYOUTS), default=None,
              help="Layout of a plain data file [default: sniffed].")
@click.option("--rows", type=int, default=100, show_default=True, help="Rows sampled per dataset (streamed).")
@click.option("--messages-field", default="messages", show_default=True, help="Plain data: key of the turns.")
@click.option("--role-key", default="role", show_default=True, help="Plain data: role key inside a turn.")
@click.option("--content-key", default="content", show_default=True, help="Plain data: content key inside a turn.")
@click.option("--prompt-field", default="prompt", show_default=True, help="Plain data: prompt key.")
@click.option("--completion-field", default="completion", show_default=True, help="Plain data: completion key.")
@click.option("--text-field", default="text", show_default=True, help="Plain data: text key.")
@click.option("--assistant-only-loss", is_flag=True, help="Plain messages data: only assistant turns are trained.")
@click.option("--lang", type=click.Choice(("en", "zh", "both")), default=None, help="Language [default: the locale's].")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write to this file (atomically).")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="error", show_default=True,
              help="Exit 1 when a finding is at or above this severity.")
@click.option("--color/--no-color", default=None, help="Colour the terminal output [default: when a TTY].")
@handle_errors
def check(target: str, fmt: str, fmt_alias: str | None, data_format: str | None, rows: int, lang: str | None,
          output: str | None, fail_on: str, color: bool | None, **mapping: Any) -> None:
    """Check an Axolotl config against its local datasets (or one HF/TRL data file) on a sample of rows.

    \b
    Example:
      logpost check axolotl.yml
      logpost check axolotl.yml -f json
      logpost check data.jsonl --layout messages --role-key from --content-key value
    """
    from logpost.check import CheckOptions
    from logpost.check import check as run_check
    from logpost.check.render import render_json, render_terminal

    if fmt in LAYOUTS:  # `--format messages`: the layout option's name before 0.2
        fmt, data_format = "terminal", data_format or fmt
    fmt = fmt_alias or fmt
    report = run_check(target, CheckOptions(rows=rows, data_format=data_format, **mapping))
    colour = _colour(color, output)
    emit(render_json(report) if fmt == "json" else
         render_terminal(report, lang or _default_lang(), colour=bool(colour)), output)
    if not report.checked:
        click.echo(f"logpost: error: nothing could be checked in {target} (see the findings above)", err=True)
        sys.exit(2)
    if report.worst is not None and report.worst >= Severity.parse(fail_on):
        sys.exit(1)


@main.command()
@click.argument("target", metavar="LOG|RUN_DIR")
@click.option("--exit-on", type=click.Choice(SEVERITIES), default=None,
              help="Stop with exit code 1 at the first finding at or above this severity.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="error", show_default=True,
              help="When the run ends: exit 1 when a finding is at or above this severity.")
@click.option("--on-finding", "on_finding", default=None, metavar="CMD",
              help="Shell command run for each new finding, with the finding's JSON on stdin.")
@click.option("--report-dir", type=click.Path(file_okay=False), default=None,
              help="Write the postmortem (postmortem.md, .html, .json) here when watch ends.")
@click.option("--idle-timeout", type=float, default=None, metavar="SECONDS",
              help="End after this many seconds without a new line [default: wait for the run to end].")
@click.option("--lang", type=click.Choice(("en", "zh")), default=None, help="Language [default: the locale's].")
@signature_options
@handle_errors
def watch(target: str, exit_on: str | None, fail_on: str, on_finding: str | None, report_dir: str | None,
          idle_timeout: float | None, lang: str | None, select: str | None, ignore: str | None,
          rules: tuple[str, ...]) -> None:
    """Follow a log being written (like tail -F) and print each new finding once, as it appears.

    Ends by itself when the log shows the run ended (its summary, a launcher's exit, a traceback as the
    last line) or after --idle-timeout; Ctrl-C writes the postmortem of the log so far.

    \b
    Example:
      logpost watch train.log --exit-on critical --report-dir postmortem/
      logpost watch runs/exp7/ --on-finding 'notify-send logpost "$(jq -r .id)"'
    """
    from logpost.analyze import Options
    from logpost.analyze import signatures as select_signatures
    from logpost.watch import WatchOptions
    from logpost.watch import watch as run_watch

    options = Options(select=_ids(select), ignore=_ids(ignore), rules=rules)
    select_signatures(options)  # unknown ids and bad rules: exit 2 before waiting for the log
    code = run_watch(target, WatchOptions(
        exit_on=Severity.parse(exit_on) if exit_on else None, fail_on=Severity.parse(fail_on),
        on_finding=on_finding, report_dir=report_dir, idle_timeout=idle_timeout, lang=lang or _default_lang(),
        analysis=options))
    if sys.stdout is sys.__stdout__ and sys.stdout is not None:  # a real process (not CliRunner): everything is written and flushed, and
        sys.stdout.flush()  # the interpreter's teardown of pandas & co. takes 0.2-0.8 s: a stop should be a stop
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@main.command()
@click.option("--lang", type=click.Choice(("en", "zh")), default=None, help="Title language.")
@handle_errors
def signatures(lang: str | None) -> None:
    """List the signature catalogue: id, severity, status, title.

    \b
    Example:
      logpost signatures --lang zh
    """
    from logpost.report.render import translate
    from logpost.scan.outputs import pad
    from logpost.signatures.registry import load_catalogue

    lg = lang or _default_lang()
    rows = [("ID", "SEVERITY", "STATUS", "TITLE") if lg == "en" else ("编号", "级别", "状态", "标题")]
    for sig in load_catalogue().values():
        sev = sig.severity.label if lg == "en" else translate("sev_" + sig.severity.label, lg)
        rows.append((sig.id, sev, sig.status, sig.title[lg]))
    for r in rows:
        click.echo(f"{pad(r[0], 20)} {pad(r[1], 9)} {pad(r[2], 8)} {r[3]}")


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
    from logpost.signatures.explain import explain_text
    from logpost.signatures.registry import load_catalogue

    sig = load_catalogue().get(sig_id.upper())
    if sig is None:
        raise InputError(f"unknown signature id {sig_id!r} (see `logpost signatures`)")
    for lg in ("zh", "en") if lang == "both" else (lang or _default_lang(),):
        click.echo(explain_text(sig, lg))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(), metavar="[PATH]...")
@click.option("-f", "--format", "fmt", type=click.Choice(("terminal", "csv", "json", "md", "html")),
              default="terminal", show_default=True, help="Output format (md/html: an index with counts and a plot).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write to this file (atomically).")
@click.option("--db", default=None, help="Catalog (SQLite) [default: $LOGPOST_DB or ~/.local/share/logpost/runs.sqlite].")
@click.option("--no-db", is_flag=True, help="Keep no catalog (analyse everything, remember nothing).")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None, help="Worker processes [default: all cores].")
@click.option("--dask", "dask", metavar="ADDRESS", default=None, help="Analyse on this Dask scheduler's workers.")
@click.option("--report-dir", type=click.Path(file_okay=False), default=None,
              help="Write each run's postmortem here (HTML with -f html, else Markdown).")
@click.option("--glob", "globs", multiple=True, help="Log file names (repeatable; replaces the defaults).")
@click.option("--exclude", "excludes", multiple=True, help="Folder names to skip (repeatable; adds to .*, wandb).")
@click.option("--force", is_flag=True, help="Re-analyse every run, changed or not.")
@click.option("--signature", default=None, help="Only runs with one of these findings (comma-separated ids).")
@click.option("--verdict", default=None, help="Only these verdicts (failed,degraded,unknown,healthy,error).")
@click.option("--framework", default=None, help="Only these frameworks (comma-separated).")
@click.option("--since", default=None, help="Only runs whose logs were last written on/after this UTC date.")
@click.option("--until", default=None, help="Only runs whose logs were last written before this UTC date.")
@click.option("--lang", type=click.Choice(("en", "zh", "both")), default=None,
              help="Language [default: both for md/html and reports, the locale's for the terminal].")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="error", show_default=True,
              help="Exit 1 when a listed run has a finding at or above this severity.")
@signature_options
@click.option("--color/--no-color", default=None, help="Colour the terminal table [default: when a TTY].")
@click.option("--timings", is_flag=True, help="Print where the time went (phases, CPU per worker) as JSON on stderr.")
@storage_options
@handle_errors
def scan(paths: tuple[str, ...], fmt: str, output: str | None, db: str | None, no_db: bool, jobs: int | None,
         dask: str | None, report_dir: str | None, globs: tuple[str, ...], excludes: tuple[str, ...], force: bool,
         signature: str | None, verdict: str | None, framework: str | None, since: str | None, until: str | None,
         lang: str | None, fail_on: str, select: str | None, ignore: str | None, rules: tuple[str, ...],
         color: bool | None, timings: bool, storage_opts: tuple[str, ...]) -> None:
    """Find the runs under PATH (a folder, or an object storage prefix such as s3://bucket/runs/), analyse
    them in parallel and list them; or query the catalog.

    \b
    Example:
      logpost scan /mnt/runs
      logpost scan /mnt/runs -f html -o index.html --report-dir reports/
      logpost scan /mnt/runs --db runs.sqlite
      logpost scan --db runs.sqlite --signature ZERO_LOSS --since 2026-01-01 --verdict failed -f csv
      logpost scan /mnt/runs --dask tcp://scheduler:8786
      logpost scan s3://bucket/runs/ --storage-option endpoint_url=http://minio:9000
    """
    from logpost import scan as lib
    from logpost import storage
    from logpost.analyze import Options
    from logpost.scan.outputs import render

    filters = lib.parse_filters(signature, verdict, framework, since, until)
    if no_db and not paths:
        raise InputError("--no-db needs a PATH to scan (a query reads the catalog)")
    if fmt == "html":  # the index's plot
        check_cjk_font(lang or "both")
    if paths:
        opts = lib.ScanOptions(
            db=":memory:" if no_db else db, jobs=jobs, dask=dask, report_dir=report_dir, force=force,
            analysis=Options(select=_ids(select), ignore=_ids(ignore), rules=rules), filters=filters,
            globs=globs or lib.DEFAULT_GLOBS, excludes=lib.DEFAULT_EXCLUDES + excludes, report_lang=lang or "both",
            report_format="html" if fmt == "html" else "md",  # an HTML index links HTML postmortems
            storage=storage.parse_options(storage_opts))
        started = _process_age()
        with _stoppable(None if no_db else (db or lib.default_db())), _scan_progress() as progress:
            result = lib.scan(paths, opts, progress)
    else:
        result = lib.query(db, filters)
    colour = _colour(color, output)
    clock = time.perf_counter()
    emit(render(result, fmt, lang or ("both" if fmt in ("md", "html") else _default_lang()), bool(colour), output),
         output)
    if timings and paths:
        import json
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        report = {"start_up": started, **result.timings, "output": time.perf_counter() - clock,
                  "process_cpu": usage.ru_utime + usage.ru_stime}
        click.echo(json.dumps(report, sort_keys=True), err=True)
    worst = result.worst()
    sys.exit(1 if worst is not None and worst >= Severity.parse(fail_on) else 0)


def _process_age() -> float | None:
    """Seconds since this process started (interpreter start-up and imports, before the command ran)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            ticks = int(fh.read().rpartition(b")")[2].split()[19])
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _stoppable(db: str | None) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop a scan at once: the workers are killed (not waited for), the catalog keeps
    every run committed so far, and the command exits 130 (SIGINT) or 143 (SIGTERM) with one line.
    A second signal during that clean-up is ignored."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return

    def stop(signo: int, frame: object) -> None:
        got.append(signo)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        kept = f"; the runs analysed so far are in the catalog {db}: scan again to finish" if db else ""
        click.echo(f"logpost: scan interrupted{kept}", err=True)
        # the catalog is closed and the workers are gone; the interpreter's own teardown (modules, GC)
        # takes ~0.5 s on a busy machine, longer than a stop should
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + (got[0] if got else signal.SIGINT))
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _scan_progress() -> Iterator[Callable[..., None] | None]:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    state: dict[str, Any] = {}

    def update(done: int, total: int, outcome: Any) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label="analysing", file=sys.stderr).__enter__()
        state["bar"].update(1)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
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
    emit(data if output and output != "-" else data.decode("utf-8"), output)


if __name__ == "__main__":  # pragma: no cover
    main()
