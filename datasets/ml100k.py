"""MovieLens 100K (GroupLens): `u.data` (tab), `u.user` and `u.item` (`|`, latin-1).

`root` points at an extracted copy; without it the official archive is downloaded once into the
data cache (checksum-verified). Side tables: users (age bucket, gender, occupation, zip prefix),
items (genre list from the 19 flags, title tokens, release year).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bench.data import RawData
from bench.download import ArchiveDataset
from bench.readers import ERROR, read_delimited

URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
MD5 = "0e33842e24a9c977be4e0107933c0723"
SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
# ML-1M's age groups; ML-100K's exact ages are bucketed the same way so features line up.
AGE_BUCKETS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"),
               (56, "50-55"), (10**9, "56+"))
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_TOKEN = re.compile(r"[^\W_]+")  # letters and digits, accents included


class ML100K(ArchiveDataset):
    archive = "ml-100k"
    files = ("u.data", "u.user", "u.item")
    URL, MD5, SHA256 = URL, MD5, SHA256

    def load(self) -> RawData:
        root = self.location()
        inter = read_delimited(root / "u.data", "\t", ["user", "item", "rating", "timestamp"],
                               what="user, item, rating, timestamp")
        users = read_delimited(root / "u.user", "|", ["user", "age", "gender", "occupation",
                                                      "zip"],
                               what="user|age|gender|occupation|zip")
        flags = [f"g{i}" for i in range(len(GENRES))]
        items = read_delimited(root / "u.item", "|",
                               ["item", "title", "release_date", "video_release", "url", *flags],
                               what="item|title|release date|video release|url|19 genre flags")
        return RawData(inter, user_features(users, "age_years", self.zip_prefix),
                       item_features(items, flags, GENRES))


def user_features(users: pd.DataFrame, age: str, zip_prefix: int) -> pd.DataFrame:
    """age -> bucket (`age_years`: exact ages; `age_group`: ML-1M's group codes), zip -> prefix."""
    out = users.copy()
    num = pd.to_numeric(users["age"], errors="coerce")
    bad = num.isna() | (num < 0) | (num > 150)
    mark(out, bad, "column 'age' expected an age in years (0-150)")
    lows = np.array([b for b, _ in AGE_BUCKETS])
    names = np.array([n for _, n in AGE_BUCKETS], dtype=object)
    if age == "age_years":
        bucket = names[np.searchsorted(lows, num.fillna(0).to_numpy(), side="right")]
    else:  # ML-1M stores the bucket's lower bound (1, 18, 25, 35, 45, 50, 56)
        starts = {1: "under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49",
                  50: "50-55", 56: "56+"}
        bucket = num.map(starts).to_numpy(dtype=object)
        mark(out, ~bad & pd.isna(bucket), "column 'age' expected an ML-1M age group "
             f"{sorted(starts)}")
    out["age"] = np.where(bad, None, bucket)
    out["zip"] = users["zip"].str.strip().str[:zip_prefix].str.upper()
    return out


def item_features(items: pd.DataFrame, flag_columns: list[str] | None,
                  genre_names: tuple[str, ...] | None) -> pd.DataFrame:
    """title "Name (1995)" -> title tokens + year; 0/1 genre flags (or a genre list) -> genres."""
    out = items[[c for c in items.columns if c in ("item", "_line", ERROR)]].copy()
    titles = items["title"].fillna("").astype(str)
    out["genres"] = genre_lists(items, flag_columns, genre_names, out)
    out["title"] = [title_tokens(t) for t in titles]
    years = titles.str.extract(_YEAR, expand=False)
    out["year"] = years.where(years.notna(), None)
    return out


def genre_lists(items, flag_columns, genre_names, out) -> list[list[str]]:
    if flag_columns is None:  # ML-1M: "Action|Comedy"
        return [[g for g in str(v).split("|") if g] if isinstance(v, str) else []
                for v in items["genres"]]
    flags = items[flag_columns].to_numpy(dtype=object)
    bad = ~np.isin(flags, ["0", "1"]).all(axis=1)
    mark(out, pd.Series(bad, index=items.index), "genre flags expected 0 or 1")
    on = flags == "1"
    return [[genre_names[j] for j in np.flatnonzero(row)] for row in on]


def title_tokens(title: str) -> list[str]:
    return _TOKEN.findall(_YEAR.sub("", title).lower())


def mark(frame: pd.DataFrame, bad: pd.Series, why: str) -> None:
    """Flag rows as malformed unless an earlier problem already explains them."""
    rows = bad.to_numpy() & frame[ERROR].isna().to_numpy()
    frame.loc[rows, ERROR] = why
