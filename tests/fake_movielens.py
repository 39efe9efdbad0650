"""Small files in the exact MovieLens formats (ML-100K, ML-1M), written by tests: the real
ML-1M is not on these machines and MovieLens files are never committed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

GENRES_1M = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
             "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
             "Sci-Fi", "Thriller", "War", "Western")


def ml100k_files(n_users: int = 12, n_items: int = 20, per_user: int = 6,
                 seed: int = 0) -> dict[str, bytes]:
    """u.data / u.user / u.item / u.genre contents (latin-1, as in ml-100k.zip)."""
    rng = np.random.default_rng(seed)
    data = []
    for u in range(1, n_users + 1):
        for i in rng.choice(np.arange(1, n_items + 1), per_user, replace=False):
            data.append(f"{u}\t{i}\t{rng.integers(1, 6)}\t{880_000_000 + rng.integers(10**6)}")
    occupations = ("student", "engineer", "writer", "other")
    users = [f"{u}|{rng.integers(10, 70)}|{'MF'[u % 2]}|{occupations[u % 4]}|{10000 + 7 * u}"
             for u in range(1, n_users + 1)]
    items = []
    for i in range(1, n_items + 1):
        flags = ["0"] * 19
        flags[1 + i % 18] = "1"
        title = f"Caf\xe9 Story {i} (19{70 + i % 30})" if i % 5 == 0 else f"Movie {i} (1995)"
        items.append(f"{i}|{title}|01-Jan-1995||http://example.org/{i}|" + "|".join(flags))
    genre = [f"{g}|{k}" for k, g in enumerate(("unknown", *GENRES_1M))]
    enc = "latin-1"
    return {"u.data": ("\n".join(data) + "\n").encode(enc),
            "u.user": ("\n".join(users) + "\n").encode(enc),
            "u.item": ("\n".join(items) + "\n").encode(enc),
            "u.genre": ("\n".join(genre) + "\n\n").encode(enc)}


def ml1m_files(n_users: int = 12, n_items: int = 20, per_user: int = 6,
               seed: int = 0) -> dict[str, bytes]:
    """ratings.dat / users.dat / movies.dat contents (`::`, latin-1, as in ml-1m.zip)."""
    rng = np.random.default_rng(seed)
    ratings = []
    for u in range(1, n_users + 1):
        for i in rng.choice(np.arange(1, n_items + 1), per_user, replace=False):
            ratings.append(f"{u}::{i}::{rng.integers(1, 6)}::{978_300_000 + rng.integers(10**6)}")
    ages = (1, 18, 25, 35, 45, 50, 56)
    users = [f"{u}::{'FM'[u % 2]}::{ages[u % 7]}::{u % 21}::{48000 + u}-{u:04d}"
             for u in range(1, n_users + 1)]
    movies = []
    for i in range(1, n_items + 1):
        genres = "|".join(sorted({GENRES_1M[i % 18], GENRES_1M[(3 * i) % 18]}))
        title = f"Am\xe9lie: Part {i} (2001)" if i % 4 == 0 else f"Film {i}, The (1999)"
        movies.append(f"{i}::{title}::{genres}")
    enc = "latin-1"
    return {"ratings.dat": ("\n".join(ratings) + "\n").encode(enc),
            "users.dat": ("\n".join(users) + "\n").encode(enc),
            "movies.dat": ("\n".join(movies) + "\n").encode(enc)}


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buffer.getvalue()
