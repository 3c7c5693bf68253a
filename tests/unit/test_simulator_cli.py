"""The simulator's command line: settings from flags over the environment, clear failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadtests.simulator.behaviour import Reaction
from loadtests.simulator.cli import build_settings, main, parse_args
from loadtests.simulator.summary import RunSummary, format_table


def test_flags_override_the_environment_and_keep_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_SIMULATOR_DRIVER__BATCH_SIZE", "77")
    monkeypatch.setenv("CASCADE_SIMULATOR_BEHAVIOUR__POSITION_ETA", "0.7")
    args = parse_args(["--seed", "4", "--k", "5", "--new-users", "0.3", "--variant", "canary"])
    settings = build_settings(args)
    assert settings.seed == 4 and settings.driver.k == 5 and settings.driver.variant == "canary"
    assert settings.population.new_user_share == 0.3
    assert settings.driver.batch_size == 77 and settings.behaviour.position_eta == 0.7
    assert args.duration == 60.0 and args.sessions is None


def test_defaults_are_the_local_runtimes_ports() -> None:
    args = parse_args([])
    assert (args.gateway, args.events) == ("http://127.0.0.1:8000", "http://127.0.0.1:8001")
    assert build_settings(args).driver.k == 10


def test_a_bad_setting_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--new-users", "1.5", "--sessions", "1"]) == 2
    assert "new_user_share" in capsys.readouterr().err


def test_missing_data_exits_1_with_the_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data", str(tmp_path), "--sessions", "1"]) == 1
    assert "make data" in capsys.readouterr().err


def test_the_table_has_a_row_per_arm() -> None:
    summary = RunSummary(seed=1, requests=3, sessions=2)
    clicked = np.array([[True, False]])
    reaction = Reaction(
        clicked, clicked, clicked, ~clicked, np.array([[60.0, 0.0]]), np.array([0.4])
    )
    summary.arm("production").add("1", reaction, 2)
    summary.arm("canary").add("2", reaction, 2)
    summary.events_posted.update({"impression": 4, "click": 2})
    table = format_table(summary.as_dict())
    assert "click 2, impression 4" in table
    rows = [line.split()[0] for line in table.splitlines()[4:]]  # after the header row
    assert rows == ["canary", "production"]
