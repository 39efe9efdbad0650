import torch
import torch.nn.functional as F
from torch import nn

from bench.recommender import Recommender


class MatrixFactorization(Recommender):
    """User and item embeddings scored by dot product, trained with BPR (or BCE) on sampled
    negatives."""

    batch_kind = "pairwise"

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, loss: str = "bpr"):
        super().__init__()
        if loss not in ("bpr", "bce"):
            raise ValueError(f"model.loss={loss!r}; expected 'bpr' or 'bce'")
        self.loss_kind = loss
        self.user_emb = nn.Embedding(n_users, embedding_dim)
        self.item_emb = nn.Embedding(n_items, embedding_dim)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)

    def loss(self, batch: dict) -> torch.Tensor:
        u = self.user_emb(batch["users"])  # [B, d]
        pos = (u * self.item_emb(batch["items"])).sum(-1)  # [B]
        neg = torch.einsum("bd,bnd->bn", u, self.item_emb(batch["negatives"]))  # [B, N]
        if self.loss_kind == "bpr":
            return -F.logsigmoid(pos.unsqueeze(1) - neg).mean()
        return F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + \
            F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))

    def score_all(self, batch: dict) -> torch.Tensor:
        return self.user_emb(batch["users"]) @ self.item_emb.weight.T
