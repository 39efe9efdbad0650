"""One full-ranking evaluator: scores -> mask seen -> deterministic top-K -> metrics.

Definitions (per user u with relevant set R_u, |R_u| >= 1, top-K list L_u; users without a
relevant item are not evaluated):
  HitRate@K   = 1 if |L_u ∩ R_u| > 0
  Precision@K = |L_u ∩ R_u| / K              (K, not min(K, catalog))
  Recall@K    = |L_u ∩ R_u| / |R_u|
  MRR@K       = 1 / rank of the first hit in L_u (0 if none)
  NDCG@K      = sum_{hits at rank r} 1/log2(r+1) / sum_{r=1..min(|R_u|,K)} 1/log2(r+1)
  MAP@K       = sum_{hits at rank r} Precision@r / min(|R_u|, K)
  Coverage@K  = |∪_u L_u| / n_items (catalog share recommended at least once)
Ties in score are broken by the smaller item index; masked (seen) items are never recommended.
"""

from __future__ import annotations

import torch

METRICS = ("recall", "precision", "map", "mrr", "ndcg", "hit")


def mask_seen(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Set the scores of known items ([2, nnz] row/item index pairs) to -inf, in place."""
    scores[seen[0], seen[1]] = float("-inf")
    return scores


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k best items per row, ordered by (score desc, item index asc).

    torch.topk leaves the order of equal scores unspecified; rows whose k-th score is tied
    with an item outside the list (or inside it) are re-ranked by a stable full sort.
    """
    k = min(k, scores.shape[1])
    values, idx = torch.topk(scores, k, dim=1)
    kth = values[:, -1:]
    has_tie = ((scores == kth).sum(1) > (values == kth).sum(1)) | (
        values[:, 1:] == values[:, :-1]
    ).any(1)
    if bool(has_tie.any()):
        rows = has_tie.nonzero().squeeze(1)
        order = torch.sort(scores[rows], dim=1, descending=True, stable=True).indices[:, :k]
        idx[rows] = order
    return idx


def rank_metrics(scores: torch.Tensor, batch: dict, ks: list[int]) -> tuple[dict, torch.Tensor]:
    """Per-user metric vectors for one batch of users, and their top-max(K) item lists.

    scores: [B, n_items] (modified in place by masking). Recommended slots whose item was
    masked (K larger than what is left to recommend) are returned as -1 and never count.
    """
    mask_seen(scores, batch["seen"])
    kmax = max(ks)
    idx = top_k(scores, kmax)
    valid = torch.isfinite(scores.gather(1, idx))
    idx = torch.where(valid, idx, torch.full_like(idx, -1))
    relevant = torch.zeros_like(scores, dtype=torch.bool)
    relevant[batch["targets"][0], batch["targets"][1]] = True
    n_rel = relevant.sum(1).to(torch.float64)
    hits = relevant.gather(1, idx.clamp(min=0)) & valid
    out = {}
    ranks = torch.arange(1, idx.shape[1] + 1, dtype=torch.float64)
    discounts = 1.0 / torch.log2(ranks + 1)
    for k in ks:
        h = hits[:, :k].to(torch.float64)
        n_hit = h.sum(1)
        out[f"hit@{k}"] = (n_hit > 0).to(torch.float64)
        out[f"precision@{k}"] = n_hit / k
        out[f"recall@{k}"] = n_hit / n_rel
        first = torch.where(n_hit > 0, h.argmax(1).to(torch.float64) + 1, torch.inf)
        out[f"mrr@{k}"] = 1.0 / first
        dcg = (h * discounts[: h.shape[1]]).sum(1)
        ideal_n = torch.clamp(n_rel, max=k).long()
        # min(|R|, K) <= n_items = len(discounts), so the ideal list always fits.
        idcg = torch.cumsum(discounts, 0)[ideal_n - 1]
        out[f"ndcg@{k}"] = dcg / idcg
        precision_at_r = torch.cumsum(h, 1) / ranks[: h.shape[1]]
        out[f"map@{k}"] = (precision_at_r * h).sum(1) / torch.clamp(n_rel, max=k)
    return out, idx


class MetricAccumulator:
    """Collects per-user vectors across batches; summarizes means and coverage."""

    def __init__(self, ks: list[int], n_items: int):
        self.ks, self.n_items = list(ks), n_items
        self.users: list[torch.Tensor] = []
        self.vectors: dict[str, list[torch.Tensor]] = {}
        self.recommended = {k: torch.zeros(n_items, dtype=torch.bool) for k in self.ks}

    def update(self, scores: torch.Tensor, batch: dict) -> None:
        per_user, top = rank_metrics(scores.detach().float().cpu(), _cpu(batch), self.ks)
        self.users.append(batch["users"].cpu())
        for name, vec in per_user.items():
            self.vectors.setdefault(name, []).append(vec)
        for k in self.ks:
            items = top[:, :k]
            self.recommended[k][items[items >= 0]] = True

    def per_user(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        users = torch.cat(self.users) if self.users else torch.empty(0, dtype=torch.long)
        return users, {n: torch.cat(v) for n, v in self.vectors.items()}

    def summary(self) -> dict[str, float]:
        _, vectors = self.per_user()
        out = {name: float(vec.mean()) for name, vec in vectors.items()}
        for k in self.ks:
            out[f"coverage@{k}"] = float(self.recommended[k].sum()) / max(self.n_items, 1)
        return out


def _cpu(batch: dict) -> dict:
    return {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def evaluate(model, batches: list[dict], ks: list[int], n_items: int) -> MetricAccumulator:
    """Score every batch with `model.score_all` and accumulate metrics (no Lightning needed)."""
    was_training = model.training
    model.eval()
    acc = MetricAccumulator(ks, n_items)
    for batch in batches:
        acc.update(model.score_all(batch), batch)
    model.train(was_training)
    return acc
