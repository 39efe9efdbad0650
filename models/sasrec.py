import torch
import torch.nn.functional as F
from torch import nn

from bench.layers import ItemSideEmbedding, causal_padding_mask, check_sequence_loss, next_item_loss
from bench.recommender import Recommender


class SelfAttentionBlock(nn.Module):
    """Pre-norm causal multi-head self-attention + position-wise feed-forward, both residual."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(attended.transpose(1, 2).reshape(b, length, dim)))
        return x + self.drop(self.ff(self.norm2(x)))


class SASRec(Recommender):
    """Self-attentive sequential recommendation: item + position embeddings -> causal
    self-attention blocks -> next-item scores against the tied item table (one matmul).
    Trained like `lstm`: every position predicts the next item (full softmax by default)."""

    batch_kind = "sequence"

    def __init__(self, n_items: int, max_len: int, embedding_dim: int = 64, num_blocks: int = 2,
                 num_heads: int = 1, dropout: float = 0.2, loss: str = "ce",
                 n_negatives: int = 100, item_features: list[str] = (),
                 feature_sizes: dict | None = None,
                 item_feature_codes: dict[str, torch.Tensor] | None = None):
        super().__init__()
        check_sequence_loss(loss)
        if embedding_dim % num_heads:
            raise ValueError(f"embedding_dim={embedding_dim} must be divisible by "
                             f"num_heads={num_heads}")
        self.n_items, self.loss_kind, self.n_negatives = n_items, loss, n_negatives
        self.embed = ItemSideEmbedding(n_items, embedding_dim, feature_sizes, item_feature_codes,
                                       item_features)
        self.positions = nn.Embedding(max_len, embedding_dim)
        nn.init.normal_(self.positions.weight, std=0.05)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SelfAttentionBlock(embedding_dim, num_heads, dropout)
                                    for _ in range(num_blocks))
        self.norm = nn.LayerNorm(embedding_dim)
        self.scale = embedding_dim ** 0.5

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """[B, L] item ids (left-padded) -> [B, L, d] interest vectors after each position."""
        length = items.shape[1]
        positions = self.positions.weight[-length:]  # right-aligned: the last item is last
        real = (items != self.n_items).unsqueeze(-1)
        x = self.drop(self.embed(items) * self.scale + positions) * real
        mask = causal_padding_mask(items, self.n_items)
        for block in self.blocks:
            x = block(x, mask) * real
        return self.norm(x)

    def loss(self, batch: dict) -> torch.Tensor:
        targets = batch["targets"]
        keep = targets != self.n_items
        hidden = self.encode(batch["inputs"])[keep]
        return next_item_loss(hidden, targets[keep], self.embed.catalog(), None, self.loss_kind,
                              self.n_negatives)

    def score_all(self, batch: dict) -> torch.Tensor:
        return self.encode(batch["history"])[:, -1] @ self.embed.catalog().T
