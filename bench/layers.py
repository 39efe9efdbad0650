"""Shared building blocks of the model zoo: categorical fields and their embeddings (multi-hot
bags included), the FM interaction in O(kn), an MLP block that scores user x item pairs in
bounded-memory chunks, and sequence helpers (next-item losses, causal masks, windows).

Field codes follow the data layer: 0 means unknown/padding and embeds to zero; 1-D codes are one
value per row, 2-D codes [N, m] are a bag (multi-hot), pooled by mean over its non-zero codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.evaluation import score_all_in_chunks
from bench.recommender import Recommender

# Upper bound on floats held by one chunk of pairwise hidden activations (64 MB in fp32).
PAIR_CHUNK_FLOATS = 1 << 24


def _key(name: str) -> str:
    return name.replace(".", "__")  # ModuleDict keys cannot contain dots


class Fields(nn.Module):
    """The categorical fields a feature model sees, and where their codes come from.

    Request side: the user (`user` id, `user.<feature>`) and the context (`last_item`, the
    user's most recent item, and `last_item.<item feature>`); item side: `item` and
    `item.<feature>`. Ids are shifted by one so that 0 stays "unknown". A training row or
    evaluation batch holds `users` / `items` ids, `user.<f>` / `item.<f>` codes and a left-padded
    `history` (pad = n_items) whose last column is the context; the whole catalog's item codes
    are kept as non-persistent buffers (they are data, not weights).
    """

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: Sequence[str] | None = None,
                 item_fields: Sequence[str] | None = None, ids: bool = True,
                 context_fields: Sequence[str] | None = None):
        super().__init__()
        item_feature_codes = item_feature_codes or {}
        available_user = [k.split(".", 1)[1] for k in feature_sizes if k.startswith("user.")]
        available_item = [k for k in item_feature_codes if f"item.{k}" in feature_sizes]
        self.user_features = _choose(user_fields, available_user, "user_fields")
        self.item_features = _choose(item_fields, available_item, "item_fields")
        available_context = ["last_item", *(f"last_item.{f}" for f in available_item)]
        self.context = _choose(list(context_fields or ()), available_context, "context_fields")
        self.ids = ids
        self.sizes: dict[str, int] = {}
        if ids:
            self.sizes["user"] = n_users + 1
        self.sizes.update({f"user.{f}": feature_sizes[f"user.{f}"] for f in self.user_features})
        for name in self.context:
            self.sizes[name] = (n_items + 1 if name == "last_item"
                                else feature_sizes[f"item.{name.split('.', 1)[1]}"])
        if ids:
            self.sizes["item"] = n_items + 1
        self.sizes.update({f"item.{f}": feature_sizes[f"item.{f}"] for f in self.item_features})
        if not self.sizes:
            raise ValueError("no fields left: enable ids or name some user/item features")
        self.n_items = n_items
        context_features = [n.split(".", 1)[1] for n in self.context if "." in n]
        for f in dict.fromkeys(self.item_features + context_features):
            self.register_buffer(f"catalog_{f}", item_feature_codes[f].long(), persistent=False)

    @property
    def user_names(self) -> list[str]:
        """Request-side fields: the user's and the context's."""
        return [n for n in self.sizes if n not in self.item_names]

    @property
    def item_names(self) -> list[str]:
        return [n for n in self.sizes if n == "item" or n.startswith("item.")]

    def user(self, batch: dict) -> dict[str, torch.Tensor]:
        """Request-side codes: user id and features, then the context of the batch's rows."""
        codes = {"user": batch["users"] + 1} if self.ids else {}
        codes.update({f"user.{f}": batch[f"user.{f}"] for f in self.user_features})
        if self.context:
            last = batch["history"][:, -1]
            known = last < self.n_items  # padding: no previous item
            for name in self.context:
                if name == "last_item":
                    codes[name] = torch.where(known, last + 1, 0)
                else:
                    table = getattr(self, f"catalog_{name.split('.', 1)[1]}")
                    rows = table[last.clamp(max=self.n_items - 1)]
                    codes[name] = rows * (known[:, None] if rows.dim() == 2 else known)
        return codes

    def row(self, batch: dict) -> dict[str, torch.Tensor]:
        """Every field's codes for training rows (request side and item side together)."""
        return {**self.user(batch), **self.item(batch)}

    def item(self, batch: dict) -> dict[str, torch.Tensor]:
        codes = {"item": batch["items"] + 1} if self.ids else {}
        codes.update({f"item.{f}": batch[f"item.{f}"] for f in self.item_features})
        return codes

    def catalog(self) -> dict[str, torch.Tensor]:
        """Item-side codes of every catalog item, in item order."""
        items = torch.arange(self.n_items, device=self._device())
        batch = {"items": items}
        batch.update({f"item.{f}": getattr(self, f"catalog_{f}") for f in self.item_features})
        return self.item(batch)

    def _device(self) -> torch.device:
        buffers = list(self.buffers())
        return buffers[0].device if buffers else torch.device("cpu")


def _choose(wanted: Sequence[str] | None, available: list[str], key: str) -> list[str]:
    if wanted is None:
        return list(available)
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise ValueError(f"model.{key} names {unknown}; the dataset offers {available}")
    return list(wanted)


class FeatureEmbedding(nn.Module):
    """One table per field; embeds a dict of codes to [N, n_fields, dim] (fields in the order
    they were declared, skipping those absent from the dict)."""

    def __init__(self, sizes: dict[str, int], dim: int, std: float = 0.01):
        super().__init__()
        self.names = list(sizes)
        self.tables = nn.ModuleDict({_key(n): nn.Embedding(s, dim, padding_idx=0)
                                     for n, s in sizes.items()})
        for table in self.tables.values():
            nn.init.normal_(table.weight, std=std)
            with torch.no_grad():
                table.weight[0].zero_()

    def field(self, name: str, codes: torch.Tensor) -> torch.Tensor:
        vectors = self.tables[_key(name)](codes)
        if codes.dim() == 1:
            return vectors
        count = (codes != 0).sum(-1, keepdim=True).clamp(min=1)
        return vectors.sum(-2) / count  # mean over the bag; padding embeds to zero

    def forward(self, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.field(n, codes[n]) for n in self.names if n in codes], dim=1)


