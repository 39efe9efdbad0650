"""The one model interface and the training batches each model family consumes."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from bench.data import AUGMENTATIONS, Prepared, augment_sequences
from bench.errors import BenchError

BATCH_KINDS = ("sequence", "pairwise", "features", "none")


class Recommender(nn.Module):
    """Every model plugin subclasses this.

    `batch_kind` says which training batches it gets (see `train_batches`); `loss(batch)` returns
    a scalar; `score_all(batch)` returns [B, n_items] scores for an evaluation batch, which holds
    `users` [B], `history` [B, max_len] (time order, left-padded with n_items) and
    `user.<feature>` codes. Models with nothing to learn (batch_kind "none") skip training.
    """

    batch_kind: ClassVar[str] = "sequence"

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def score_all(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError


class TrainBatches:
    """Shuffled batches sliced from tensors prepared once; `sample` adds per-batch fields
    (e.g. fresh negatives). No per-sample Python in the loop."""

    def __init__(self, tensors: dict[str, torch.Tensor], batch_size: int, sample=None):
        self.tensors, self.batch_size, self.sample = tensors, batch_size, sample
        self.n = len(next(iter(tensors.values())))
        # Data-parallel ranks set one shared generator so they all cut the same epoch order.
        self.generator: torch.Generator | None = None

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator)
        for start in range(0, self.n, self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = {name: t[idx] for name, t in self.tensors.items()}
            if self.sample is not None:
                batch.update(self.sample(batch))
            yield batch


def train_batches(kind: str, prep: Prepared, batch_size: int, n_negatives: int = 1,
                  augment: dict | None = None, objective: str = "bce"):
    """Training batches of one kind, built from the prepared tensors. `augment` (sequence
    batches only): probabilities for bench.data.augment_sequences (crop, mask, noise).
    `objective` (features batches only): "mse" gives observed rows with their ratings."""
    if kind == "sequence":
        inputs, targets = prep.train_sequences()
        augment = {k: float(v) for k, v in (augment or {}).items() if v}
        unknown = set(augment) - set(AUGMENTATIONS)
        if unknown:
            raise BenchError(f"model.train.augment.{sorted(unknown)[0]} is unknown; expected "
                             f"{list(AUGMENTATIONS)}")
        sample = None
        if augment:
            def sample(batch):
                return augment_sequences(batch["inputs"], batch["targets"], prep.n_items,
                                         **augment)
        return TrainBatches({"inputs": inputs, "targets": targets}, batch_size, sample)
    if kind == "pairwise":
        n_items = prep.n_items

        def negatives(batch):
            shape = (len(batch["users"]), n_negatives)
            return {"negatives": torch.randint(0, n_items, shape)}

        tensors = {"users": prep.train_users, "items": prep.train_items}
        return TrainBatches(tensors, batch_size, negatives)
    if kind == "features":
        if objective == "mse":
            return _rated_rows(prep, batch_size)
        return _feature_rows(prep, batch_size, n_negatives)
    if kind == "none":
        return None
    raise ValueError(f"batch kind {kind!r} has no batch builder; expected one of {BATCH_KINDS}")


def _feature_rows(prep: Prepared, batch_size: int, n_negatives: int) -> TrainBatches:
    """Pointwise rows: each train interaction (label 1) plus `n_negatives` uniformly sampled
    items for the same user (label 0), each row with its user and item feature codes and its
    context (the user's previous item)."""
    n_items = prep.n_items

    def rows(batch):
        repeat = 1 + n_negatives
        items = torch.cat([batch["items"][:, None],
                           torch.randint(0, n_items, (len(batch["users"]), n_negatives))], 1)
        labels = torch.zeros_like(items, dtype=torch.float32)
        labels[:, 0] = 1.0
        return _with_features(prep, {"users": batch["users"].repeat_interleave(repeat),
                                     "items": items.reshape(-1), "labels": labels.reshape(-1),
                                     "prev_items": batch["prev_items"].repeat_interleave(repeat)})

    tensors = {"users": prep.train_users, "items": prep.train_items,
               "prev_items": prep.train_prev_items}
    return TrainBatches(tensors, batch_size, rows)


def _with_features(prep: Prepared, batch: dict) -> dict:
    """A batch of rows plus each row's user and item feature codes, and its previous item as a
    one-item `history` (left-padded like an evaluation batch's, so context fields read both)."""
    out = {k: v for k, v in batch.items() if k != "prev_items"}
    out["history"] = batch["prev_items"][:, None]
    out.update({f"user.{k}": codes[batch["users"]] for k, codes in prep.user_features.items()})
    out.update({f"item.{k}": codes[batch["items"]] for k, codes in prep.item_features.items()})
    return out


def _rated_rows(prep: Prepared, batch_size: int) -> TrainBatches:
    """Rating-regression rows (model.loss=mse): each observed train interaction with its rating
    as the target; no sampled negatives (an unobserved item has no rating)."""
    if prep.train_ratings is None:
        raise BenchError("model.loss=mse needs a dataset with a rating column; this one has none")
    tensors = {"users": prep.train_users, "items": prep.train_items,
               "ratings": prep.train_ratings, "prev_items": prep.train_prev_items}
    return TrainBatches(tensors, batch_size, lambda batch: _with_features(prep, batch))
