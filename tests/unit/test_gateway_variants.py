"""Variants as data: the declared file is checked at start against every component's knobs
and the model slots, and a bad declaration stops the gateway with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.gateway.pipeline import GATEWAY_KNOBS
from services.gateway.stages import declared_stages
from services.gateway.variants import DEFAULT_VARIANTS_PATH, VariantError, VariantRegistry
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.knobs import KnobTable
from tests.utils.servers import REPO_ROOT


def knobs() -> KnobTable:
    return KnobTable([*declared_stages(LatencyBudget()).components(), *GATEWAY_KNOBS])


def registry(tmp_path: Path, text: str) -> VariantRegistry:
    path = tmp_path / "variants.yaml"
    path.write_text(text)
    return VariantRegistry.from_file(path, knobs())


def test_the_shipped_variants_are_valid_and_production_always_exists() -> None:
    reg = VariantRegistry.from_file(DEFAULT_VARIANTS_PATH, knobs())
    assert {"production", "diverse", "explore", "canary"} <= set(reg.names())
    assert reg.get("production").models == {} and reg.get("production").knobs == {}
    assert reg.get("canary").alias("ranker") == "canary"
    assert reg.get("diverse").alias("ranker") == "production"


def test_knobs_of_every_stage_and_of_the_gateway_are_accepted(tmp_path: Path) -> None:
    reg = registry(
        tmp_path,
        "variants:\n  v:\n    knobs: {two_tower: {quota: 50}, mmr: {lambda: 0.2},"
        " age_restricted: {adult_age: 21}, ranker: {blend_weights: {p_like: 2.0}},"
        " reranking: {depth: 40}, merge: {max_candidates: 100}}\n",
    )
    assert reg.get("v").knobs["mmr"] == {"lambda": 0.2}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("variants:\n  v:\n    knobs: {mmr: {lambda: 3}}\n", "variant v: variant.knobs.mmr"),
        ("variants:\n  v:\n    knobs: {mmr: {lamda: 0.5}}\n", "unknown field `lamda`"),
        ("variants:\n  v:\n    knobs: {nope: {x: 1}}\n", "no component 'nope'"),
        ("variants:\n  v:\n    models: {ranking: canary}\n", "models.ranking is not a model slot"),
        ("variants:\n  v:\n    models: {ranker: 'not an alias!'}\n", "variant v"),
        ("variants:\n  'bad name':\n    knobs: {}\n", "variant bad name"),
        ("variants: [1, 2]\n", "'variants' must map names to variants"),
        ("variants: {v: {knobs: {mmr: {lambda: 0.5}}\n", "is not YAML"),
    ],
)
def test_a_bad_declaration_names_the_variant_and_the_field(
    tmp_path: Path, text: str, words: str
) -> None:
    with pytest.raises(VariantError, match=words.replace("[", r"\[").replace(".", r"\.")):
        registry(tmp_path, text)


def test_a_missing_file_that_was_asked_for_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(VariantError, match="variants file not found"):
        VariantRegistry.from_file(tmp_path / "none.yaml", knobs())


def test_the_gateway_stops_with_one_line_on_a_bad_variants_file(tmp_path: Path) -> None:
    bad = tmp_path / "variants.yaml"
    bad.write_text("variants:\n  v:\n    knobs: {mmr: {lambda: 3}}\n")
    env = {"CASCADE_GATEWAY_VARIANTS": str(bad), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "services.gateway"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("gateway: variant v: variant.knobs.mmr")
