"""One full-ranking evaluator: scores -> mask -> deterministic top-K -> metrics.

Definitions (docs/protocols-and-metrics.md has the long form). For an evaluated user u with
relevant (target) set R_u, |R_u| >= 1, and top-K list L_u = (l_1 .. l_K); hit_r = 1 if l_r is
in R_u. Users without a relevant item are not evaluated (they have no row and no vector).
  HitRate@K   = 1 if sum_{r<=K} hit_r > 0 else 0
  Precision@K = sum_{r<=K} hit_r / K            (always K, even when fewer items were rankable)
  Recall@K    = sum_{r<=K} hit_r / |R_u|
  MRR@K       = 1 / min{r <= K : hit_r = 1}      (0 if no hit)
  NDCG@K      = sum_{r<=K} hit_r / log2(r+1)  /  sum_{r=1..min(|R_u|,K)} 1 / log2(r+1)
  MAP@K       = sum_{r<=K} hit_r * Precision@r  /  min(|R_u|, K)
  AvgPop@K    = mean over the filled slots of L_u of the item's training interaction count
                (0 if L_u is empty)
Catalog figures over all evaluated users (c_i = number of lists L_u that contain item i):
  Coverage@K  = |{i : c_i > 0}| / n_items
  Gini@K      = sum_{j=1..n} (2j - n - 1) c_(j) / (n * sum_j c_j), c sorted ascending,
                n = n_items (0 = every item equally exposed; (n-1)/n = one item takes all)
Summaries are means over evaluated users of the per-user vectors (plus coverage and Gini).

Ranking rules: ties in score are broken by the smaller item index; items the user already
interacted with (train, and valid at test time) are masked to -inf and never recommended;
an item scored -inf by the model is never recommended either. When fewer than K items are
rankable the list has empty slots (-1) that never count as hits, but K stays the
denominator of Precision. Relevant items that are masked (a repeat of a known item) stay in
|R_u|: they cannot be retrieved, as in trec_eval. NaN scores are an error.

The catalog can be scored in item chunks (`item_chunk`); per-chunk top-K lists are merged with
a stable sort, so results do not depend on the user batch size or the number of chunks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bench.ctr import LabeledRows
from bench.errors import BenchError

METRICS = ("recall", "precision", "map", "mrr", "ndcg", "hit")
NEG_INF = float("-inf")

# A function of an item range [start, stop) -> [B, stop - start] scores for one user batch.
ScoreItems = Callable[[int, int], torch.Tensor]


def mask_seen(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Set the scores of known items ([2, nnz] row/item index pairs) to -inf, in place."""
    scores[seen[0], seen[1]] = NEG_INF
    return scores


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k best items per row, ordered by (score desc, item index asc)."""
    return _top_k(scores, k)[1]


def _top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the k best per row, ordered by (score desc, index asc).

    torch.topk leaves the order of equal scores unspecified. One extra slot tells whether the
    k-th score is tied with an item outside the list; such rows, and rows with ties inside the
    list, are re-ranked by a stable sort. A NaN anywhere in a row ranks first in topk, so
    checking the values finds it without another pass over the scores.
    """
    n = scores.shape[1]
    k = min(k, n)
    values, idx = torch.topk(scores, min(k + 1, n), dim=1)
    if bool(torch.isnan(values).any()):
        raise BenchError("model produced NaN scores")
    if values.shape[1] < 2:
        return values[:, :k], idx[:, :k]
    has_tie = (values[:, 1:] == values[:, :-1]).any(1)
    if bool(has_tie.any()):
        rows = has_tie.nonzero().squeeze(1)
        sorted_values, order = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        values[rows], idx[rows] = sorted_values[:, : values.shape[1]], order[:, : values.shape[1]]
    return values[:, :k], idx[:, :k]


