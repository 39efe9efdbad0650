import torch
from torch import nn

from bench.layers import MLP, FeatureEmbedding, Fields, PointwiseRecommender, flat


class DeepCF(PointwiseRecommender):
    """Deep collaborative filtering, NeuMF-style with side features: a GMF branch (elementwise
    product of user and item id embeddings, weighted) plus an MLP branch over user/item id and
    side-feature embeddings; their logits are summed (NeuMF's fusion layer, split by branch).
    The GMF branch scores the catalog with one matmul, the MLP branch in item chunks."""

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: list[str] | None = None, item_fields: list[str] | None = None,
                 context_fields: list[str] | None = None,
                 gmf_dim: int = 32, embedding_dim: int = 16, hidden: list[int] = (128, 64),
                 dropout: float = 0.2,
                 loss: str = "bce"):
        super().__init__(loss)
        self.fields = Fields(n_users, n_items, feature_sizes, item_feature_codes, user_fields,
                             item_fields, context_fields=context_fields)
        self.gmf_user = nn.Embedding(n_users, gmf_dim)
        self.gmf_item = nn.Embedding(n_items, gmf_dim)
        self.gmf_weight = nn.Parameter(torch.ones(gmf_dim))
        for table in (self.gmf_user, self.gmf_item):
            nn.init.normal_(table.weight, std=0.1)
        self.embed = FeatureEmbedding(self.fields.sizes, embedding_dim, std=0.05)
        self.mlp = MLP(len(self.fields.sizes) * embedding_dim, list(hidden), dropout)

    def row_logits(self, batch: dict) -> torch.Tensor:
        gmf = (self.gmf_user(batch["users"]) * self.gmf_item(batch["items"])) @ self.gmf_weight
        codes = self.fields.row(batch)
        return gmf + self.mlp(flat(self.embed(codes))).squeeze(-1)

    def score_all(self, batch: dict) -> torch.Tensor:
        gmf = (self.gmf_user(batch["users"]) * self.gmf_weight) @ self.gmf_item.weight.T
        user_v = flat(self.embed(self.fields.user(batch)))
        item_v = flat(self.embed(self.fields.catalog()))
        return gmf + self.mlp.pair_scores(user_v, item_v)
