"""The CTR view of pointwise models, beside ranking: on the labeled held-out rows of a stage
(label = rating >= eval.label_threshold, e.g. 4 on MovieLens), the model's scores gathered from
the same score matrix the ranking uses (no second scoring path).

  AUC     = P(score of a random positive row > score of a random negative row), ties count 1/2;
            computed from average ranks (Mann-Whitney U / (n_pos * n_neg)). NaN when the rows
            hold only one class: it is undefined there, and the summary leaves it out.
  LogLoss = -mean(y log p + (1 - y) log(1 - p)), p = sigmoid(score) clipped to [1e-7, 1 - 1e-7]
            (models trained with loss=bce, whose score is a click logit).
  RMSE    = sqrt(mean((score - rating)^2)), MAE = mean(|score - rating|) (models trained with
            loss=mse, whose score is a predicted rating; their AUC ranks rows by that rating).

Only pointwise models (batch_kind "features") get the CTR view: a pairwise model's (BPR) scores
are not calibrated probabilities, so LogLoss would be meaningless for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.special import expit

# As bench.evaluation.ScoreItems (not imported: the evaluator imports this module).
ScoreItems = Callable[[int, int], torch.Tensor]

PROBABILITY_CLIP = 1e-7


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if len(values) else np.zeros(0, bool)
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(values)])
    group = np.cumsum(starts) - 1
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = (first + (counts + 1) / 2)[group]
    return ranks


def auc(scores, labels) -> float:
    """Area under the ROC curve of `scores` for binary `labels`, ties counted 1/2; NaN if the
    labels hold only one class."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels).astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = float(average_ranks(scores)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def logloss(logits, labels) -> float:
    """Mean binary cross-entropy of sigmoid(logits) against `labels` (probabilities clipped);
    NaN for no rows."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if not len(logits):
        return math.nan
    p = np.clip(expit(logits), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def rmse(predictions, targets) -> float:
    diff = np.asarray(predictions, np.float64) - np.asarray(targets, np.float64)
    return float(np.sqrt(np.mean(diff ** 2))) if len(diff) else math.nan


def mae(predictions, targets) -> float:
    diff = np.asarray(predictions, np.float64) - np.asarray(targets, np.float64)
    return float(np.mean(np.abs(diff))) if len(diff) else math.nan


class LabeledRows:
    """The scores a pointwise model gave a stage's labeled held-out rows, with their labels and
    ratings, gathered batch by batch while the evaluator ranks."""

    def __init__(self):
        self.objective: str | None = None  # the model's loss: bce or mse
        self.scores: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.ratings: list[torch.Tensor] = []

    def observe(self, score_items: ScoreItems, batch: dict, objective: str) -> ScoreItems:
        """`score_items` that also records, from each chunk it returns, the scores of the
        batch's `labeled` pairs in that chunk (so chunked scoring is gathered too)."""
        self.objective = objective
        pairs = batch["labeled"]
        gathered = torch.full((pairs.shape[1],), math.nan, dtype=torch.float64)
        self.scores.append(gathered)
        self.labels.append(batch["labeled_label"].cpu())
        self.ratings.append(batch["labeled_rating"].cpu())

        def scored(start: int, stop: int) -> torch.Tensor:
            scores = score_items(start, stop)
            inside = (pairs[1] >= start) & (pairs[1] < stop)
            rows, cols = pairs[0][inside].to(scores.device), pairs[1][inside] - start
            gathered[inside] = scores[rows, cols.to(scores.device)].detach().double().cpu()
            return scores

        return scored

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, labels, ratings) of every gathered row."""
        def cat(parts):
            return torch.cat(parts).numpy() if parts else np.zeros(0)
        return cat(self.scores), cat(self.labels), cat(self.ratings)

    def summary(self) -> dict[str, float]:
        """auc plus logloss (bce) or rmse/mae (mse); empty when no rows were gathered.
        Undefined values (AUC of one class) are left out rather than written as NaN."""
        scores, labels, ratings = self.arrays()
        if not len(scores):
            return {}
        out = {"auc": auc(scores, labels)}
        if self.objective == "mse":
            out.update(rmse=rmse(scores, ratings), mae=mae(scores, ratings))
        else:
            out["logloss"] = logloss(scores, labels)
        return {k: v for k, v in out.items() if not math.isnan(v)}

    @staticmethod
    def merge(parts: list[LabeledRows]) -> LabeledRows:
        merged = LabeledRows()
        for part in parts:
            merged.objective = merged.objective or part.objective
            merged.scores += part.scores
            merged.labels += part.labels
            merged.ratings += part.ratings
        return merged
