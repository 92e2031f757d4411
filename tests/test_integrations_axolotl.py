"""The Axolotl plugin's hooks on the real repro configs (fixtures/repro/axolotl): the founding misconfiguration
stops the run before the model loads, naming the cause and the config change. Axolotl itself is not needed
for these (the plugin's base class falls back to object); see docs for the real Axolotl run."""

from __future__ import annotations

from pathlib import Path

import pytest

from logpost.integrations import LogpostStop
from logpost.integrations.axolotl import LogpostPlugin

REPRO = Path(__file__).resolve().parents[1] / "fixtures" / "repro" / "axolotl"


def _cfg(name: str, **extra: object) -> dict[str, object]:
    return {"axolotl_config_path": str(REPRO / name), "output_dir": "out", **extra}


def test_roles_that_never_map_stop_the_run_with_the_config_change(capsys: pytest.CaptureFixture[str]) -> None:
    plugin = LogpostPlugin()
    with pytest.raises(LogpostStop) as stop:
        plugin.load_datasets(_cfg("dev_model_role.yml"))
    msg = str(stop.value)
    assert "before the model loads" in msg and "CHECK_NO_TRAINABLE_TURN" in msg
    assert 'roles: {assistant: ["model"]}' in msg
    assert {f.id for f in stop.value.findings} == {"CHECK_NO_TRAINABLE_TURN"}
    assert "CHECK_ROLE_UNMAPPED" in capsys.readouterr().err  # the error is printed, the critical one stops


def test_a_missing_messages_field_stops_the_run() -> None:
    with pytest.raises(LogpostStop) as stop:
        LogpostPlugin().pre_model_load(_cfg("wrong_field.yml"))
    assert "CHECK_MESSAGES_FIELD_MISSING" in str(stop.value) and "field_messages: messages" in str(stop.value)


def test_a_healthy_config_goes_on_and_is_checked_once() -> None:
    plugin = LogpostPlugin()
    plugin.load_datasets(_cfg("healthy.yml"))
    assert plugin.checked
    plugin.pre_model_load(_cfg("dev_model_role.yml"))  # checked already: no second check
    assert plugin.get_input_args() == "logpost.integrations.axolotl.LogpostArgs"


def test_stop_on_none_only_reports() -> None:
    LogpostPlugin().load_datasets(_cfg("dev_model_role.yml", logpost_stop_on="none"))


def test_the_callback_is_added_after_the_trainer_is_made() -> None:
    pytest.importorskip("transformers")
    from logpost.integrations.transformers import LogpostCallback

    [cb] = LogpostPlugin().add_callbacks_post_trainer(_cfg("healthy.yml", logpost_stop_on="error"), trainer=None)
    assert isinstance(cb, LogpostCallback) and cb.report_dir == "out/logpost" and cb.stop_on is not None
    assert cb.stop_on.label == "error"