def _pairs_in(pairs: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and chunk-local columns of the [2, nnz] (row, item) pairs with start <= item < stop."""
    inside = (pairs[1] >= start) & (pairs[1] < stop)
    return pairs[0][inside], pairs[1][inside] - start


def rank_top_k(score_items: ScoreItems, batch: dict, n_items: int, k: int,
               item_chunk: int | None = None) -> torch.Tensor:
    """Top-k item indices per user, [B, k] with -1 in empty slots, scoring the catalog in
    chunks of `item_chunk` items (None: one piece), so memory is O(B * item_chunk).

    Masks the batch's `seen` pairs; if the batch has `candidates` pairs (sampled evaluation),
    only those items and the user's targets are rankable. The tensors `score_items` returns
    hold the same values afterwards (masked in place, then restored).
    """
    n_rows = len(batch["users"])
    chunk = max(1, item_chunk or n_items)
    seen, candidates = batch["seen"], batch.get("candidates")
    best_values = best_items = None
    for start in range(0, n_items, chunk):
        stop = min(start + chunk, n_items)
        scores = score_items(start, stop).detach().float()  # ranked where it was scored
        device = scores.device
        if best_values is None:
            best_values = torch.empty((n_rows, 0), device=device)
            best_items = torch.empty((n_rows, 0), dtype=torch.long, device=device)
            seen = seen.to(device)
            candidates = None if candidates is None else candidates.to(device)
            targets = batch["targets"].to(device)
        if scores.shape != (n_rows, stop - start):
            raise BenchError(f"model scores have shape {tuple(scores.shape)} for items "
                             f"[{start}, {stop}); expected ({n_rows}, {stop - start})")
        if candidates is not None:
            allowed = torch.zeros(scores.shape, dtype=torch.bool, device=device)
            allowed[_pairs_in(candidates, start, stop)] = True
            allowed[_pairs_in(targets, start, stop)] = True
            scores = scores.masked_fill(~allowed, NEG_INF)
        if not scores.is_contiguous():  # a view or an expanded tensor: never written to
            scores = scores.contiguous()
        # Mask in place and restore afterwards: copying a [B, chunk] matrix costs more than
        # the matmul that produced it; writing back leaves the caller's tensor as it was.
        masked = _pairs_in(seen, start, stop)
        kept = scores[masked]
        scores[masked] = NEG_INF
        try:
            values, items = _top_k(scores, k)
        finally:
            scores[masked] = kept
        values = torch.cat([best_values, values], 1)
        items = torch.cat([best_items, items + start], 1)
        # Earlier chunks hold smaller item indices: a stable sort keeps index order among ties.
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
        best_values, best_items = values.gather(1, order), items.gather(1, order)
    if best_values is None:  # an empty catalog
        return torch.full((n_rows, k), -1, dtype=torch.long)
    top = torch.where(best_values > NEG_INF, best_items, torch.full_like(best_items, -1)).cpu()
    if top.shape[1] < k:  # K larger than the catalog: the remaining slots are empty
        top = torch.cat([top, torch.full((n_rows, k - top.shape[1]), -1, dtype=torch.long)], 1)
    return top


def topk_metrics(top: torch.Tensor, targets: torch.Tensor, ks: list[int], n_items: int,
                 item_popularity: torch.Tensor | None = None
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-user metric vectors (float64) from top-max(K) lists [B, >=max(K)] (-1 = empty) and
    [2, nnz] (row, item) target pairs. Returns the vectors for rows with at least one target,
    and the boolean mask of those rows."""
    n_rows, width = top.shape
    if width < max(ks):
        raise ValueError(f"top-K lists have {width} slots; need {max(ks)}")
    targets = torch.unique(targets, dim=1)  # a repeated target pair is one relevant item
    n_rel = torch.bincount(targets[0], minlength=n_rows).to(torch.float64)
    keep = n_rel > 0
    filled = top >= 0
    rows = torch.arange(n_rows).unsqueeze(1)
    hits = torch.isin(rows * n_items + top, targets[0] * n_items + targets[1]) & filled
    top, hits, filled, n_rel = top[keep], hits[keep].to(torch.float64), filled[keep], n_rel[keep]
    ranks = torch.arange(1, width + 1, dtype=torch.float64)
    discounts = 1.0 / torch.log2(ranks + 1)
    ideal = torch.cumsum(discounts, 0)
    cum_hits = torch.cumsum(hits, 1)
    out = {}
    for k in ks:
        h = hits[:, :k]
        n_hit = cum_hits[:, k - 1]
        out[f"hit@{k}"] = (n_hit > 0).to(torch.float64)
        out[f"precision@{k}"] = n_hit / k
        out[f"recall@{k}"] = n_hit / n_rel
        first = torch.where(n_hit > 0, h.argmax(1).to(torch.float64) + 1, torch.inf)
        out[f"mrr@{k}"] = 1.0 / first
        capped = torch.clamp(n_rel, max=k)
        out[f"ndcg@{k}"] = (h * discounts[:k]).sum(1) / ideal[capped.long() - 1]
        out[f"map@{k}"] = (h * cum_hits[:, :k] / ranks[:k]).sum(1) / capped
        if item_popularity is not None:
            f = filled[:, :k]
            pop = item_popularity.to(torch.float64)[top[:, :k].clamp(min=0)] * f
            out[f"avgpop@{k}"] = pop.sum(1) / f.sum(1).clamp(min=1)
    return out, keep


def rank_metrics(scores: torch.Tensor, batch: dict, ks: list[int]) -> tuple[dict, torch.Tensor]:
    """Per-user metric vectors for one batch of users ([B, n_items] scores, left unmodified),
    and their top-max(K) item lists (-1 in empty slots)."""
    n_items = scores.shape[1]
    top = rank_top_k(lambda a, b: scores[:, a:b], batch, n_items, max(ks))
    out, keep = topk_metrics(top, batch["targets"], ks, n_items)
    return out, top[keep]


def gini(counts: torch.Tensor) -> float:
    """Gini index of a non-negative exposure vector over the whole catalog (0 if all zero)."""
    c = torch.sort(counts.to(torch.float64)).values
    n, total = len(c), float(c.sum())
    if n == 0 or total == 0:
        return 0.0
    j = torch.arange(1, n + 1, dtype=torch.float64)
    return float(((2 * j - n - 1) * c).sum() / (n * total))


class MetricAccumulator:
    """Collects per-user vectors and item exposure across user batches; summarizes means,
    coverage and Gini. Memory is O(B * item_chunk) per batch plus O(users * metrics)."""

    def __init__(self, ks: list[int], n_items: int, item_popularity: torch.Tensor | None = None,
                 item_chunk: int | None = None):
        self.ks, self.n_items, self.item_chunk = sorted(set(ks)), n_items, item_chunk
        self.item_popularity = None if item_popularity is None else item_popularity.cpu()
        self.users: list[torch.Tensor] = []
        self.vectors: dict[str, list[torch.Tensor]] = {}
        self.exposure = {k: torch.zeros(n_items, dtype=torch.long) for k in self.ks}
        self.labeled = LabeledRows()  # the CTR view of pointwise models (bench.ctr)

    def update(self, scores: torch.Tensor, batch: dict) -> None:
        """Rank a batch from its full [B, n_items] score matrix (left unmodified)."""
        self.update_ranked(self.rank(lambda a, b: scores[:, a:b], batch), batch)

    def update_model(self, model, batch: dict) -> None:
        """Rank a batch with a model: through `model.score_items(batch, start, stop)` in item
        chunks when the model has it (bounded memory), else through `model.score_all`.
        Pointwise models' scores of the batch's labeled held-out rows are gathered on the way."""
        if hasattr(model, "score_items"):
            def score_items(a, b):
                return model.score_items(batch, a, b)
        else:
            scores = model.score_all(batch)

            def score_items(a, b):
                return scores[:, a:b]
        if getattr(model, "batch_kind", None) == "features" and "labeled" in batch:
            score_items = self.labeled.observe(score_items, batch, model.objective)
        self.update_ranked(self.rank(score_items, batch), batch)

    def rank(self, score_items: ScoreItems, batch: dict) -> torch.Tensor:
        return rank_top_k(score_items, batch, self.n_items, max(self.ks), self.item_chunk)

    def update_ranked(self, top: torch.Tensor, batch: dict) -> None:
        """Add a batch from its top-max(K) lists [B, >=max(K)] (-1 = empty slot)."""
        per_user, keep = topk_metrics(top, batch["targets"].cpu(), self.ks, self.n_items,
                                      self.item_popularity)
        self.users.append(batch["users"].cpu()[keep])
        for name, vec in per_user.items():
            self.vectors.setdefault(name, []).append(vec)
        top = top[keep]
        for k in self.ks:
            items = top[:, :k]
            self.exposure[k] += torch.bincount(items[items >= 0], minlength=self.n_items)

    def per_user(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        users = torch.cat(self.users) if self.users else torch.empty(0, dtype=torch.long)
        return users, {n: torch.cat(v) for n, v in self.vectors.items()}

    def summary(self) -> dict[str, float]:
        _, vectors = self.per_user()
        out = {name: float(vec.mean()) for name, vec in vectors.items()}
        for k in self.ks:
            out[f"coverage@{k}"] = float((self.exposure[k] > 0).sum()) / max(self.n_items, 1)
            out[f"gini@{k}"] = gini(self.exposure[k])
        return {**out, **self.labeled.summary()}


@torch.no_grad()
def evaluate(model, batches, ks: list[int], n_items: int,
             item_popularity: torch.Tensor | None = None,
             item_chunk: int | None = None) -> MetricAccumulator:
    """Score every batch with the model and accumulate metrics (no Lightning needed)."""
    was_training = model.training
    model.eval()
    acc = MetricAccumulator(ks, n_items, item_popularity, item_chunk)
    for batch in batches:
        acc.update_model(model, batch)
    model.train(was_training)
    return acc


def score_all_in_chunks(score_items: ScoreItems, n_rows: int, n_items: int,
                        item_chunk: int = 4096) -> torch.Tensor:
    """A full [B, n_items] score matrix assembled from item chunks: for models whose scoring is
    not one matmul (e.g. an MLP over user x item pairs), so intermediates stay O(B * chunk)."""
    out = None
    for start in range(0, n_items, item_chunk):
        stop = min(start + item_chunk, n_items)
        part = score_items(start, stop)
        if out is None:
            out = torch.empty((n_rows, n_items), dtype=part.dtype, device=part.device)
        out[:, start:stop] = part
    return out if out is not None else torch.empty((n_rows, 0))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash (uint64 arithmetic wraps, which is the point)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sample_negatives(batch: dict, n_items: int, n: int, seed: int) -> torch.Tensor:
    """[2, nnz] (row, item) pairs: for each user of the batch, n items drawn uniformly without
    replacement among those neither seen nor targets (all of them if fewer are left).

    The draw is a pure function of (seed, user id, item id): it does not depend on the batch
    size, the run seed or the model, so every model ranks against the same negatives."""
    users = batch["users"].cpu().numpy().astype(np.uint64)
    user_keys = _splitmix64(np.uint64(seed) ^ _splitmix64(users))
    keys = _splitmix64(user_keys[:, None] ^ np.arange(n_items, dtype=np.uint64)[None, :])
    excluded = np.zeros(keys.shape, dtype=bool)
    for pairs in (batch["seen"], batch["targets"]):
        excluded[pairs[0].cpu().numpy(), pairs[1].cpu().numpy()] = True
    keys[excluded] = np.iinfo(np.uint64).max
    n = min(n, n_items)
    chosen = np.argpartition(keys, n - 1, axis=1)[:, :n] if n else keys[:, :0].astype(int)
    rows = np.repeat(np.arange(len(users)), n)
    items = chosen.reshape(-1)
    keep = ~excluded[rows, items]
    pairs = np.stack([rows[keep], items[keep]])
    order = np.lexsort((pairs[1], pairs[0]))
    return torch.as_tensor(pairs[:, order], dtype=torch.long)


def attach_sampled_negatives(stages: dict, n_items: int, n: int, seed: int) -> dict:
    """Add `candidates` (sampled negatives) to every batch of every evaluation stage, in place.
    Returns, per stage, the (inner user, item) pairs drawn, for storing and fingerprinting."""
    drawn = {}
    for name, stage in stages.items():
        per_batch = []
        for batch in stage.batches:
            batch["candidates"] = sample_negatives(batch, n_items, n, seed)
            per_batch.append(torch.stack([batch["users"][batch["candidates"][0]],
                                          batch["candidates"][1]]))
        drawn[name] = (torch.cat(per_batch, 1) if per_batch
                       else torch.empty((2, 0), dtype=torch.long)).numpy()
    return drawn


def merge_accumulators(parts: list[MetricAccumulator]) -> MetricAccumulator:
    """One accumulator from disjoint shards of users (data-parallel ranks): users in id order,
    as a single process would hold them, and item exposure summed."""
    first = parts[0]
    merged = MetricAccumulator(first.ks, first.n_items, first.item_popularity, first.item_chunk)
    users = torch.cat([u for p in parts for u in p.users] or [torch.empty(0, dtype=torch.long)])
    order = torch.argsort(users, stable=True)
    merged.users = [users[order]]
    for name in dict.fromkeys(n for p in parts for n in p.vectors):
        merged.vectors[name] = [torch.cat([v for p in parts for v in p.vectors.get(name, [])])
                                [order]]
    merged.exposure = {k: sum(p.exposure[k] for p in parts) for k in first.ks}
    merged.labeled = LabeledRows.merge([p.labeled for p in parts])
    return merged
