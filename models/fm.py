import torch

from bench.layers import Fields, FMBlock, PointwiseRecommender


class FactorizationMachine(PointwiseRecommender):
    """Factorization machine over user and item fields (ids, categorical and multi-hot
    features): bias + linear terms + all pairwise field interactions, computed in O(kn).
    Catalog scores decompose into per-side terms and one matmul."""

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: list[str] | None = None, item_fields: list[str] | None = None,
                 context_fields: list[str] | None = None,
                 embedding_dim: int = 32,
                 loss: str = "bce"):
        super().__init__(loss)
        self.fields = Fields(n_users, n_items, feature_sizes, item_feature_codes, user_fields,
                             item_fields, context_fields=context_fields)
        self.fm = FMBlock(self.fields.sizes, embedding_dim)

    def row_logits(self, batch: dict) -> torch.Tensor:
        return self.fm.rows(self.fields.row(batch))[0]

    def score_all(self, batch: dict) -> torch.Tensor:
        return self.fm.catalog(self.fields.user(batch), self.fields.catalog())[0]
