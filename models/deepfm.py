import torch
from torch import nn

from bench.layers import (
    MLP,
    FeatureEmbedding,
    Fields,
    PointwiseRecommender,
    flat,
    fm_interaction,
    fm_scores,
)


class DeepFM(PointwiseRecommender):
    """DeepFM as composition: one shared field embedding feeds an FM interaction and a deep MLP
    whose logits are summed (with the linear terms). The FM part scores the catalog with one
    matmul; the MLP part scores it in bounded-memory item chunks."""

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: list[str] | None = None, item_fields: list[str] | None = None,
                 embedding_dim: int = 16, hidden: list[int] = (128, 64), dropout: float = 0.2,
                 loss: str = "bce"):
        super().__init__(loss)
        self.fields = Fields(n_users, n_items, feature_sizes, item_feature_codes, user_fields,
                             item_fields)
        self.embed = FeatureEmbedding(self.fields.sizes, embedding_dim, std=0.05)
        self.linear = FeatureEmbedding(self.fields.sizes, 1, std=0.0)
        self.bias = nn.Parameter(torch.zeros(1))
        self.mlp = MLP(len(self.fields.sizes) * embedding_dim, list(hidden), dropout)

    def row_logits(self, batch: dict) -> torch.Tensor:
        codes = {**self.fields.user(batch), **self.fields.item(batch)}
        vectors = self.embed(codes)
        return (self.bias + self.linear(codes).sum((1, 2)) + fm_interaction(vectors)
                + self.mlp(flat(vectors)).squeeze(-1))

    def score_all(self, batch: dict) -> torch.Tensor:
        user, catalog = self.fields.user(batch), self.fields.catalog()
        user_v, item_v = self.embed(user), self.embed(catalog)
        linear = (self.bias + self.linear(user).sum((1, 2)))[:, None] + \
            self.linear(catalog).sum((1, 2))[None, :]
        return linear + fm_scores(user_v, item_v) + self.mlp.pair_scores(flat(user_v),
                                                                         flat(item_v))
