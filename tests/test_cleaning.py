"""Cleaning: every check counted, every policy honoured, the report printed and fingerprinted."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from bench.datasets.synthetic import Synthetic
from rich.console import Console

from bench.cleaning import DEFAULT_POLICY, clean, print_report, resolve_policy
from bench.data import RawData
from bench.errors import BenchError

NOW = 1_700_000_000


def _log() -> RawData:
    """Ten rows with one of each problem: a duplicate, a missing rating, a zero and a future
    timestamp, a rating of 9, an item unknown to the items table."""
    inter = pd.DataFrame({
        "user": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3],
        "item": [10, 11, 11, 10, 12, 13, 10, 11, 12, 99],
        "timestamp": [100, 200, 200, 0, 300, NOW + 10, 400, 500, 600, 700],
        "rating": [4, 5, 5, 3, np.nan, 2, 9, 1, 4, 5],
    })
    items = pd.DataFrame({"item": [10, 11, 12, 13], "genre": ["a", "b", "a", ""]})
    return RawData(inter, None, items)


def _counts(report) -> dict:
    return {(c["table"], c["check"]): c["count"] for c in report["checks"]}


def test_default_policy_counts_and_repairs_each_problem():
    raw, report = clean(_log(), {"rating_range": [1, 5]}, "toy", now=NOW)
    counts = _counts(report)
    assert counts[("interactions", "missing")] == 1
    assert counts[("interactions", "bad_timestamps")] == 2
    assert counts[("interactions", "out_of_range")] == 1
    assert counts[("interactions", "duplicates")] == 1
    assert counts[("interactions.item", "unknown_ids")] == 1  # kept by default
    assert report["rows"]["interactions"] == [10, 5]
    assert raw.interactions["item"].tolist() == [10, 11, 11, 12, 99]
    assert pd.isna(raw.items.set_index("item").loc[13, "genre"])
    example = next(c["example"] for c in report["checks"] if c["check"] == "out_of_range")
    assert example == "toy interactions table row 7: rating 9.0 outside [1, 5]"


@pytest.mark.parametrize("key,value,rows", [
    ("duplicates", "keep", 6), ("bad_timestamps", "keep", 7), ("out_of_range", "keep", 6),
    ("out_of_range", "clip", 6), ("unknown_ids", "drop", 4)])
def test_each_policy_changes_exactly_its_rows(key, value, rows):
    raw, report = clean(_log(), {"rating_range": [1, 5], key: value}, "toy", now=NOW)
    assert len(raw.interactions) == rows
    assert report["policy"][key] == value
    if value == "clip":
        assert raw.interactions["rating"].max() == 5


@pytest.mark.parametrize("key,pattern", [
    ("duplicates", r"toy interactions table row 3: same \(user, item, timestamp\)"),
    ("bad_timestamps", r"row 4: timestamp 0 is not positive"),
    ("missing", r"row 5: missing value in column\(s\) \['rating'\]"),
    ("out_of_range", r"row 7: rating 9.0 outside \[1, 5\]"),
    ("unknown_ids", r"row 10: item id 99 is not in the items table")])
def test_error_policy_stops_with_one_line_naming_the_row(key, pattern):
    with pytest.raises(BenchError, match=pattern) as info:
        clean(_log(), {"rating_range": [1, 5], key: "error"}, "toy", now=NOW)
    assert "\n" not in str(info.value) and f"dataset.clean.{key}=error" in str(info.value)


@pytest.mark.parametrize("cfg,pattern", [
    ({"duplicate": "drop"}, r"dataset.clean.duplicate is unknown"),
    ({"missing": "ignore"}, r"dataset.clean.missing='ignore'; expected one of \['drop'"),
    ({"rating_range": [5, 1]}, r"rating_range=\[5, 1\]; expected \[low, high\]"),
    ({"ids": "float"}, r"dataset.clean.ids='float'")])
def test_bad_policies_name_the_key(cfg, pattern):
    with pytest.raises(BenchError, match=pattern):
        resolve_policy(cfg)


def test_synthetic_passes_unchanged_and_fingerprint_follows_policy():
    raw = Synthetic(n_users=50, n_items=40, mean_length=10).load()
    cleaned, report = clean(raw, None, "synthetic")
    assert cleaned.interactions.equals(raw.interactions)
    assert cleaned.users.equals(raw.users) and cleaned.items.equals(raw.items)
    assert sum(c["count"] for c in report["checks"]) == 0
    _, again = clean(raw, None, "synthetic")
    _, other = clean(raw, {"duplicates": "keep"}, "synthetic")
    assert again["fingerprint"] == report["fingerprint"] != other["fingerprint"]
    assert set(report["policy"]) == set(DEFAULT_POLICY)


def test_report_prints_what_was_found():
    _, report = clean(_log(), {"rating_range": [1, 5]}, "toy", now=NOW)
    out = io.StringIO()
    print_report(report, Console(file=out, width=200))
    text = out.getvalue()
    assert "cleaning toy: interactions 10->5" in text
    assert "out_of_range" in text and "duplicates" in text and "rating 9.0" in text
    clean_out = io.StringIO()
    _, ok = clean(Synthetic(n_users=20, n_items=20, mean_length=6).load(), None, "synthetic")
    print_report(ok, Console(file=clean_out, width=200))
    assert "every check passed" in clean_out.getvalue()
