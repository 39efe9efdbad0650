import torch
from torch import nn

from bench.layers import FeatureEmbedding, Fields, PointwiseRecommender, bag_matrix


class LogisticRegression(PointwiseRecommender):
    """Logistic regression over one-hot/multi-hot user and item fields plus cross features.

    Without crosses a linear model ranks every user's catalog the same way (the user terms are
    constant per user), so user-field x item-feature crosses (e.g. user id x genre, age x genre)
    carry the personalization. `crosses: auto` crosses every user-side field with every
    item-side field except user id x item id (pure memorization of the training pairs), so it
    learns e.g. per-occupation item popularity and per-user genre affinity. Catalog scores
    decompose: item terms + one matmul per cross.
    """

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: list[str] | None = None, item_fields: list[str] | None = None,
                 crosses: str | list[list[str]] = "auto",
                 loss: str = "bce"):
        super().__init__(loss)
        self.fields = Fields(n_users, n_items, feature_sizes, item_feature_codes, user_fields,
                             item_fields)
        sizes = self.fields.sizes
        if crosses == "auto":
            crosses = [[u, i] for u in self.fields.user_names for i in self.fields.item_names
                       if (u, i) != ("user", "item")]
        for pair in crosses:
            if len(pair) != 2 or pair[0] not in self.fields.user_names or \
                    pair[1] not in self.fields.item_names:
                raise ValueError(f"model.crosses entry {list(pair)} must be [user-side field, "
                                 f"item-side field] among {list(sizes)}")
        self.crosses = [tuple(p) for p in crosses]
        self.linear = FeatureEmbedding(sizes, 1, std=0.0)
        self.cross = FeatureEmbedding({f"{a}*{b}": sizes[a] * sizes[b] for a, b in self.crosses},
                                      1, std=0.0)
        self.bias = nn.Parameter(torch.zeros(1))

    def _cross_codes(self, user: dict, item: dict) -> dict[str, torch.Tensor]:
        out = {}
        for a, b in self.crosses:
            ua, ib = user[a], item[b]
            if ib.dim() == 2:
                ua = ua[:, None]
            out[f"{a}*{b}"] = torch.where(ib == 0, 0, ua * self.fields.sizes[b] + ib)
        return out

    def row_logits(self, batch: dict) -> torch.Tensor:
        user, item = self.fields.user(batch), self.fields.item(batch)
        logits = self.bias + self.linear({**user, **item}).sum((1, 2))
        if self.crosses:
            logits = logits + self.cross(self._cross_codes(user, item)).sum((1, 2))
        return logits

    def score_all(self, batch: dict) -> torch.Tensor:
        user, catalog = self.fields.user(batch), self.fields.catalog()
        scores = (self.bias + self.linear(user).sum((1, 2)))[:, None] + \
            self.linear(catalog).sum((1, 2))[None, :]
        for a, b in self.crosses:
            size_b = self.fields.sizes[b]
            table = self.cross.tables[f"{a}*{b}".replace(".", "__")].weight.view(-1, size_b)
            scores = scores + table[user[a]] @ bag_matrix(catalog[b], size_b).T
        return scores
