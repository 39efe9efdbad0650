import torch
from torch import nn

from bench.layers import FeatureEmbedding, Fields, PointwiseRecommender, fm_interaction, fm_scores


class FactorizationMachine(PointwiseRecommender):
    """Factorization machine over user and item fields (ids, categorical and multi-hot
    features): bias + linear terms + all pairwise field interactions, computed in O(kn).
    Catalog scores decompose into per-side terms and one matmul."""

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: list[str] | None = None, item_fields: list[str] | None = None,
                 embedding_dim: int = 32,
                 loss: str = "bce"):
        super().__init__(loss)
        self.fields = Fields(n_users, n_items, feature_sizes, item_feature_codes, user_fields,
                             item_fields)
        self.embed = FeatureEmbedding(self.fields.sizes, embedding_dim, std=0.05)
        self.linear = FeatureEmbedding(self.fields.sizes, 1, std=0.0)
        self.bias = nn.Parameter(torch.zeros(1))

    def row_logits(self, batch: dict) -> torch.Tensor:
        codes = {**self.fields.user(batch), **self.fields.item(batch)}
        return self.bias + self.linear(codes).sum((1, 2)) + fm_interaction(self.embed(codes))

    def score_all(self, batch: dict) -> torch.Tensor:
        user, catalog = self.fields.user(batch), self.fields.catalog()
        linear = (self.bias + self.linear(user).sum((1, 2)))[:, None] + \
            self.linear(catalog).sum((1, 2))[None, :]
        return linear + fm_scores(self.embed(user), self.embed(catalog))
