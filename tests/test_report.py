"""HTML and PDF postmortems on real fixtures: content, language, safety, determinism, appendix."""

from __future__ import annotations

import gzip
import http.server
import os
import re
import shutil
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner

from logpost.analyze import analyze
from logpost.cli import main
from logpost.model import InputError
from logpost.report import appendix, charts
from logpost.report.context import build_context, strings
from logpost.report.render import render_html, render_markdown, render_pdf
from tests.conftest import fixture

ZERO = fixture("generated/axolotl_dev_model_role.log")  # ZERO_LOSS from step 1, Axolotl timestamps
NAN = fixture("generated/hf_lr_nan_5e5.log")  # grad_norm nan from step 5, HF transformers 5.x
HEALTHY = fixture("generated/hf_healthy.log")
POPPLER = shutil.which("pdftotext") and shutil.which("pdffonts")


@pytest.fixture(scope="module")
def zero():
    return analyze(ZERO)


@pytest.fixture(scope="module")
def nan():
    return analyze(NAN)


def file_lines(path: str) -> list[bytes]:
    with open(path, "rb") as fh:
        return fh.read().split(b"\n")


# -- context ---------------------------------------------------------------------------------------

def test_summary_says_what_since_when_and_the_cost(zero, nan):
    s = build_context(zero, "both").summary
    assert (s.root_id, s.since_step, s.since_line, s.last_step) == ("ZERO_LOSS", 1, 769, 40)
    assert s.wasted_steps == 40 and s.wasted_share == 1.0
    assert "40 of the 40 logged training steps" in " ".join(s.sentences["en"])
    assert "从这里开始的 40 步（100%）都白跑了" in " ".join(s.sentences["zh"])
    root = nan.findings[0]
    s = build_context(nan, "en").summary
    assert s.since_step == root.first_step and s.wasted_steps == 40 - root.first_step + 1
    healthy = build_context(analyze(HEALTHY), "en").summary
    assert healthy.wasted_steps is None and healthy.sentences["en"][0].startswith("No known failure")


def test_timeline_and_configuration_come_from_the_log(zero):
    ctx = build_context(zero, "en")
    kinds = [e.kind for e in ctx.timeline]
    assert kinds[0] == "start" and kinds[-1] == "end" and "finding" in kinds and "completed" in kinds
    lines = [e.line for e in ctx.timeline[1:-1]]
    assert lines == sorted(lines)
    finding = next(e for e in ctx.timeline if e.kind == "finding" and "ZERO_LOSS" in e.label["en"])
    assert (finding.line, finding.step) == (769, 1)
    assert ctx.header.started == "2026-11-27 23:56" and ctx.header.model == "/home/user/ft/tiny-model"
    config = {c.key: c for c in ctx.config}
    assert config["total_supervised_tokens"].value == "0" and config["total_supervised_tokens"].line == 740
    assert config["total_num_tokens"].value == "12,342"
    raw = file_lines(ZERO)
    for item in ctx.config:  # each setting's line really says it
        if item.line is not None:
            assert item.value.replace(",", "").split("/")[-1].encode() in raw[item.line - 1].replace(b"_", b"")


def test_hf_header_is_configuration(nan):
    config = {c.key: c.value for c in build_context(nan, "en").config}
    assert config["total_steps"] == "40" and config["steps_per_epoch"] == "64" and config["num_examples"] == "512"


# -- appendix --------------------------------------------------------------------------------------

def test_appendix_shows_each_cited_line_with_its_file_context(zero):
    app = build_context(zero, "en").appendix
    cited = {e.line for f in zero.findings for e in f.evidence if e.line is not None}
    assert app.available and {n for ex in app.excerpts for n in ex.cited} == cited
    raw = file_lines(ZERO)
    citing = {n: {f.id for f in zero.findings for e in f.evidence if e.line == n} for n in cited}
    for ex in app.excerpts:
        assert [ln.no for ln in ex.lines] == list(range(ex.first, ex.last + 1))
        assert set(ex.refs) == set().union(*(citing[n] for n in ex.cited))
        for ln in ex.lines:
            assert ln.text == appendix.display(raw[ln.no - 1])
            assert ln.cited == (ln.no in cited)
    assert any(ln.text.startswith("{'loss': '0'") for ex in app.excerpts for ln in ex.lines if ln.no == 769)


def test_read_lines_across_block_boundaries_and_gzip(tmp_path, monkeypatch):
    raw = file_lines(ZERO)
    wanted = [1, 2, 31, 740, 769, 953, len(raw) - 1, len(raw) + 50]
    expect = {n: raw[n - 1] for n in wanted if n <= len(raw) - 1}
    gz = tmp_path / "run.log.gz"
    gz.write_bytes(gzip.compress(open(ZERO, "rb").read()))
    for block in (1, 7, 4096, 1 << 20):
        monkeypatch.setattr(appendix, "BLOCK", block)
        assert appendix.read_lines(ZERO, wanted) == expect
        assert appendix.read_lines(str(gz), wanted) == expect