def fm_interaction(vectors: torch.Tensor) -> torch.Tensor:
    """Sum of all pairwise dot products between field vectors [N, F, k] -> [N], in O(kF):
    0.5 * ((sum_f v_f)^2 - sum_f v_f^2)."""
    total = vectors.sum(1)
    return 0.5 * (total.pow(2) - vectors.pow(2).sum(1)).sum(-1)


def fm_scores(user_vectors: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
    """FM interaction of every user row [B, Fu, k] with every item row [N, Fi, k] -> [B, N]:
    the within-side terms plus one matmul of the side sums (the FM over the union of fields)."""
    cross = user_vectors.sum(1) @ item_vectors.sum(1).T
    return cross + fm_interaction(user_vectors)[:, None] + fm_interaction(item_vectors)[None, :]


class FMBlock(nn.Module):
    """Bias + linear terms + pairwise field interactions in O(kn): the part FM and DeepFM share.
    `rows` scores training rows, `catalog` every (user, item) pair with one matmul; both also
    return the field vectors so a deep part can reuse the same embeddings."""

    def __init__(self, sizes: dict[str, int], embedding_dim: int):
        super().__init__()
        self.embed = FeatureEmbedding(sizes, embedding_dim, std=0.05)
        self.linear = FeatureEmbedding(sizes, 1, std=0.0)
        self.bias = nn.Parameter(torch.zeros(1))

    def rows(self, codes: dict) -> tuple[torch.Tensor, torch.Tensor]:
        vectors = self.embed(codes)
        return self.bias + self.linear(codes).sum((1, 2)) + fm_interaction(vectors), vectors

    def catalog(self, user: dict, items: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        user_v, item_v = self.embed(user), self.embed(items)
        linear = ((self.bias + self.linear(user).sum((1, 2)))[:, None]
                  + self.linear(items).sum((1, 2))[None, :])
        return linear + fm_scores(user_v, item_v), user_v, item_v


class MLP(nn.Module):
    """Linear -> ReLU -> Dropout blocks, then a linear output (out_dim=None: no output layer)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0,
                 out_dim: int | None = 1):
        super().__init__()
        dims = [in_dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:],
                                                                     strict=True))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(dims[-1], out_dim) if out_dim else None
        self.out_features = out_dim or dims[-1]

    def _rest(self, h: torch.Tensor, first_done: bool) -> torch.Tensor:
        layers = self.hidden[1:] if first_done else self.hidden
        if first_done:
            h = self.dropout(F.relu(h))
        for layer in layers:
            h = self.dropout(F.relu(layer(h)))
        return self.output(h) if self.output is not None else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._rest(x, first_done=False)

    def pair_scores(self, user_x: torch.Tensor, item_x: torch.Tensor) -> torch.Tensor:
        """out_dim=1 MLP over concat(user_x[b], item_x[n]) for all pairs -> [B, N], without
        materializing the concatenation: the first layer is split into user and item parts,
        and items are taken in chunks so memory stays under PAIR_CHUNK_FLOATS."""
        if not self.hidden:
            raise ValueError("pair_scores needs at least one hidden layer")
        first = self.hidden[0]
        du = user_x.shape[1]
        user_part = user_x @ first.weight[:, :du].T  # [B, h]
        item_part = item_x @ first.weight[:, du:].T + first.bias  # [N, h]
        width = max(first.out_features, *(layer.out_features for layer in self.hidden))
        chunk = max(1, PAIR_CHUNK_FLOATS // max(1, len(user_x) * width))
        return score_all_in_chunks(
            lambda start, stop: self._rest(user_part[:, None, :] + item_part[None, start:stop],
                                           True).squeeze(-1),
            len(user_x), len(item_x), chunk)


def flat(vectors: torch.Tensor) -> torch.Tensor:
    """[N, F, k] field vectors -> [N, F*k]."""
    return vectors.flatten(1)


# Sequence helpers ---------------------------------------------------------------------------

SEQUENCE_LOSSES = ("ce", "sampled_softmax", "bpr")


def next_item_loss(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor | None, kind: str = "ce", n_negatives: int = 100
                   ) -> torch.Tensor:
    """Loss of interest vectors [N, d] for their next items [N] against the item output table
    weight [n_items, d] (+ bias [n_items]).

    ce: full-softmax cross-entropy over the catalog. sampled_softmax: softmax over the target
    and `n_negatives` uniformly sampled items shared by the batch (accidental hits masked).
    bpr: -log sigmoid(target - negative) with one sampled negative per position.
    """
    if kind == "ce":
        logits = hidden @ weight.T
        if bias is not None:
            logits = logits + bias
        return F.cross_entropy(logits, targets)
    n_items = weight.shape[0]
    pos = (hidden * weight[targets]).sum(-1)
    if bias is not None:
        pos = pos + bias[targets]
    if kind == "sampled_softmax":
        negatives = torch.randint(0, n_items, (n_negatives,), device=hidden.device)
        neg = hidden @ weight[negatives].T
        if bias is not None:
            neg = neg + bias[negatives]
        neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([pos[:, None], neg], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))
    if kind == "bpr":
        negatives = torch.randint(0, n_items, targets.shape, device=hidden.device)
        neg = (hidden * weight[negatives]).sum(-1)
        if bias is not None:
            neg = neg + bias[negatives]
        return -F.logsigmoid(pos - neg).mean()
    raise ValueError(f"loss={kind!r}; expected one of {SEQUENCE_LOSSES}")


def check_sequence_loss(kind: str) -> None:
    if kind not in SEQUENCE_LOSSES:
        raise ValueError(f"loss={kind!r}; expected one of {SEQUENCE_LOSSES}")


def causal_padding_mask(items: torch.Tensor, pad: int) -> torch.Tensor:
    """Boolean attention mask [B, 1, L, L] (True = may attend): each position sees itself and
    earlier real items; the diagonal is always open so left padding never empties a row."""
    length = items.shape[1]
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=items.device))
    real_keys = (items != pad)[:, None, :]  # [B, 1, L]
    eye = torch.eye(length, dtype=torch.bool, device=items.device)
    return ((causal & real_keys) | eye)[:, None]


def windows(items: torch.Tensor, width: int, pad: int) -> torch.Tensor:
    """[B, L] -> [B, L, width]: at each position, the `width` most recent items up to and
    including it (left-padded with `pad`)."""
    padded = F.pad(items, (width - 1, 0), value=pad)
    return padded.unfold(1, width, 1)


class ItemSideEmbedding(nn.Module):
    """Item id embedding plus (optionally) the item's side-feature embeddings, summed: the input
    representation of sequence models. Row `n_items` is padding and embeds to zero."""

    def __init__(self, n_items: int, dim: int, feature_sizes: dict[str, int] | None = None,
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 features: Sequence[str] = (), std: float = 0.05):
        super().__init__()
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        nn.init.normal_(self.items.weight, std=std)
        with torch.no_grad():
            self.items.weight[n_items].zero_()
        self.features = list(features)
        available = sorted(item_feature_codes or {})
        unknown = [f for f in self.features if f not in available]
        if unknown:
            raise ValueError(f"model.item_features names {unknown}; the dataset offers {available}")
        sizes = {f: feature_sizes[f"item.{f}"] for f in self.features}
        self.side = FeatureEmbedding(sizes, dim, std=std) if sizes else None
        for f in self.features:
            codes = item_feature_codes[f].long()
            pad_row = torch.zeros((1, *codes.shape[1:]), dtype=torch.long)
            self.register_buffer(f"codes_{f}", torch.cat([codes, pad_row]), persistent=False)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        out = self.items(items)
        if self.side is not None:
            codes = {f: getattr(self, f"codes_{f}")[items] for f in self.features}
            out = out + self.side(codes).sum(-2)
        return out

    def catalog(self) -> torch.Tensor:
        """[n_items, dim] representations of every catalog item (for tied output layers)."""
        if self.side is None:
            return self.items.weight[: self.n_items]
        return self(torch.arange(self.n_items, device=self.items.weight.device))


def bag_matrix(codes: torch.Tensor, size: int) -> torch.Tensor:
    """Codes [N] or [N, m] -> [N, size] rows that average the row's non-zero codes (the
    dense form of a mean-pooled bag); column 0 (unknown/padding) stays zero."""
    codes = codes if codes.dim() == 2 else codes[:, None]
    rows = torch.zeros(len(codes), size, device=codes.device)
    rows.scatter_add_(1, codes, torch.ones_like(codes, dtype=rows.dtype))
    rows[:, 0] = 0
    return rows / rows.sum(1, keepdim=True).clamp(min=1)


POINTWISE_LOSSES = ("bce", "mse")


class PointwiseRecommender(Recommender):
    """Base of feature models trained on `features` rows. Subclasses give `row_logits(batch) ->
    [N]` for training rows and `score_all` for the catalog; both must compute the same function.

    `loss: bce` (default): each train interaction (label 1) and its sampled negatives (label 0),
    binary cross-entropy; the score is a click logit. `loss: mse`: the observed train rows only,
    regressed onto their ratings (needs a dataset with ratings); the score is a predicted rating,
    so the model ranks the catalog by predicted rating. Either way the evaluator reports the CTR
    view on labeled held-out rows from the same scores (bench.ctr): AUC, plus LogLoss (bce) or
    RMSE/MAE (mse)."""

    batch_kind = "features"

    def __init__(self, loss: str = "bce"):
        super().__init__()
        if loss not in POINTWISE_LOSSES:
            raise ValueError(f"loss={loss!r}; expected one of {POINTWISE_LOSSES}")
        self.objective = loss  # not `self.loss`: that is the training-loss method

    def row_logits(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict) -> torch.Tensor:
        if self.objective == "mse":
            return F.mse_loss(self.row_logits(batch), batch["ratings"])
        return F.binary_cross_entropy_with_logits(self.row_logits(batch), batch["labels"])
