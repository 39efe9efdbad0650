import torch

from bench.layers import MLP, Fields, FMBlock, PointwiseRecommender, flat


class DeepFM(PointwiseRecommender):
    """DeepFM as composition: one shared field embedding feeds an FM interaction and a deep MLP
    whose logits are summed (with the linear terms). The FM part scores the catalog with one
    matmul; the MLP part scores it in bounded-memory item chunks."""

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: list[str] | None = None, item_fields: list[str] | None = None,
                 context_fields: list[str] | None = None,
                 embedding_dim: int = 16, hidden: list[int] = (128, 64), dropout: float = 0.2,
                 loss: str = "bce"):
        super().__init__(loss)
        self.fields = Fields(n_users, n_items, feature_sizes, item_feature_codes, user_fields,
                             item_fields, context_fields=context_fields)
        self.fm = FMBlock(self.fields.sizes, embedding_dim)
        self.mlp = MLP(len(self.fields.sizes) * embedding_dim, list(hidden), dropout)

    def row_logits(self, batch: dict) -> torch.Tensor:
        logits, vectors = self.fm.rows(self.fields.row(batch))
        return logits + self.mlp(flat(vectors)).squeeze(-1)

    def score_all(self, batch: dict) -> torch.Tensor:
        scores, user_v, item_v = self.fm.catalog(self.fields.user(batch), self.fields.catalog())
        return scores + self.mlp.pair_scores(flat(user_v), flat(item_v))
