"""The metrics plot as a reader sees it: labels inside the figure, whole-number steps, a constant loss on a
plain axis, a plot from two records."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from logpost.analyze import analyze
from logpost.report.charts import constant_limits, metrics_figure
from logpost.report.context import strings
from tests.conftest import fixture

ZERO = fixture("generated/axolotl_dev_model_role.log")


def figure(path):
    pm = analyze(str(path))
    fig = metrics_figure(pm, ("en",), strings(), None, fmt="figure")
    if fig is not None:
        FigureCanvasAgg(fig).draw()
    return pm, fig


def test_marker_label_at_the_last_step_stays_inside_the_figure(tmp_path):
    lines = open(fixture("generated/hf_healthy.log"), encoding="utf-8").read().splitlines()
    cut = tmp_path / "cut.log"  # a console capture that stops mid-run: EARLY_TERMINATION at its last step
    cut.write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    pm, fig = figure(cut)
    last = int(pm.run.train_rows()["step"].max())
    assert [(f.id, f.first_step) for f in pm.findings] == [("EARLY_TERMINATION", last)]
    renderer = fig.canvas.get_renderer()
    (label,) = fig.axes[0].texts
    box = label.get_window_extent(renderer)
    assert label.get_text() == "EARLY_TERMINATION" and 0 <= box.x0 and box.x1 <= fig.bbox.width


def test_steps_are_whole_numbers_and_a_zero_loss_sits_on_a_plain_axis():
    pm, fig = figure(ZERO)
    loss, grad = fig.axes[0], fig.axes[1]
    assert loss.get_ylim() == (-0.05, 1.0) and grad.get_ylim() == (-0.05, 1.0)
    ticks = fig.axes[-1].get_xticks()
    assert all(float(t).is_integer() for t in ticks)
    assert constant_limits(np.array([2.0, 2.0])) == (1.0, 3.0) and constant_limits(np.array([1.0, 2.0])) is None


def test_two_records_make_a_plot_with_whole_step_ticks(tmp_path):
    log = tmp_path / "short.log"
    log.write_text("{'loss': 2.5, 'grad_norm': 1.0, 'learning_rate': 1e-05, 'epoch': 0.5}\n"
                   "{'loss': 2.1, 'grad_norm': 0.9, 'learning_rate': 1e-05, 'epoch': 1.0}\n", encoding="utf-8")
    _, fig = figure(log)
    assert fig is not None
    assert all(float(t).is_integer() for t in fig.axes[-1].get_xticks())
