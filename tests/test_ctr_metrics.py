"""The CTR view of pointwise models: AUC / LogLoss / RMSE / MAE on labeled held-out rows, gathered
from the same scores the ranking uses, in records and the leaderboard CSV."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import mannwhitneyu

from bench.ctr import PROBABILITY_CLIP, auc, average_ranks, logloss, mae, rmse
from bench.data import RawData, prepare, prepare_split
from bench.evaluation import MetricAccumulator
from bench.records import load_records
from tests.conftest import TINY, compose, run_bench


def brute_force_auc(scores, labels) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pair_count_and_mann_whitney_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=200).astype(float)  # few distinct values: many ties
    labels = rng.random(200) < 0.1 + 0.7 * scores / 5
    expected = brute_force_auc(scores, labels)
    u = mannwhitneyu(scores[labels], scores[~labels], alternative="two-sided").statistic
    assert auc(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert auc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()), abs=1e-12)
    assert 0.5 < auc(scores, labels) < 1  # higher scores do carry more positives here


def test_auc_edges_and_average_ranks():
    assert auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert auc([7, 7, 7, 7], [0, 1, 0, 1]) == 0.5  # all tied: chance
    assert math.isnan(auc([0.1, 0.9], [1, 1]))  # one class: undefined -> NaN
    assert math.isnan(auc([], []))
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_logloss_matches_torch_bce_and_clips():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(0, 2, 500), (rng.random(500) < 0.4).astype(float)
    expected = F.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(labels))
    assert logloss(logits, labels) == pytest.approx(float(expected), rel=1e-9)
    # A confidently wrong row costs -log(clip), not infinity.
    assert logloss([-1000.0], [1.0]) == pytest.approx(-math.log(PROBABILITY_CLIP))
    assert rmse([3, 5], [4, 4]) == 1.0 and mae([3, 6], [4, 4]) == 1.5


class FixedScores(torch.nn.Module):
    """A pointwise 'model' whose catalog scores are a fixed matrix indexed by batch row."""

    batch_kind = "features"
    objective = "bce"

    def __init__(self, scores: torch.Tensor):
        super().__init__()
        self.scores = scores

    def score_all(self, batch):
        return self.scores[: len(batch["users"])].clone()


def _batch():
    return {"users": torch.tensor([0, 1, 2]),
            "seen": torch.tensor([[0, 1], [0, 3]]), "targets": torch.tensor([[0, 1, 2], [1, 2, 5]]),
            "labeled": torch.tensor([[0, 1, 2, 2], [1, 2, 5, 4]]),
            "labeled_rating": torch.tensor([5.0, 2.0, 4.0, 1.0]),
            "labeled_label": torch.tensor([1.0, 0.0, 1.0, 0.0])}


@pytest.mark.parametrize("item_chunk", [None, 2])
def test_evaluator_gathers_labeled_scores_from_the_ranking_scores(item_chunk):
    scores = torch.randn(3, 7, generator=torch.Generator().manual_seed(1))
    batch = _batch()
    acc = MetricAccumulator([1, 2], 7, item_chunk=item_chunk)
    acc.update_model(FixedScores(scores), batch)
    gathered, labels, ratings = acc.labeled.arrays()
    np.testing.assert_allclose(gathered, scores[batch["labeled"][0], batch["labeled"][1]].numpy(),
                               rtol=1e-6)
    summary = acc.summary()
    assert summary["auc"] == pytest.approx(brute_force_auc(gathered, labels))
    assert summary["logloss"] == pytest.approx(logloss(gathered, labels))
    assert "rmse" not in summary and "ndcg@1" in summary  # ranking metrics stay


def test_non_pointwise_models_and_unlabeled_batches_get_no_ctr_view():
    scores = torch.randn(3, 7)
    pairwise = FixedScores(scores)
    pairwise.batch_kind = "pairwise"
    acc = MetricAccumulator([1], 7)
    acc.update_model(pairwise, _batch())
    acc.update_model(FixedScores(scores), {k: v for k, v in _batch().items()
                                           if not k.startswith("labeled")})
    assert not {"auc", "logloss"} & set(acc.summary())


def _tiny_split(with_rating: bool):
    rows = [(u, i, t) for u in range(4) for t, i in enumerate((u + np.arange(5)) % 6)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    if with_rating:
        frame["rating"] = np.arange(len(frame)) % 5 + 1.0
    return prepare_split(RawData(frame), {}, {"kind": "loo"}), frame


def test_labeled_rows_follow_the_held_out_fold_and_threshold():
    split, _ = _tiny_split(with_rating=True)
    prep = prepare(split, max_len=5, label_threshold=4.0)
    df = split.frame
    for stage, fold in (("valid", "valid"), ("test", "test")):
        batch = prep.stages[stage].batches[0]
        held = df[df["fold"] == fold].sort_values("user")
        users = batch["users"][batch["labeled"][0]].numpy()
        assert users.tolist() == held["user"].tolist()
        assert batch["labeled"][1].tolist() == held["item"].tolist()
        assert batch["labeled_rating"].tolist() == held["rating"].tolist()
        assert batch["labeled_label"].tolist() == (held["rating"] >= 4).astype(float).tolist()


def test_no_ratings_or_no_threshold_skip_the_ctr_view():
    for with_rating, threshold in ((False, 4.0), (True, None)):
        split, _ = _tiny_split(with_rating)
        batch = prepare(split, max_len=5, label_threshold=threshold).stages["test"].batches[0]
        assert not any(name.startswith("labeled") for name in batch)


def test_fm_reports_auc_logloss_and_mf_does_not(results_dir):
    proc = run_bench("model=fm,mf", "-m", *TINY, results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["model"]: r for r in load_records(results_dir)}
    for stage in ("valid", "test"):
        fm = records["fm"]["metrics"][stage]
        assert 0 <= fm["auc"] <= 1 and 0 < fm["logloss"] < 5 and "rmse" not in fm
        assert 0 <= fm["ndcg@10"] <= 1  # ranking metrics unchanged beside them
        assert not {"auc", "logloss"} & set(records["mf"]["metrics"][stage])
    board = pd.read_csv(results_dir / "leaderboard.csv").set_index("model")
    assert board.loc["fm", "auc"] == pytest.approx(records["fm"]["metrics"]["test"]["auc"])
    assert board.loc["fm", "logloss"] == pytest.approx(records["fm"]["metrics"]["test"]["logloss"])
    assert pd.isna(board.loc["mf", "auc"]) and pd.isna(board.loc["mf", "logloss"])


def test_fm_mse_rmse_mae_equal_a_recomputation_from_the_checkpoint(results_dir):
    from bench.run import build_model, prepare_data

    proc = run_bench("model=fm", "model.loss=mse", *TINY, results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = load_records(results_dir)
    test = record["metrics"]["test"]
    assert {"auc", "rmse", "mae"} <= set(test) and "logloss" not in test
    # A rating regressor keeps the epoch with the lowest validation RMSE, not the best NDCG.
    curve = record["validation_curve"]
    assert record["selected_by"] == "min val/rmse"
    assert record["best_epoch"] == min(curve, key=lambda h: h["rmse"])["epoch"]
    assert record["metrics"]["valid"]["rmse"] == pytest.approx(min(h["rmse"] for h in curve))

    cfg = compose("model=fm", "model.loss=mse", *TINY, f"results_dir={results_dir}")
    _, prep = prepare_data(cfg)
    model = build_model(cfg.model, prep)
    state = torch.load(record["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    model.eval()
    predicted, ratings, labels = [], [], []
    with torch.no_grad():
        for batch in prep.stages["test"].batches:
            rows, items = batch["labeled"]
            predicted.append(model.score_all(batch)[rows, items])
            ratings.append(batch["labeled_rating"])
            labels.append(batch["labeled_label"])
    predicted, ratings = torch.cat(predicted).double(), torch.cat(ratings).double()
    assert len(predicted) == record["n_eval_users"]["test"]  # loo: one held-out row per user
    assert test["rmse"] == pytest.approx(float(((predicted - ratings) ** 2).mean().sqrt()))
    assert test["mae"] == pytest.approx(float((predicted - ratings).abs().mean()))
    assert test["auc"] == pytest.approx(brute_force_auc(predicted.tolist(),
                                                        torch.cat(labels).tolist()))
    # It learned ratings: better than predicting 0 (the untrained bias) for every row.
    assert test["rmse"] < float(ratings.pow(2).mean().sqrt())


def test_data_parallel_shards_keep_labeled_rows_aligned_and_merge_to_one_view():
    from bench.evaluation import merge_accumulators
    from bench.training import rows_of_rank

    scores = torch.randn(3, 7, generator=torch.Generator().manual_seed(2))
    whole = MetricAccumulator([1], 7)
    whole.update_model(FixedScores(scores), _batch())
    parts = []
    for rank in range(2):
        shard = rows_of_rank(_batch(), rank, 2)
        lo = len(_batch()["users"]) * rank // 2
        acc = MetricAccumulator([1], 7)
        acc.update_model(FixedScores(scores[lo:]), shard)
        parts.append(acc)
    assert parts[0].labeled.arrays()[2].tolist() == [5.0]  # rank 0 holds user 0's row only
    merged = merge_accumulators(parts)
    assert sorted(merged.labeled.arrays()[0]) == pytest.approx(sorted(whole.labeled.arrays()[0]))
    assert merged.summary()["auc"] == pytest.approx(whole.summary()["auc"])
    assert merged.summary()["logloss"] == pytest.approx(whole.summary()["logloss"])
