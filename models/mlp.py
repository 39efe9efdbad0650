import torch

from bench.layers import MLP, FeatureEmbedding, Fields, PointwiseRecommender, flat


class FeatureMLP(PointwiseRecommender):
    """A feed-forward network over the concatenated user and item field embeddings (ids and
    side features). Scores the catalog in bounded-memory item chunks."""

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: list[str] | None = None, item_fields: list[str] | None = None,
                 context_fields: list[str] | None = None,
                 embedding_dim: int = 16, hidden: list[int] = (128, 64), dropout: float = 0.2,
                 loss: str = "bce"):
        super().__init__(loss)
        self.fields = Fields(n_users, n_items, feature_sizes, item_feature_codes, user_fields,
                             item_fields, context_fields=context_fields)
        self.embed = FeatureEmbedding(self.fields.sizes, embedding_dim, std=0.05)
        self.mlp = MLP(len(self.fields.sizes) * embedding_dim, list(hidden), dropout)

    def row_logits(self, batch: dict) -> torch.Tensor:
        codes = self.fields.row(batch)
        return self.mlp(flat(self.embed(codes))).squeeze(-1)

    def score_all(self, batch: dict) -> torch.Tensor:
        user_v = flat(self.embed(self.fields.user(batch)))
        item_v = flat(self.embed(self.fields.catalog()))
        return self.mlp.pair_scores(user_v, item_v)
