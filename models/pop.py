import torch

from bench.recommender import Recommender


class Popularity(Recommender):
    """Scores every item by its number of training interactions; the floor every model must beat."""

    batch_kind = "none"

    def __init__(self, n_items: int, item_popularity: torch.Tensor):
        super().__init__()
        self.register_buffer("counts", item_popularity.float().clone())

    def score_all(self, batch: dict) -> torch.Tensor:
        return self.counts.expand(len(batch["users"]), -1).clone()
