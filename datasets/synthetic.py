"""The embedded default dataset: a seeded generator of a realistic interaction log.

What makes it realistic enough to rank models honestly:
- power-law item popularity (Zipf), so `pop` is a real baseline;
- user taste clusters over item categories, so collaborative models beat `pop`;
- sequential dependence (each item has a few likely successors), so sequence models beat
  collaborative ones;
- side tables: user attributes correlated with taste, item categories/genres and title tokens;
- timestamps with per-user sessions and some same-second ties, ratings and behaviour types.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.data import RawData

_WORDS = ("night", "city", "love", "war", "star", "river", "ghost", "king", "road", "dream",
          "summer", "dark", "last", "secret", "blue", "story", "house", "fire", "game", "heart")
_OCCUPATIONS = ("student", "engineer", "artist", "doctor", "writer", "lawyer", "retired", "other")


class Synthetic:
    def __init__(self, n_users: int = 1000, n_items: int = 500, n_clusters: int = 8,
                 mean_length: int = 40, min_length: int = 5, max_length: int = 400,
                 sequential_strength: float = 0.5, popularity_exponent: float = 1.0,
                 seed: int = 0):
        if n_users < 1 or n_items < 2 or n_clusters < 1 or min_length < 3:
            raise ValueError("synthetic: need n_users >= 1, n_items >= 2, n_clusters >= 1, "
                             "min_length >= 3")
        self.n_users, self.n_items, self.n_clusters = n_users, n_items, n_clusters
        self.mean_length, self.min_length, self.max_length = mean_length, min_length, max_length
        self.sequential_strength = sequential_strength
        self.popularity_exponent = popularity_exponent
        self.seed = seed

    def load(self) -> RawData:
        rng = np.random.default_rng(self.seed)
        n_items, n_clusters = self.n_items, self.n_clusters
        item_cluster = rng.integers(0, n_clusters, n_items)
        popularity = 1.0 / np.arange(1, n_items + 1) ** self.popularity_exponent
        popularity = popularity[rng.permutation(n_items)]
        successors = self._successors(rng, item_cluster, popularity)

        user_cluster = rng.integers(0, n_clusters, self.n_users)
        lengths = np.clip(
            self.min_length + rng.geometric(1.0 / max(self.mean_length - self.min_length, 1),
                                            self.n_users),
            self.min_length, min(self.max_length, n_items - 1))
        rows_user, rows_item = [], []
        for u in range(self.n_users):
            taste = np.full(n_clusters, 0.3 / max(n_clusters - 1, 1))
            taste[user_cluster[u]] = 0.7 if n_clusters > 1 else 1.0
            weights = taste[item_cluster] * popularity
            seq = self._sequence(rng, lengths[u], weights / weights.sum(), successors)
            rows_user.append(np.full(len(seq), u + 1))
            rows_item.append(np.asarray(seq) + 1)
        users = np.concatenate(rows_user)
        items = np.concatenate(rows_item)
        timestamps = self._timestamps(rng, lengths)
        preferred = item_cluster[items - 1] == user_cluster[users - 1]
        rating = np.clip(np.rint(rng.normal(np.where(preferred, 4.0, 3.0), 0.9)), 1, 5)
        behavior = rng.choice(["click", "cart", "buy"], len(items), p=[0.8, 0.15, 0.05])
        interactions = pd.DataFrame({"user": users, "item": items, "timestamp": timestamps,
                                     "rating": rating.astype(np.float32), "behavior": behavior})
        return RawData(interactions, self._users(rng, user_cluster), self._items(rng, item_cluster))

    def _successors(self, rng, item_cluster, popularity, n_next: int = 3) -> np.ndarray:
        """Each item's few likely next items, drawn from its own cluster by popularity."""
        out = np.empty((self.n_items, n_next), dtype=np.int64)
        for c in range(self.n_clusters):
            members = np.flatnonzero(item_cluster == c)
            if len(members) == 0:
                continue
            p = popularity[members] / popularity[members].sum()
            for i in members:
                out[i] = rng.choice(members, n_next, p=p)
        return out

    def _sequence(self, rng, length, weights, successors) -> list[int]:
        seen: set[int] = set()
        seq: list[int] = []
        draws = iter(rng.choice(self.n_items, 4 * length + 8, p=weights))
        follow = rng.random(length) < self.sequential_strength
        pick = rng.choice(successors.shape[1], length, p=[0.6, 0.3, 0.1])
        for step in range(length):
            item = -1
            if seq and follow[step]:
                candidate = int(successors[seq[-1], pick[step]])
                item = candidate if candidate not in seen else -1
            while item < 0:
                candidate = int(next(draws, rng.integers(self.n_items)))
                item = candidate if candidate not in seen else -1
            seen.add(item)
            seq.append(item)
        return seq

    def _timestamps(self, rng, lengths) -> np.ndarray:
        """Sessions of quick consecutive events separated by days; ~3% same-second ties."""
        start = 1_600_000_000 + rng.integers(0, 200 * 86_400, len(lengths))
        out = []
        for s, n in zip(start, lengths, strict=True):
            gaps = rng.exponential(600, n).astype(np.int64)
            gaps[rng.random(n) < 0.1] += rng.integers(86_400, 10 * 86_400)
            gaps[rng.random(n) < 0.03] = 0
            gaps[0] = 0
            out.append(s + np.cumsum(gaps))
        return np.concatenate(out)

    def _users(self, rng, user_cluster) -> pd.DataFrame:
        n = self.n_users
        occupation = np.where(rng.random(n) < 0.5,
                              user_cluster % len(_OCCUPATIONS),
                              rng.integers(0, len(_OCCUPATIONS), n))
        return pd.DataFrame({
            "user": np.arange(1, n + 1),
            "age": rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"], n),
            "gender": rng.choice(["F", "M"], n),
            "occupation": np.asarray(_OCCUPATIONS)[occupation],
            "zip": [f"{z:02d}" for z in rng.integers(0, 100, n)],
        })

    def _items(self, rng, item_cluster) -> pd.DataFrame:
        genres, titles = [], []
        for c in item_cluster:
            extra = int(rng.integers(self.n_clusters))
            genres.append(sorted({f"genre{c:02d}", f"genre{extra:02d}"}))
            own = _WORDS[c % len(_WORDS)]
            words = rng.choice(_WORDS, int(rng.integers(1, 4)))
            titles.append([own, *words])
        return pd.DataFrame({
            "item": np.arange(1, self.n_items + 1),
            "category": [f"cat{c:02d}" for c in item_cluster],
            "genres": genres,
            "title": titles,
        })
