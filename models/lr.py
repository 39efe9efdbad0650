import torch
from torch import nn

from bench.layers import FeatureEmbedding, Fields, PointwiseRecommender, bag_matrix


class LogisticRegression(PointwiseRecommender):
    """Logistic regression over one-hot/multi-hot user, context and item fields plus crosses.

    Without crosses a linear model ranks every user's catalog the same way (the request terms
    are constant per request), so request-field x item-field crosses carry the personalization.
    `crosses: auto` crosses every request-side field (user id and features, context such as the
    user's last item) with every item-side field except user id x item id (pure memorization of
    the training pairs), so it learns e.g. per-occupation item popularity, per-user genre
    affinity and, from last_item x item, which item tends to follow which. Catalog scores
    decompose: item terms + one matmul per cross.
    """

    def __init__(self, n_users: int, n_items: int, feature_sizes: dict[str, int],
                 item_feature_codes: dict[str, torch.Tensor] | None = None,
                 user_fields: list[str] | None = None, item_fields: list[str] | None = None,
                 context_fields: list[str] | None = None,
                 crosses: str | list[list[str]] = "auto",
                 loss: str = "bce"):
        super().__init__(loss)
        self.fields = Fields(n_users, n_items, feature_sizes, item_feature_codes, user_fields,
                             item_fields, context_fields=context_fields)
        sizes = self.fields.sizes
        if crosses == "auto":
            crosses = [[u, i] for u in self.fields.user_names for i in self.fields.item_names
                       if (u, i) != ("user", "item")]
        for pair in crosses:
            if len(pair) != 2 or pair[0] not in self.fields.user_names or \
                    pair[1] not in self.fields.item_names:
                raise ValueError(f"model.crosses entry {list(pair)} must be [request-side field, "
                                 f"item-side field] among {list(sizes)}")
        self.crosses = [tuple(p) for p in crosses]
        self.linear = FeatureEmbedding(sizes, 1, std=0.0)
        self.cross = FeatureEmbedding({f"{a}*{b}": sizes[a] * sizes[b] for a, b in self.crosses},
                                      1, std=0.0)
        self.bias = nn.Parameter(torch.zeros(1))

    def _cross_codes(self, user: dict, item: dict) -> dict[str, torch.Tensor]:
        """Cross codes a * size_b + b. A 1-D request field's 0 (unknown) is a value of its own;
        in a bag it is padding, and pairs with padding are left out of the bag's mean."""
        out = {}
        for a, b in self.crosses:
            bag_a, bag_b = user[a].dim() == 2, item[b].dim() == 2
            ua = user[a][:, :, None] if bag_a else user[a][:, None, None]  # [N, m_a, 1]
            ib = item[b][:, None, :] if bag_b else item[b][:, None, None]  # [N, 1, m_b]
            empty = (ib == 0) | (ua == 0) if bag_a else ib == 0
            code = torch.where(empty, 0, ua * self.fields.sizes[b] + ib).flatten(1)
            out[f"{a}*{b}"] = code if bag_a or bag_b else code[:, 0]
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
            request = (bag_matrix(user[a], len(table)) @ table if user[a].dim() == 2
                       else table[user[a]])
            scores = scores + request @ bag_matrix(catalog[b], size_b).T
        return scores
