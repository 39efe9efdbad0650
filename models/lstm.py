import torch
from torch import nn

from bench.layers import ItemSideEmbedding, check_sequence_loss, next_item_loss
from bench.recommender import Recommender


class LSTMRecommender(Recommender):
    """Item (+ optional side-feature) embeddings -> LSTM -> next-item scores over the catalog.

    Trained sequence-to-sequence (every position predicts the next item) with full-softmax
    cross-entropy by default, or sampled softmax / BPR. The user's interest vector is the last
    hidden state, scored against the item table (tied) or an output layer (untied) in one matmul.
    """

    batch_kind = "sequence"

    def __init__(self, n_items: int, embedding_dim: int = 64, hidden_size: int = 64,
                 num_layers: int = 1, dropout: float = 0.2, tied: bool = True,
                 loss: str = "ce", n_negatives: int = 100, item_features: list[str] = (),
                 feature_sizes: dict | None = None,
                 item_feature_codes: dict[str, torch.Tensor] | None = None):
        super().__init__()
        check_sequence_loss(loss)
        self.n_items, self.loss_kind, self.n_negatives = n_items, loss, n_negatives
        self.embed = ItemSideEmbedding(n_items, embedding_dim, feature_sizes, item_feature_codes,
                                       item_features)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.project = nn.Linear(hidden_size, embedding_dim) if tied else None
        self.output = None if tied else nn.Linear(hidden_size, n_items)

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """[B, L] item ids -> [B, L, d] interest vectors after each position."""
        hidden, _ = self.lstm(self.dropout(self.embed(items)))
        hidden = self.dropout(hidden)
        return self.project(hidden) if self.project is not None else hidden

    def output_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.output is not None:
            return self.output.weight, self.output.bias
        return self.embed.catalog(), None

    def loss(self, batch: dict) -> torch.Tensor:
        targets = batch["targets"]
        keep = targets != self.n_items
        hidden = self.encode(batch["inputs"])[keep]  # only real positions pay for the loss
        weight, bias = self.output_table()
        return next_item_loss(hidden, targets[keep], weight, bias, self.loss_kind,
                              self.n_negatives)

    def score_all(self, batch: dict) -> torch.Tensor:
        weight, bias = self.output_table()
        scores = self.encode(batch["history"])[:, -1] @ weight.T
        return scores + bias if bias is not None else scores