def test_last_line_without_newline(tmp_path):
    p = tmp_path / "x.log"
    p.write_bytes(b"a\r\nb\n\x1b[31mc\x1b[0m")
    assert appendix.read_lines(str(p), [1, 2, 3, 4]) == {1: b"a\r", 2: b"b", 3: b"\x1b[31mc\x1b[0m"}
    assert appendix.display(b"\x1b[31mc\x1b[0m") == "c"


def test_stdin_has_no_file_to_reread():
    r = CliRunner().invoke(main, ["analyze", "-", "-f", "html", "--lang", "en"], input=open(ZERO, "rb").read())
    assert r.exit_code == 1, r.output
    assert "read from stdin" in r.stdout and 'id="L769"' in r.stdout and 'href="#L769"' in r.stdout
    r = CliRunner().invoke(main, ["analyze", "-", "-f", "md", "--lang", "zh"], input=open(ZERO, "rb").read())
    assert "无法回读上下文" in r.stdout and ">    769  {'loss': '0'" in r.stdout


def test_a_source_that_is_not_a_file_degrades(zero, tmp_path):
    import dataclasses

    gone = dataclasses.replace(zero, source=str(tmp_path / "rotated-away.log"))
    app = build_context(gone, "en").appendix
    assert not app.available and app.reason == "not_a_file" and {740, 769} <= {e.line for e in app.cited}
    assert "not one file that can be re-read" in render_html(gone, "en")


# -- HTML ------------------------------------------------------------------------------------------

def test_html_is_self_contained(zero):
    html = render_html(zero, "both")
    assert "<style>" in html and "<script" not in html and "<link" not in html
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(r.startswith(("#", "data:")) for r in refs), [r for r in refs if not r.startswith("#")]
    assert "url(" not in html.split("<style>")[1].split("</style>")[0]
    assert 'src="data:image/svg+xml;base64,' in html


def test_log_text_is_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    lines = open(NAN, encoding="utf-8").read().split("\n")
    lines.insert(38, evil)  # right after the first cited nan line (38): shown in the appendix context
    lines.append('"base_model": "<img src=x onerror=alert(2)>"')
    lines.append(evil)  # the last line: shown on the timeline
    log = tmp_path / "evil.log"
    log.write_text("\n".join(lines), encoding="utf-8")
    pm = analyze(str(log))
    html = render_html(pm, "both")
    assert evil not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2
    md = render_markdown(pm, "en")
    assert evil in md  # Markdown is text: it carries the line as the log has it, inside code


def test_both_interleaves_per_section(zero):
    html = render_html(zero, "both")
    order = ["<main>", 'id="summary"', "Summary", "概要", "The run failed", "训练失败", 'id="findings"',
             "Zero loss: no token is supervised", "loss 恒为 0", "Why", "原因", "What to do", "处理建议",
             'id="timeline"', "Timeline", "时间线", 'id="appendix"', "Appendix", "附录"]
    at = 0
    for text in order:  # each in turn, after the previous one
        at = html.index(text, at)
    assert html.count('lang="zh-CN"') > 20 and html.count('lang="en"') > 20


def test_single_language_has_no_other_language(zero):
    zh = render_html(zero, "zh")
    en = render_html(zero, "en")
    table = strings()
    for key in ("summary", "timeline", "remediation_checklist", "appendix", "config", "charts_note"):
        assert table[key]["zh"] in zh and table[key]["en"] not in zh
        assert table[key]["en"] in en and table[key]["zh"] not in en
    assert '<html lang="zh-CN">' in zh


def test_same_log_same_bytes(zero):
    assert render_html(zero, "both") == render_html(analyze(ZERO), "both")
    assert render_markdown(zero, "both") == render_markdown(analyze(ZERO), "both")


# -- charts ----------------------------------------------------------------------------------------

def test_chart_marks_findings_and_speaks_chinese(nan, caplog):
    if charts.cjk_font() is None:
        pytest.skip("no CJK font installed (fonts-noto-cjk)")
    with caplog.at_level("WARNING", logger="matplotlib.font_manager"):
        zh = charts.metrics_figure(nan, ("zh",), strings(), wasted_from=nan.findings[0].first_step)
    # the bold titles come from the CJK family's bold file (Debian ships it): no faked weight, no warning
    assert not [r for r in caplog.records if "findfont" in r.getMessage()]
    en = charts.metrics_figure(nan, ("en",), strings())
    assert zh.startswith("<svg") and "<?xml" not in zh
    assert re.search(r'id="NotoSansCJK\w*-Regular-[0-9a-f]+"', zh)  # Chinese glyphs drawn from the CJK font
    assert not re.search(r'id="NotoSansCJK', en)
    assert zh == charts.metrics_figure(nan, ("zh",), strings(), wasted_from=nan.findings[0].first_step)
    assert "<dc:date>" not in zh


