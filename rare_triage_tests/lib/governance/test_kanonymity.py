"""k-anonymity: measured the same way as pycanon, enforced step by step on a skewed sample."""

import json

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.kanonymity import (
    BELOW_K_REASON,
    DEFAULT_QUASI_IDENTIFIERS,
    below_k_quarantine,
    enforce_k_anonymity,
    k_anonymity,
)

QIS = list(DEFAULT_QUASI_IDENTIFIERS)
AGE_OF_BAND = {"10-19": 15, "20-29": 25, "30-39": 35, "40-49": 45, "50-59": 55, "70-79": 75, "90+": 90}

# (rows, age_band, sex, centre_id, centre_level, region)
SKEWED_GROUPS = [
    (40, "40-49", "F", "C01", "primary", "North"),  # large classes stay untouched
    (30, "30-39", "M", "C02", "secondary", "North"),
    (3, "40-49", "F", "C03", "primary", "North"),  # 3 + 2 reach k once the centre is suppressed
    (2, "40-49", "F", "C04", "tertiary", "North"),
    (2, "70-79", "M", "C05", "primary", "South"),  # 2 + 2 + 1 reach k once the age band is suppressed too
    (2, "20-29", "M", "C06", "primary", "South"),
    (1, "50-59", "M", "C07", "secondary", "South"),
    (1, "90+", "U", "C08", "tertiary", "East"),  # 1 + 1 never reach k: returned apart
    (1, "10-19", "F", "C09", "primary", "West"),
]


def skewed_encounters() -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for n, band, sex, centre, level, region in SKEWED_GROUPS:
        for _ in range(n):
            rows.append(
                {
                    "encounter_key": f"{len(rows):032x}",
                    "age_years": AGE_OF_BAND[band],
                    "age_band": band,
                    "sex": sex,
                    "centre_id": centre,
                    "centre_level": level,
                    "region": region,
                }
            )
    frame = pd.DataFrame(rows)
    frame["age_years"] = frame["age_years"].astype("Int64")
    return frame


def test_k_of_a_small_table() -> None:
    frame = pd.DataFrame({"a": ["x", "x", "x", "y", "y"], "b": [1, 1, 1, 2, 2]})
    assert k_anonymity(frame, ["a", "b"]) == 2
    assert k_anonymity(frame, ["a", "b"], engine="pycanon") == 2
    assert k_anonymity(frame.iloc[:0], ["a"]) == 0


@pytest.mark.parametrize("seed", range(5))
def test_pandas_and_pycanon_agree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    frame = pd.DataFrame(
        {
            "age_band": rng.choice(list(schema.AGE_BANDS), n),
            "sex": rng.choice(["F", "M", "U"], n, p=[0.5, 0.45, 0.05]),
            "centre_id": rng.choice(["C01", "C02", "C03"], n),
        }
    ).astype(object)
    frame.loc[rng.choice(n, 5, replace=False), "sex"] = None  # pycanon alone would drop these rows
    qis = ["age_band", "sex", "centre_id"]
    assert k_anonymity(frame, qis) == k_anonymity(frame, qis, engine="pycanon")
    assert k_anonymity(frame, qis[:1]) == k_anonymity(frame, qis[:1], engine="pycanon")


def test_unknown_engine_and_missing_columns_are_errors() -> None:
    frame = skewed_encounters()
    with pytest.raises(ValueError, match="engine: 'sql'"):
        k_anonymity(frame, QIS, engine="sql")
    with pytest.raises(KeyError, match="zip3"):
        k_anonymity(frame, [*QIS, "zip3"])
    with pytest.raises(KeyError, match="zip3"):
        enforce_k_anonymity(frame, quasi_identifiers=[*QIS, "zip3"])
    with pytest.raises(ValueError, match="k: 0 must be at least 1"):
        enforce_k_anonymity(frame, k=0)


def test_enforcement_on_a_skewed_sample() -> None:
    frame = skewed_encounters()
    assert k_anonymity(frame, QIS) == 1
    kept, below_k, report = enforce_k_anonymity(frame, k=5)

    assert report == {
        "k": 5,
        "rows_in": 82,
        "rows_generalised_centre": 12,
        "rows_generalised_age_band": 7,
        "rows_generalised_region_sex": 2,
        "rows_below_k": 2,
        "rows_out": 80,
        "k_achieved": 5,
    }
    assert k_anonymity(kept, QIS) >= 5
    assert k_anonymity(kept, QIS, engine="pycanon") >= 5
    assert len(kept) + len(below_k) == len(frame)
    assert set(kept["encounter_key"]).isdisjoint(below_k["encounter_key"])

    untouched = kept[kept["centre_id"].isin(["C01", "C02"])]
    pd.testing.assert_frame_equal(untouched, frame[frame["centre_id"].isin(["C01", "C02"])])

    centre_only = kept[(kept["centre_id"] == "*") & (kept["age_band"] != "*")]
    assert len(centre_only) == 5
    assert set(centre_only["centre_level"]) == {"*"}
    assert set(centre_only["region"]) == {"North"}
    assert centre_only["age_years"].eq(45).all()

    no_age = kept[kept["age_band"] == "*"]
    assert len(no_age) == 5
    assert no_age["age_years"].isna().all()  # the exact age would give the band away
    assert set(no_age["sex"]) == {"M"}
    assert set(no_age["region"]) == {"South"}

    # rows that never reached k come back as they were, for quarantine
    pd.testing.assert_frame_equal(below_k, frame[frame["centre_id"].isin(["C08", "C09"])])


def test_k_one_changes_nothing() -> None:
    frame = skewed_encounters()
    kept, below_k, report = enforce_k_anonymity(frame, k=1)
    pd.testing.assert_frame_equal(kept, frame)
    assert below_k.empty
    assert report["rows_generalised_centre"] == 0


def test_a_table_already_k_anonymous_is_returned_unchanged() -> None:
    frame = skewed_encounters()
    big = frame[frame["centre_id"].isin(["C01", "C02"])]
    kept, below_k, report = enforce_k_anonymity(big, k=5)
    pd.testing.assert_frame_equal(kept, big)
    assert below_k.empty
    assert report["k_achieved"] == 30


def test_below_k_rows_become_quarantine_rows() -> None:
    _, below_k, _ = enforce_k_anonymity(skewed_encounters(), k=5)
    quarantine = below_k_quarantine(below_k, partition_day="2024-03-15", k=5)
    assert list(quarantine.columns) == list(schema.QUARANTINE_COLUMNS)
    assert quarantine["row_ref"].tolist() == below_k["encounter_key"].tolist()
    assert quarantine["reason"].eq(f"{BELOW_K_REASON} (k=5)").all()
    assert quarantine["table"].eq(schema.RAW_ENCOUNTERS).all()
    assert [json.loads(r)["centre_id"] for r in quarantine["row_json"]] == ["C08", "C09"]
    assert below_k_quarantine(below_k.iloc[:0], partition_day="2024-03-15", k=5).empty
