"""Protocol guards: tags, leak-free temporal splits, sampled negatives drawn once per split, and
leaderboards that never rank rows of different protocols against each other."""

import numpy as np
import pandas as pd
import pytest
import torch
from bench.datasets.synthetic import Synthetic

from bench.data import check_leak_free, prepare, prepare_split
from bench.errors import BenchError
from bench.evaluation import rank_top_k, sample_negatives
from bench.leaderboard import aggregate, best_per_model, leaderboard_frame, to_markdown
from bench.records import load_records, protocol_tag
from tests.conftest import TINY, run_bench

FILTER = {"min_user_interactions": 3, "min_item_interactions": 0, "implicit_threshold": None}


@pytest.fixture(scope="module")
def raw():
    return Synthetic(n_users=150, n_items=80, mean_length=12).load()


def test_tags_name_split_time_threshold_candidates_and_mask(raw):
    loo = prepare_split(raw, FILTER, {"kind": "loo"})
    assert loo.protocol["temporal"] is False
    assert protocol_tag(loo.protocol) == \
        "loo|non-temporal|min_user_interactions=3|implicit=all|full|mask=seen"
    temporal = prepare_split(raw, {**FILTER, "implicit_threshold": 4},
                             {"kind": "temporal", "valid_at": 0.8, "test_at": 0.9})
    tag = protocol_tag(temporal.protocol)
    assert tag == "temporal|test_at=0.9|valid_at=0.8|min_user_interactions=3|implicit>=4|full|" \
                  "mask=seen"
    assert "non-temporal" not in tag
    assert (temporal.frame["rating"] >= 4).all()


def test_temporal_split_is_leak_free_and_records_its_cut_times(raw):
    split = prepare_split(raw, FILTER, {"kind": "temporal", "valid_at": 0.7, "test_at": 0.85})
    frame = split.frame
    ts = {f: frame.loc[frame["fold"] == f, "timestamp"] for f in ("train", "valid", "test")}
    assert ts["train"].max() < ts["valid"].min() and ts["valid"].max() < ts["test"].min()
    assert split.protocol["cut_times"] == [int(ts["valid"].min()), int(ts["test"].min())]
    # A per-user split is not leak-free across users, and the check says so.
    loo = prepare_split(raw, FILTER, {"kind": "loo"})
    with pytest.raises(BenchError, match="temporal leaks"):
        check_leak_free(loo.frame)


def test_leak_check_catches_a_same_second_interaction_on_both_sides():
    frame = pd.DataFrame({"timestamp": [1, 2, 3, 3, 4], "fold": ["train", "train", "train",
                                                                  "valid", "test"]})
    with pytest.raises(BenchError, match="train interaction at 3"):
        check_leak_free(frame)
    frame.loc[2, "fold"] = "valid"
    assert check_leak_free(frame) == [3, 4]


def _batch_rows(batch, rows):
    out = {"users": batch["users"][rows]}
    for key in ("seen", "targets"):
        p = batch[key]
        inside = (p[0] >= rows[0]) & (p[0] <= rows[-1])
        out[key] = torch.stack([p[0][inside] - rows[0], p[1][inside]])
    return out


def test_sampled_negatives_are_fixed_by_seed_and_user_not_by_batching(raw):
    split = prepare_split(raw, FILTER, {"kind": "loo"})
    batch = prepare(split, max_len=5, eval_batch_size=10_000).stages["test"].batches[0]
    n_users, n_items = len(batch["users"]), split.n_items
    whole = sample_negatives(batch, n_items, 20, seed=123)
    pieces = []
    for start in range(0, n_users, 17):
        rows = torch.arange(start, min(start + 17, n_users))
        part = sample_negatives(_batch_rows(batch, rows), n_items, 20, seed=123)
        pieces.append(torch.stack([part[0] + start, part[1]]))
    assert torch.equal(whole, torch.cat(pieces, 1))
    assert not torch.equal(whole, sample_negatives(batch, n_items, 20, seed=124))
    # 20 distinct negatives per user, none of them seen or a target.
    assert torch.bincount(whole[0], minlength=n_users).tolist() == [20] * n_users
    assert len(torch.unique(whole, dim=1).T) == whole.shape[1]
    keys = set(map(tuple, whole.T.tolist()))
    for name in ("seen", "targets"):
        assert not keys & set(map(tuple, batch[name].T.tolist()))
    # Asking for more than the catalog holds gives every unseen non-target item.
    everything = sample_negatives(batch, n_items, 10 * n_items, seed=1)
    assert whole.shape[1] < everything.shape[1] < n_users * n_items


