import torch
import torch.nn.functional as F
from torch import nn

from bench.recommender import Recommender


class MatrixFactorization(Recommender):
    """User and item embeddings scored by dot product, trained with BPR (or BCE) on sampled
    negatives. `l2` penalizes the embeddings a batch touches (BPR's own regularizer), which
    unlike the optimizer's weight decay leaves rarely sampled rows alone."""

    batch_kind = "pairwise"

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, loss: str = "bpr",
                 l2: float = 0.0):
        super().__init__()
        if loss not in ("bpr", "bce"):
            raise ValueError(f"model.loss={loss!r}; expected 'bpr' or 'bce'")
        self.loss_kind, self.l2 = loss, l2
        self.user_emb = nn.Embedding(n_users, embedding_dim)
        self.item_emb = nn.Embedding(n_items, embedding_dim)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)

    def loss(self, batch: dict) -> torch.Tensor:
        u = self.user_emb(batch["users"])  # [B, d]
        i, j = self.item_emb(batch["items"]), self.item_emb(batch["negatives"])  # [B, d], [B, N, d]
        pos = (u * i).sum(-1)  # [B]
        neg = torch.einsum("bd,bnd->bn", u, j)  # [B, N]
        if self.loss_kind == "bpr":
            loss = -F.logsigmoid(pos.unsqueeze(1) - neg).mean()
        else:
            loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + \
                F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
        if self.l2:
            loss = loss + self.l2 * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / len(u)
        return loss

    def score_all(self, batch: dict) -> torch.Tensor:
        return self.user_emb(batch["users"]) @ self.item_emb.weight.T
