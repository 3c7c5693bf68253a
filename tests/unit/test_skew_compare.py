"""The skew job's comparison: float32 rounding is no mismatch, a real difference and a NaN
are; the rate's status lines; the gauges' text; samples kept by time and malformed ones
counted; bad arguments refused by name."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from services.monitors.compare import mismatch_report, prometheus_text
from services.monitors.served_features import Samples, _keep
from services.monitors.skew import main


def test_rounding_is_not_a_mismatch_but_a_difference_is() -> None:
    offline = np.linspace(0.0, 3.0, 100)
    served = offline.astype(np.float32).astype(np.float64)  # what the model received
    served[:3] += 0.01
    served[3] = np.nan
    got = mismatch_report({"f": served}, {"f": offline})["f"]
    assert got["compared"] == 100 and got["mismatches"] == 4
    assert got["mismatch_rate"] == 0.04 and got["status"] == "warn"


@pytest.mark.parametrize(("bad", "status"), [(0, "ok"), (1, "warn"), (4, "warn"), (5, "alert")])
def test_status_lines(bad: int, status: str) -> None:
    offline = np.zeros(100)
    served = np.r_[np.ones(bad), np.zeros(100 - bad)]
    assert mismatch_report({"f": served}, {"f": offline})["f"]["status"] == status


def test_gauges_text() -> None:
    report = {"finished_at": 12.5, "features": mismatch_report({"a": np.ones(4)},
                                                               {"a": np.zeros(4)})}  # fmt: skip
    text = prometheus_text(report)
    assert 'cascade_skew_mismatch_rate{feature="a"} 1.0' in text
    assert 'cascade_skew_compared{feature="a"} 4' in text
    assert "cascade_skew_last_run_timestamp_seconds 12.5" in text


def test_samples_kept_by_time_and_malformed_ones_counted() -> None:
    out = Samples()
    good = {"request_id": "r", "user_id": "u", "item_ids": [], "user": {}, "item": {}}
    records = [{**good, "ts": 5.0}, {**good, "ts": 50.0}, {"ts": 6.0}, {**good, "ts": "x"}]
    for raw in [b"not json", *map(orjson.dumps, records)]:
        _keep(raw, 0.0, 10.0, out)
    assert out.read == 5 and out.malformed == 3
    assert [r["ts"] for r in out.records] == [5.0]


def test_bad_arguments_are_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--lookback-s", "0", "--atol", "-1"])
    assert exc.value.code == 2
    assert "--lookback-s" in capsys.readouterr().err
