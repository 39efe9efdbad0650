"""Split invariants, checked by the splits themselves and by property tests (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.data import RawData, check_split, prepare_split
from bench.errors import BenchError

FOLDS = ("train", "valid", "test")


@st.composite
def logs(draw, min_per_user: int = 3):
    """Random logs with many same-second ties and repeated items."""
    n_users = draw(st.integers(1, 12))
    rows = []
    for u in range(n_users):
        n = draw(st.integers(min_per_user, 15))
        items = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
        times = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
        rows += [(f"u{u}", i, t) for i, t in zip(items, times, strict=True)]
    order = draw(st.permutations(range(len(rows))))
    frame = pd.DataFrame([rows[k] for k in order], columns=["user", "item", "timestamp"])
    return frame


def _split(frame, **split_cfg):
    return prepare_split(RawData(frame), {"min_user_interactions": 3}, split_cfg)


PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(logs())
def test_loo_holds_out_each_users_last_two_by_the_stated_order(frame):
    split = _split(frame.copy(), kind="loo")
    df = split.frame
    assert len(df) == len(frame) and set(df["fold"]) <= set(FOLDS)
    for _, group in df.groupby("user"):
        assert group["fold"].tolist()[-2:] == ["valid", "test"]
        assert (group["fold"] == "test").sum() == 1 == (group["fold"] == "valid").sum()
    # the stated tie rule: (timestamp, original row) — the test item is the user's latest row
    raw_user = split.user_ids[df["user"].to_numpy()]
    for u in set(frame["user"]):
        mine = frame[frame["user"] == u]
        last = mine.sort_values("timestamp", kind="stable").iloc[-1]
        test = df[(raw_user == u) & (df["fold"] == "test")]
        assert split.item_ids[test["item"].iat[0]] == last["item"]
    assert split.sizes["test"]["interactions"] == split.n_users


@PROPS
@given(logs(), st.sampled_from(["time", "random"]))
def test_ratio_partitions_every_user_and_by_time_never_looks_back(frame, order):
    split = _split(frame.copy(), kind="ratio", ratios=[0.7, 0.2, 0.1], order=order, seed=3)
    df = split.frame
    assert len(df) == len(frame)
    sizes = df.groupby("user")["fold"].value_counts().unstack(fill_value=0)
    total = sizes.sum(axis=1)
    assert (sizes.get("train", 0) == np.ceil(total * 0.7 - 1e-9)).all()
    if order == "time":
        rank = df["fold"].map({f: k for k, f in enumerate(FOLDS)})
        assert (rank.groupby(df["user"]).diff().fillna(0) >= 0).all()
    assert sum(split.sizes[f]["interactions"] for f in FOLDS) == len(df)


@PROPS
@given(logs(min_per_user=1), st.floats(0.3, 0.8), st.floats(0.05, 0.19))
def test_temporal_cut_puts_all_train_before_valid_before_test(frame, valid_at, gap):
    split = prepare_split(RawData(frame.copy()), {}, {"kind": "temporal", "valid_at": valid_at,
                                                      "test_at": valid_at + gap})
    df = split.frame
    assert len(df) == len(frame)
    latest = -np.inf
    for fold in FOLDS:
        times = df.loc[df["fold"] == fold, "timestamp"]
        if len(times):
            assert times.min() > latest  # strictly later than everything in earlier folds
            latest = times.max()


def test_check_split_catches_a_leak_and_a_wrong_loo():
    frame = pd.DataFrame({"user": [1, 1, 1, 1], "item": [1, 2, 3, 4],
                          "timestamp": [1, 2, 3, 4]})
    split = _split(frame, kind="loo")
    split.frame.loc[3, "fold"], split.frame.loc[0, "fold"] = "train", "test"
    with pytest.raises(BenchError, match="split=loo leaks: user 1 has a train interaction "
                                         "after a test one"):
        check_split(split, "loo")
    split.frame["fold"] = ["train", "train", "valid", "valid"]
    with pytest.raises(BenchError, match="split=loo: user 1 has 2 valid and 0 test"):
        check_split(split, "loo")


def test_loo_with_too_short_users_names_the_fix():
    frame = pd.DataFrame({"user": [1, 2, 2, 2], "item": [1, 1, 2, 3],
                          "timestamp": [1, 1, 2, 3]})
    with pytest.raises(BenchError, match="user 1 has 0 valid and 1 test interactions; "
                                         r"expected 1 each \(set dataset.filter.min_user"):
        prepare_split(RawData(frame), {}, {"kind": "loo"})


def test_split_reports_sizes_with_cold_items():
    frame = pd.DataFrame({"user": [1, 1, 1, 2, 2, 2], "item": [1, 2, 3, 1, 2, 4],
                          "timestamp": [1, 2, 3, 1, 2, 3]})
    sizes = _split(frame, kind="loo").sizes
    assert sizes["train"] == {"interactions": 2, "users": 2, "items": 1}
    assert sizes["test"] == {"interactions": 2, "users": 2, "items": 2, "cold_users": 0,
                             "cold_items": 2}


def test_unknown_split_options_are_refused():
    frame = pd.DataFrame({"user": [1, 1, 1], "item": [1, 2, 3], "timestamp": [1, 2, 3]})
    with pytest.raises(BenchError, match="split.order='shuffled'"):
        _split(frame, kind="ratio", order="shuffled")


# -- side features and sequence preparation --------------------------------------------------

def _tiny_with_titles():
    inter = pd.DataFrame({"user": [1, 1, 1, 1, 2, 2, 2, 2], "item": [1, 2, 3, 4, 2, 1, 4, 3],
                          "timestamp": [1, 2, 3, 4, 1, 2, 3, 4]})
    items = pd.DataFrame({"item": [1, 2, 3, 4], "title": [["red", "fox"], ["blue"],
                                                          ["secret", "red"], ["hidden"]],
                          "year": ["1990", "1991", "1992", "1993"]})
    return prepare_split(RawData(inter, None, items), {}, {"kind": "loo"})


def test_title_vocabulary_is_built_on_train_items_only():
    from bench.data import prepare

    split = _tiny_with_titles()  # items 3 and 4 are only ever valid/test items
    prep = prepare(split, max_len=4)
    assert prep.feature_sizes["item.title"] == 1 + 3  # blue, fox, red (+ unknown)
    codes = prep.item_features["title"].tolist()
    assert codes[0] == [3, 2] and codes[2] == [0, 3] and codes[3] == [0, 0]
    assert prep.feature_sizes["item.year"] == 5  # plain attributes keep every value


def test_sequence_augmentation_is_train_only_and_leaves_targets_but_crops():
    import torch

    from bench.data import augment_sequences, prepare
    from bench.recommender import train_batches

    pad = 50
    inputs = torch.arange(40).reshape(4, 10) % 49
    targets = (inputs + 1) % 49
    torch.manual_seed(0)
    out = augment_sequences(inputs, targets, pad, mask=0.5)
    hidden = out["inputs"] == pad
    assert 0 < hidden.sum() < 40 and torch.equal(out["targets"], targets)
    assert torch.equal(out["inputs"][~hidden], inputs[~hidden])
    out = augment_sequences(inputs, targets, pad, crop=1.0)
    kept = out["inputs"] != pad
    assert torch.equal(kept, out["targets"] != pad)  # a crop drops whole positions
    assert (kept.int().diff(dim=1) >= 0).all()  # ... always a prefix, never a hole
    assert kept.sum(dim=1).min() >= 1
    out = augment_sequences(inputs, targets, pad, noise=1.0)
    assert (out["inputs"] < pad).all() and torch.equal(out["targets"], targets)

    prep = prepare(_tiny_with_titles(), max_len=4)
    plain = next(iter(train_batches("sequence", prep, 8)))
    torch.manual_seed(1)
    masked = next(iter(train_batches("sequence", prep, 8, augment={"mask": 1.0})))
    assert (masked["inputs"] == prep.n_items).all() and plain["inputs"].ne(prep.n_items).any()
    assert len(prep.stages["test"].batches[0]["history"][0].ne(prep.n_items).nonzero()) == 3
    with pytest.raises(BenchError, match="model.train.augment.shuffle is unknown"):
        train_batches("sequence", prep, 8, augment={"shuffle": 0.1})
    with pytest.raises(BenchError, match=r"augment.crop=1.5; expected a probability"):
        next(iter(train_batches("sequence", prep, 8, augment={"crop": 1.5})))


@PROPS
@given(logs())
def test_feature_rows_context_is_the_users_previous_train_item(frame):
    """The last_item context of a training row is the item before it in the user's train
    sequence (none for the first), as the evaluation batch's history[:, -1] is at test time."""
    from bench.data import prepare

    prep = prepare(_split(frame.copy(), kind="loo"), max_len=5)
    users, items = prep.train_users.tolist(), prep.train_items.tolist()
    previous: dict[int, int] = {}
    for user, item, prev in zip(users, items, prep.train_prev_items.tolist(), strict=True):
        assert prev == previous.get(user, prep.n_items)
        previous[user] = item
    valid = prep.stages["valid"].batches[0]
    for row, user in enumerate(valid["users"].tolist()):
        assert valid["history"][row, -1].item() == previous[user]
