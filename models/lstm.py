import torch
import torch.nn.functional as F
from torch import nn

from bench.recommender import Recommender


class LSTMRecommender(Recommender):
    """Item embeddings -> LSTM -> next-item scores over the whole catalog.

    Trained sequence-to-sequence (every position predicts the next item) with full-softmax
    cross-entropy; the user's interest vector is the last hidden state, scored against the
    (tied) item embedding table in one matmul.
    """

    batch_kind = "sequence"

    def __init__(self, n_items: int, embedding_dim: int = 64, hidden_size: int = 64,
                 num_layers: int = 1, dropout: float = 0.2, tied: bool = True):
        super().__init__()
        self.n_items = n_items
        self.item_emb = nn.Embedding(n_items + 1, embedding_dim, padding_idx=n_items)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.project = nn.Linear(hidden_size, embedding_dim) if tied else None
        self.output = None if tied else nn.Linear(hidden_size, n_items)
        nn.init.normal_(self.item_emb.weight, std=0.05)

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """[B, L] item ids -> [B, L, d] interest vectors after each position."""
        hidden, _ = self.lstm(self.dropout(self.item_emb(items)))
        hidden = self.dropout(hidden)
        return self.project(hidden) if self.project is not None else hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.output is not None:
            return self.output(hidden)
        return hidden @ self.item_emb.weight[: self.n_items].T

    def loss(self, batch: dict) -> torch.Tensor:
        targets = batch["targets"]
        keep = targets != self.n_items
        hidden = self.encode(batch["inputs"])[keep]  # only real positions pay for the softmax
        return F.cross_entropy(self.logits(hidden), targets[keep])

    def score_all(self, batch: dict) -> torch.Tensor:
        return self.logits(self.encode(batch["history"])[:, -1])