def test_sampled_ranking_only_ranks_targets_and_their_negatives():
    scores = torch.tensor([[9.0, 8.0, 7.0, 6.0, 5.0, 4.0]])
    batch = {"users": torch.tensor([0]), "seen": torch.tensor([[0], [0]]),
             "targets": torch.tensor([[0], [5]]), "candidates": torch.tensor([[0, 0], [3, 0]])}
    # Candidates: item 3 and item 0 (seen, so still masked); target 5; nothing else ranks.
    assert rank_top_k(lambda a, b: scores[:, a:b], batch, 6, 4).tolist() == [[3, 5, -1, -1]]


def _record(tag, model, ndcg, run_id):
    return {"status": "finished", "dataset": "d", "protocol_tag": tag, "model": model,
            "seed": 0, "metrics": {"test": {"ndcg@10": ndcg, "hit@10": ndcg}},
            "times": {}, "config_hash": "h", "run_id": run_id}


def test_views_never_rank_rows_of_different_protocols_together():
    records = [_record("loo|full", "mf", 0.10, "1"), _record("loo|full", "pop", 0.05, "2"),
               _record("loo|sampled100", "pop", 0.60, "3")]
    frame = leaderboard_frame(records)
    assert list(frame.groupby("protocol")["model"].apply(list).items()) == [
        ("loo|full", ["mf", "pop"]), ("loo|sampled100", ["pop"])]
    # pop's sampled 0.60 never outranks mf, nor is it averaged with pop's full-ranking 0.05.
    assert len(aggregate(frame)) == 3 and len(best_per_model(frame)) == 3
    md = to_markdown(frame)
    full, sampled = md.split("`loo|sampled100`")
    assert "| mf |" in full and "0.6000" not in full and "| mf |" not in sampled


def test_sampled_runs_share_negatives_and_rank_apart_from_full_ranking(results_dir):
    proc = run_bench("model=pop,mf", "eval.sampled=20", "-m", *TINY, results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_bench("model=pop", *TINY, results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [r for r in load_records(results_dir) if r["status"] == "finished"]
    sampled = [r for r in records if r["protocol"]["candidates"] == "sampled20"]
    full = [r for r in records if r["protocol"]["candidates"] == "full"]
    assert sorted(r["model"] for r in sampled) == ["mf", "pop"] and len(full) == 1
    assert all("|sampled20|" in r["protocol_tag"] for r in sampled)
    assert sampled[0]["protocol"]["negatives_fingerprint"] == \
        sampled[1]["protocol"]["negatives_fingerprint"]
    stored = list((results_dir / "negatives").glob("*-n20.npz"))
    assert len(stored) == 1 and str(stored[0]) == sampled[0]["protocol"]["negatives_file"]
    with np.load(stored[0]) as z:
        per_user = pd.Series(z["test_users"]).value_counts()
        # 20 each, fewer only for users who have seen all but a few of the 60 items.
        assert per_user.max() == 20 and (per_user == 20).mean() > 0.9
        assert len(per_user) == sampled[0]["n_eval_users"]["test"]
    # 20 negatives + 1 target: far easier than ranking 60 items, and the views keep them apart.
    pop_sampled = next(r for r in sampled if r["model"] == "pop")
    assert pop_sampled["metrics"]["test"]["hit@10"] > full[0]["metrics"]["test"]["hit@10"]
    board = pd.read_csv(results_dir / "leaderboard.csv")
    assert board.groupby("protocol")["model"].apply(sorted).to_dict() == {
        full[0]["protocol_tag"]: ["pop"], pop_sampled["protocol_tag"]: ["mf", "pop"]}
    md = (results_dir / "leaderboard.md").read_text()
    assert md.count("## synthetic") == 2
