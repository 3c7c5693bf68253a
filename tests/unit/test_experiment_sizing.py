"""``experiment size``: the planning calculator, through the CLI as a user runs it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.rollouts.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["--json", "experiment", "size", *args])
    out = capsys.readouterr()
    return code, json.loads(out.out) if code == 0 else {}, out.err


def test_a_mean_lift_needs_the_textbook_sample(capsys: pytest.CaptureFixture[str]) -> None:
    # a fifth of an sd at alpha 0.05, power 0.8: 2 * (1.96 + 0.8416)^2 / 0.2^2 = 392.4 per arm
    code, answer, _ = run(capsys, "--mean", "10", "--sd", "1", "--lift", "0.02")
    assert code == 0 and answer["control_users"] == answer["treatment_users"] == 393
    code, answer, _ = run(capsys, "--mean", "10", "--sd", "1", "--users", "392.4")
    assert answer["mde_relative"] == pytest.approx(0.02, rel=1e-3)


def test_unequal_shares_and_rates(capsys: pytest.CaptureFixture[str]) -> None:
    _, even, _ = run(capsys, "--rate", "0.1", "--lift", "0.2")
    _, small, _ = run(capsys, "--rate", "0.1", "--lift", "0.2", "--treatment-share", "0.2")
    assert small["treatment_users"] < even["treatment_users"] < small["control_users"]
    assert small["total_users"] > even["total_users"]  # an uneven split costs users


def test_interleaving_users_and_mde_agree(capsys: pytest.CaptureFixture[str]) -> None:
    _, n, _ = run(capsys, "--interleaving", "--preference", "0.55", "--ties", "0.4")
    assert isinstance(n["users"], int)
    _, back, _ = run(capsys, "--interleaving", "--users", str(n["users"]), "--ties", "0.4")
    assert back["mde_share"] == pytest.approx(0.55, abs=0.001)


def test_the_graded_interleaving_test_is_sized_as_a_paired_mean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # margin / sd = 0.2 at alpha 0.05, power 0.8: (1.96 + 0.8416)^2 / 0.04 = 196.2 users
    code, answer, _ = run(capsys, "--interleaving", "--margin", "0.25", "--margin-sd", "1.25")
    assert code == 0 and answer == {"metric": "credit_margin", "margin": 0.25, "users": 197}
    code, _, err = run(capsys, "--interleaving", "--margin", "0.25")
    assert code == 1 and "--margin-sd" in err


@pytest.mark.parametrize(("args", "named"), [
    (("--mean", "1", "--lift", "0.1"), "--sd"),
    (("--rate", "0.1", "--preference", "0.6"), "--preference"),
    (("--interleaving", "--lift", "0.1"), "--preference"),
    (("--rate", "0.1", "--lift", "0.1", "--treatment-share", "1"), "--treatment-share"),
    (("--rate", "1.5", "--lift", "0.1"), "baseline"),
])  # fmt: skip
def test_bad_input_is_refused_naming_it(capsys: pytest.CaptureFixture[str],
                                        args: tuple[str, ...], named: str) -> None:  # fmt: skip
    code, _, err = run(capsys, *args)
    assert code == 1 and named in err