def test_downsample_keeps_spikes_and_marked_points():
    import numpy as np

    n = 60_000
    x = np.arange(1, n + 1, dtype="float64")
    y = np.sin(x / 900.0)
    y[41_234] = 50.0
    y[7] = -50.0
    xs, ys = charts.downsample(x, y, keep=np.array([30_000]))
    assert len(xs) <= charts.MAX_POINTS + 3
    assert 50.0 in ys and -50.0 in ys and 30_001.0 in xs and xs[0] == 1 and xs[-1] == n
    assert list(xs) == sorted(xs)


# -- PDF -------------------------------------------------------------------------------------------

@pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdftotext, pdffonts) not installed")
def test_zh_pdf_embeds_a_cjk_font_and_gives_back_the_title(zero, tmp_path):
    pdf = render_pdf(zero, "zh")
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "pm.pdf"
    path.write_bytes(pdf)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    cjk = [ln for ln in fonts.splitlines() if "CJK" in ln]
    assert cjk and all(" yes " in ln for ln in cjk), fonts  # embedded
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "训练复盘报告" in text and "白跑" in text and "第一步" in text


def test_print_html_embeds_the_chart_as_png(zero):
    html = render_html(zero, "zh", media="print")
    assert 'src="data:image/png;base64,' in html and "data:image/svg" not in html
    png = re.search(r'data:image/png;base64,([A-Za-z0-9+/=]+)', html).group(1)
    import base64

    raw = base64.b64decode(png)
    width = int.from_bytes(raw[16:20], "big")
    assert raw.startswith(b"\x89PNG") and width == round(charts.FIG_WIDTH * charts.PNG_DPI)


