import torch
import torch.nn.functional as F
from torch import nn

from bench.layers import check_sequence_loss, next_item_loss, windows
from bench.recommender import Recommender


class ConvNet(Recommender):
    """Caser-style convolutional sequence model: the `window` most recent items, embedded as an
    image [window, d], go through horizontal filters (heights 1..window, max-pooled over time)
    and vertical filters (weighted sums over time); both feed a fully connected layer whose
    output is scored against the item table in one matmul. Every position of a training
    sequence predicts its next item (full softmax by default)."""

    batch_kind = "sequence"

    def __init__(self, n_items: int, max_len: int, embedding_dim: int = 64, window: int = 5,
                 n_horizontal: int = 16, n_vertical: int = 4, dropout: float = 0.3,
                 loss: str = "ce", n_negatives: int = 100):
        super().__init__()
        check_sequence_loss(loss)
        if not 1 <= window <= max_len:
            raise ValueError(f"window={window} must be between 1 and max_len={max_len}")
        self.n_items, self.window = n_items, window
        self.loss_kind, self.n_negatives = loss, n_negatives
        self.item_emb = nn.Embedding(n_items + 1, embedding_dim, padding_idx=n_items)
        nn.init.normal_(self.item_emb.weight, std=0.05)
        # A horizontal filter of height h spans h whole embeddings: a linear map of h*d inputs
        # slid over time (written as unfold + matmul, much faster on CPU than Conv2d here).
        self.horizontal = nn.ModuleList(nn.Linear(h * embedding_dim, n_horizontal)
                                        for h in range(1, window + 1))
        self.vertical = nn.Parameter(torch.randn(n_vertical, window) / window ** 0.5)
        self.fc = nn.Linear(n_horizontal * window + n_vertical * embedding_dim, embedding_dim)
        self.drop = nn.Dropout(dropout)
        self.out_emb = nn.Embedding(n_items, embedding_dim)
        self.out_bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.out_emb.weight, std=0.05)

    def encode_windows(self, recent: torch.Tensor) -> torch.Tensor:
        """[N, window] recent item ids -> [N, d] interest vectors."""
        image = self.item_emb(recent)  # [N, window, d]
        pooled = []
        for height, linear in enumerate(self.horizontal, start=1):
            spans = image.unfold(1, height, 1).transpose(2, 3).flatten(2)  # [N, w-h+1, h*d]
            pooled.append(F.relu(linear(spans)).amax(1))
        vertical = torch.einsum("nwd,vw->nvd", image, self.vertical).flatten(1)
        z = torch.cat([*pooled, vertical], dim=1)
        return F.relu(self.fc(self.drop(z)))

    def loss(self, batch: dict) -> torch.Tensor:
        targets = batch["targets"]
        keep = targets != self.n_items
        recent = windows(batch["inputs"], self.window, self.n_items)[keep]
        return next_item_loss(self.drop(self.encode_windows(recent)), targets[keep],
                              self.out_emb.weight, self.out_bias, self.loss_kind,
                              self.n_negatives)

    def score_all(self, batch: dict) -> torch.Tensor:
        hidden = self.encode_windows(batch["history"][:, -self.window:])
        return hidden @ self.out_emb.weight.T + self.out_bias
