"""Dataset plugins: real MovieLens 100K statistics, ML-1M's exact format, the `table` plugin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bench.datasets.ml1m import ML1M
from bench.datasets.ml100k import GENRES, ML100K, title_tokens
from bench.datasets.table import Table

from bench.cleaning import clean
from bench.data import load_split, prepare_split
from bench.records import load_records
from tests.conftest import run_bench
from tests.fake_movielens import ml1m_files, write_files


def test_ml100k_statistics_and_side_tables(ml100k_root):
    raw, report = clean(ML100K(root=str(ml100k_root)).load(), {"rating_range": [1, 5]},
                        "ml100k")
    inter = raw.interactions
    assert len(inter) == 100_000
    assert inter["user"].nunique() == 943 and inter["item"].nunique() == 1682
    assert set(inter["rating"].unique()) == {1, 2, 3, 4, 5}
    assert inter["timestamp"].between(874_724_710, 893_286_638).all()
    assert report["rows"] == {"interactions": [100_000, 100_000], "users": [943, 943],
                              "items": [1682, 1682]}
    assert all(c["count"] == 0 for c in report["checks"])

    users = raw.users.set_index("user")
    assert len(users) == 943 and users.loc[1, "occupation"] == "technician"
    assert users.loc[1, "age"] == "18-24" and users.loc[1, "zip"] == "85"  # 24 years, 85711
    assert set(users["gender"]) == {"F", "M"} and users["occupation"].nunique() == 21

    items = raw.items.set_index("item")
    assert len(GENRES) == 19
    assert len({g for gs in items["genres"] for g in gs}) == 19
    assert items.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert items.loc[1, "title"] == ["toy", "story"] and items.loc[1, "year"] == "1995"


def test_ml100k_through_the_pipeline_and_its_cache(ml100k_root, tmp_path):
    cfg = {"name": "ml100k", "root": str(ml100k_root), "clean": {"rating_range": [1, 5]},
           "filter": {"min_user_interactions": 3}}
    split = load_split(ML100K(root=str(ml100k_root)), cfg, {"kind": "loo"}, tmp_path,
                       quiet=True)
    assert (split.n_users, split.n_items, len(split.frame)) == (943, 1682, 100_000)
    assert split.sizes["test"]["interactions"] == split.sizes["valid"]["interactions"] == 943
    assert split.sizes["train"]["interactions"] == 100_000 - 2 * 943
    (entry,) = list(tmp_path.iterdir())
    cached = load_split(ML100K(root=str(ml100k_root)), cfg, {"kind": "loo"}, tmp_path,
                        quiet=True)
    assert cached.frame.equals(split.frame) and cached.protocol == split.protocol
    assert list(cached.user_ids) == list(split.user_ids)
    assert cached.items["genres"].map(list).equals(split.items["genres"].map(list))
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]


def test_title_tokens_drop_the_year_and_punctuation():
    assert title_tokens("Shawshank Redemption, The (1994)") == ["shawshank", "redemption", "the"]
    assert title_tokens("Seven (Se7en) (1995)") == ["seven", "se7en"]


def test_ml1m_parses_its_exact_format(tmp_path):
    root = write_files(tmp_path / "ml-1m", ml1m_files(n_users=14, n_items=24, per_user=5))
    raw, report = clean(ML1M(root=str(root)).load(), {"rating_range": [1, 5], "ids": "int"},
                        "ml1m")
    inter = raw.interactions
    assert len(inter) == 14 * 5 and inter["user"].nunique() == 14
    assert inter["timestamp"].min() >= 978_300_000 and inter["rating"].between(1, 5).all()
    users = raw.users.set_index("user")
    # "1::M::18::1::48001-0001": gender, ML-1M age group 18, occupation code 1
    assert users.loc[1, ["gender", "age", "occupation", "zip"]].tolist() == [
        "M", "18-24", "academic/educator", "48"]
    assert users.loc[7, "age"] == "under 18"  # age group code 1
    items = raw.items.set_index("item")
    assert items.loc[4, "title"] == ["amélie", "part", "4"]  # latin-1, accents kept
    assert items.loc[4, "year"] == "2001" and items.loc[4, "genres"] == ["Comedy", "Mystery"]
    assert report["rows"]["items"] == [24, 24]


def test_table_plugin_maps_columns_parses_iso_times_and_side_tables(tmp_path):
    (tmp_path / "log.csv").write_text(
        "customer,sku,when,stars,event\n"
        "c1,A,2024-01-01T10:00:00Z,5,buy\n"
        "c1,B,2024-01-01T10:00:05+00:00,3,click\n"
        "c2,A,1704103200,4,click\n"
        "c2,C,2024-01-02 09:00:00,2,buy\n")
    (tmp_path / "items.tsv").write_text("sku\tcolor\ttags\nA\tred\tx|y\nB\t\ty\nC\tblue\t\n")
    table = Table(interactions=str(tmp_path / "log.csv"), items=str(tmp_path / "items.tsv"),
                  item_key="sku", list_features=["tags"],
                  columns={"user": "customer", "item": "sku", "timestamp": "when",
                           "rating": "stars", "behavior": "event"})
    raw, report = clean(table.load(), None, "table")
    inter = raw.interactions
    assert inter["user"].tolist() == ["c1", "c1", "c2", "c2"]
    assert inter["timestamp"].tolist() == [1704103200, 1704103205, 1704103200, 1704186000]
    assert inter["rating"].tolist() == [5, 3, 4, 2] and inter["behavior"].iat[0] == "buy"
    items = raw.items.set_index("item")
    assert items.loc["A", "tags"] == ["x", "y"] and items.loc["C", "tags"] == []
    assert pd.isna(items.loc["B", "color"])  # empty text -> the unknown feature code
    split = prepare_split(raw, {"behaviors": ["buy"]}, {"kind": "ratio"})
    assert len(split.frame) == 2  # behaviour selection keeps the two purchases


@pytest.mark.slow
def test_table_plugin_runs_a_sweep_on_a_csv_written_here(tmp_path, results_dir):
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,ts"]
    for u in range(40):
        for k, i in enumerate(rng.choice(30, 8, replace=False)):
            rows.append(f"u{u},i{i},2024-03-{1 + k:02d}T12:00:00")
    csv = tmp_path / "log.csv"
    csv.write_text("\n".join(rows) + "\n")
    proc = run_bench("dataset=table", f"dataset.interactions={csv}", "dataset.columns.user=user_id",
                     "dataset.columns.item=item_id", "dataset.columns.timestamp=ts",
                     "model=pop,mf", "-m", "trainer.max_epochs=1", "quiet=true", "threads=1",
                     "logger=none", results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(results_dir / "leaderboard.csv")
    assert sorted(board["model"]) == ["mf", "pop"] and set(board["dataset"]) == {"table"}
    records = load_records(results_dir)
    assert {r["data"]["n_users"] for r in records} == {40}
    assert all(r["cleaning"]["rows"]["interactions"] == [320, 320] for r in records)
    assert len(list((results_dir / "cache").iterdir())) == 1  # parsed once, reused by job 2


@pytest.mark.slow
def test_ml100k_trains_and_evaluates_end_to_end(ml100k_root, results_dir):
    proc = run_bench("dataset=ml100k", f"dataset.root={ml100k_root}", "model=pop", "quiet=true",
                     "threads=1", "logger=none", results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = load_records(results_dir)
    assert record["data"]["n_users"] == 943 and record["data"]["n_items"] == 1682
    assert record["data"]["n_interactions"] == 100_000
    assert record["data"]["folds"]["test"]["interactions"] == 943
    assert record["cleaning"]["rows"]["interactions"] == [100_000, 100_000]
    assert record["protocol"]["cleaning"] == record["cleaning"]["fingerprint"]
    # popularity on ML-100K leave-one-out, full ranking: HR@10 0.0859 (81 of 943 users)
    assert round(record["metrics"]["test"]["hit@10"] * 943) == 81