def test_pdf_is_deterministic(zero, monkeypatch):
    # embedded font subsets carry a modification time (WeasyPrint 70 / fontTools): pinned, and the
    # environment is left as it was
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = render_pdf(zero, "en")
    assert "SOURCE_DATE_EPOCH" not in os.environ
    time.sleep(1.1)
    assert render_pdf(zero, "en") == first


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server API
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_pdf_fetches_nothing_outside_the_package(zero, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        (tmp_path / "report.html.j2").write_text(
            '{% extends "default/report.html.j2" %}{% block extra_css %}'
            f'@import url("{url}/a.css"); body {{ background: url("{url}/b.png") }}'
            '{% endblock %}{% block footer %}'
            f'<img src="{url}/c.png"><img src="file:///etc/passwd"><img src="../../etc/hostname">'
            '{% endblock %}', encoding="utf-8")
        pdf = render_pdf(zero, "en", str(tmp_path))
    finally:
        server.shutdown()
    assert pdf.startswith(b"%PDF-") and _Counter.hits == []


def test_fetcher_allows_data_and_package_assets_only(tmp_path):
    from importlib import resources

    from logpost.report.pdf import RefusedURL, make_fetcher

    root = str(resources.files("logpost.templates"))
    fetch = make_fetcher([root])
    assert fetch.fetch("data:text/plain;base64,aGk=").read() == b"hi"
    assert b"--ink" in fetch.fetch(f"file://{root}/report.css").read()
    for url in ("http://example.com/x.png", "https://example.com/", "file:///etc/passwd",
                f"file://{root}/../setup.cfg", "ftp://example.com/x"):
        with pytest.raises(RefusedURL):
            fetch.fetch(url)


# -- CLI and template folder -------------------------------------------------------------------------

def test_cli_pdf_and_html_to_files(tmp_path):
    pdf, html = tmp_path / "pm.pdf", tmp_path / "pm.html"
    r = CliRunner().invoke(main, ["analyze", ZERO, "-f", "pdf", "--lang", "zh", "-o", str(pdf)])
    assert r.exit_code == 1 and r.stdout == "" and pdf.read_bytes().startswith(b"%PDF-")
    r = CliRunner().invoke(main, ["analyze", NAN, "-f", "html", "-o", str(html)])
    assert r.exit_code == 1 and "<!DOCTYPE html>" in html.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pm.html", "pm.pdf"]
    r = CliRunner().invoke(main, ["analyze", HEALTHY, "-f", "pdf"])  # stdout is a pipe here
    assert r.exit_code == 0 and r.stdout_bytes.startswith(b"%PDF-")


def test_template_dir_overrides_and_extends(tmp_path, zero):
    (tmp_path / "report.html.j2").write_text(
        '{% extends "default/report.html.j2" %}'
        "{% block extra_css %}.masthead { border-top: 6px solid #c00; }{% endblock %}"
        "{% block footer %}<footer>ACME ML platform</footer>{% endblock %}", encoding="utf-8")
    (tmp_path / "strings.toml").write_text('[report_title]\nen = "Run review"\nzh = "训练复盘"\n', encoding="utf-8")
    (tmp_path / "report.md.j2").write_text("{{ c.verdict }} {{ t('report_title', 'en') }}\n", encoding="utf-8")
    html = render_html(zero, "en", str(tmp_path))
    assert "ACME ML platform" in html and "border-top: 6px solid #c00" in html and "Run review" in html
    assert "Generated by logpost" not in html and "Summary" in html
    assert render_markdown(zero, "en", str(tmp_path)) == "failed Run review\n"
    assert "Run review" not in render_html(zero, "en")  # the override does not leak into the defaults


def test_template_mistakes_are_input_errors(tmp_path, zero):
    (tmp_path / "report.html.j2").write_text("{% block x %}", encoding="utf-8")
    with pytest.raises(InputError, match="template error"):
        render_html(zero, "en", str(tmp_path))
    out = tmp_path / "keep.html"
    out.write_text("previous report")
    r = CliRunner().invoke(main, ["analyze", ZERO, "-f", "html", "--template-dir", str(tmp_path), "-o", str(out)])
    assert r.exit_code == 2 and "template error" in r.stderr and out.read_text() == "previous report"
    r = CliRunner().invoke(main, ["analyze", ZERO, "-f", "html", "--template-dir", str(tmp_path / "nope")])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1


# -- strings ---------------------------------------------------------------------------------------

def test_every_string_exists_in_both_languages_with_the_same_placeholders():
    import string
    from pathlib import Path

    from tests.conftest import ROOT

    table = strings()
    fields = string.Formatter()
    for key, forms in table.items():
        assert set(forms) == {"en", "zh"}, key
        assert all(forms[lg].strip() for lg in forms), key
        # named fields must match; a bare {} may be Chinese word order only ("step" / "第 {} 步")
        names = [{f for _, f, _, _ in fields.parse(forms[lg]) if f} for lg in ("en", "zh")]
        assert names[0] == names[1], (key, names)
    used = set()
    for path in [*(ROOT / "templates").glob("*.j2"), *(ROOT / "logpost" / "report").glob("*.py")]:
        text = Path(path).read_text(encoding="utf-8")
        used |= set(re.findall(r"""\b(?:t|L|H|label|tr\(table,|_both\(table,)\(?\s*["']([a-z_]+)["']""", text))
    missing = sorted(k for k in used if k not in table and not k.endswith("_"))  # "verdict_" ~ c.verdict
    assert not missing and len(used) > 60, missing
    from logpost.model import Severity, Verdict

    for v in Verdict:  # keys built at render time
        assert f"verdict_{v.value}" in table and f"verdict_badge_{v.value}" in table
    for sev in Severity:
        assert f"sev_{sev.label}" in table
    for kind in ("error", "traceback"):
        assert f"tl_{kind}" in table
    for reason in ("stdin", "not_a_file", "unreadable"):
        assert f"appendix_{reason}" in table


def test_read_lines_matches_a_plain_split(tmp_path_factory):
    from hypothesis import assume, example, given, settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("lines")

    @example(b"", [1], 1)
    @example(b"a\n\n", [1, 2, 3], 1)
    @example(b"a\nbc", [2], 2)
    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\n")), st.lists(st.integers(-2, 80), max_size=8),
           st.sampled_from([1, 2, 5, 64]))
    def check(data, wanted, block):
        assume(not data.startswith(b"\x1f\x8b"))  # gzip magic: read as gzip (see the next test)
        path = folder / "f.log"
        path.write_bytes(data)
        lines = data.split(b"\n") if data else []  # an empty file has no line
        if data.endswith(b"\n"):
            lines = lines[:-1]  # a final newline ends the last line, it does not start another
        expect = {n: lines[n - 1] for n in wanted if 1 <= n <= len(lines)}
        old = appendix.BLOCK
        appendix.BLOCK = block
        try:
            assert appendix.read_lines(str(path), wanted) == expect
        finally:
            appendix.BLOCK = old

    check()


def test_corrupt_gzip_is_an_unreadable_appendix(zero, tmp_path):
    import dataclasses

    bad = tmp_path / "run.log.gz"
    bad.write_bytes(gzip.compress(open(ZERO, "rb").read())[:300])  # cut short
    with pytest.raises(OSError):
        appendix.read_lines(str(bad), [769])
    app = build_context(dataclasses.replace(zero, source=str(bad)), "en").appendix
    assert not app.available and app.reason == "unreadable" and app.cited
