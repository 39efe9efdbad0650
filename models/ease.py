import torch

from bench.recommender import Recommender

# A dense item x item weight matrix: beyond this catalog size use an approximate model.
MAX_ITEMS = 20_000


class EASE(Recommender):
    """Embarrassingly shallow autoencoder (Steck 2019), solved exactly in closed form at
    construction: B = I - P / diag(P) with P = (X^T X + l2 I)^-1 and diag(B) = 0. A user's
    scores are their known-item row times B (one matmul)."""

    batch_kind = "none"

    def __init__(self, n_users: int, n_items: int, train_interactions: torch.Tensor,
                 l2: float = 500.0):
        super().__init__()
        if n_items > MAX_ITEMS:
            raise ValueError(f"n_items={n_items} exceeds {MAX_ITEMS}: EASE keeps a dense "
                             "item x item matrix")
        x = torch.zeros(n_users, n_items, dtype=torch.float64)
        x[train_interactions[0], train_interactions[1]] = 1.0
        gram = x.T @ x + l2 * torch.eye(n_items, dtype=torch.float64)
        precision = torch.linalg.inv(gram)
        weights = -precision / torch.diagonal(precision)
        weights.fill_diagonal_(0.0)
        self.register_buffer("weights", weights.float())

    def score_all(self, batch: dict) -> torch.Tensor:
        known = torch.zeros(len(batch["users"]), self.weights.shape[0],
                            device=self.weights.device)
        known[batch["seen"][0], batch["seen"][1]] = 1.0
        return known @ self.weights
