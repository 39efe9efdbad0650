"""Dataset plugins: real MovieLens 100K statistics, ML-1M's exact format, the `table` plugin."""

from __future__ import annotations

from bench.datasets.ml100k import GENRES, ML100K, title_tokens

from bench.cleaning import clean
from bench.data import load_split


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
