"""Bring your own data: interactions (and optional users/items tables) from CSV, TSV or Parquet,
with the column names mapped in yaml. Timestamps may be epoch seconds or ISO-8601 text; typing,
repairs and anomaly checks are the shared cleaning step's job.

    python -m bench dataset=table dataset.interactions=logs.csv \\
        dataset.columns.user=customer_id dataset.columns.item=sku dataset.columns.timestamp=ts
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.data import RawData
from bench.errors import BenchError
from bench.readers import ERROR, LINE, read_table_file

CANONICAL = ("user", "item", "timestamp", "rating", "behavior")


class Table:
    def __init__(self, interactions: str | None = None, columns: dict | None = None,
                 users: str | None = None, user_key: str = "user",
                 user_features: list[str] | None = None, items: str | None = None,
                 item_key: str = "item", item_features: list[str] | None = None,
                 list_features: list[str] | None = None, list_sep: str = "|",
                 format: str | None = None, sep: str | None = None, encoding: str = "utf-8"):
        self.paths = {"interactions": interactions, "users": users, "items": items}
        self.columns = dict(columns or {})
        unknown = set(self.columns) - set(CANONICAL)
        if unknown:
            raise BenchError(f"dataset.columns has unknown key(s) {sorted(unknown)}; expected "
                             f"{list(CANONICAL)}")
        self.keys = {"users": user_key, "items": item_key}
        self.features = {"users": user_features, "items": item_features}
        self.list_features, self.list_sep = list(list_features or []), list_sep
        self.format, self.sep, self.encoding = format, sep, encoding

    def source_files(self) -> list[Path]:
        return [Path(p).expanduser() for p in self.paths.values() if p]

    def _read(self, name: str) -> pd.DataFrame:
        return read_table_file(Path(self.paths[name]).expanduser(), self.format, self.sep,
                               self.encoding)

    def load(self) -> RawData:
        if not self.paths["interactions"]:
            raise BenchError("dataset.interactions is required: the path of the interactions "
                             "table (csv, tsv or parquet)")
        frame = self._read("interactions")
        source = frame.attrs["source"]
        mapping = {canon: self.columns.get(canon, canon) for canon in CANONICAL}
        out = pd.DataFrame({LINE: frame[LINE], ERROR: frame[ERROR]})
        for canon, column in mapping.items():
            if column is None:
                continue
            if column in frame:
                out[canon] = frame[column]
            elif canon in ("user", "item", "timestamp"):  # rating/behavior: used when present
                raise BenchError(f"{source}: no column {column!r} for {canon}; the file has "
                                 f"{[c for c in frame.columns if c not in (LINE, ERROR)]} "
                                 f"(set dataset.columns.{canon})")
        if "timestamp" not in out:  # no time column: the file's row order is the time order
            out["timestamp"] = np.arange(1, len(out) + 1)
        out.attrs["source"] = source
        return RawData(out, self._side("users"), self._side("items"))

    def _list(self, value) -> list[str]:
        """"Rock|Indie" -> ["Rock", "Indie"]; a Parquet list stays a list."""
        if isinstance(value, (list, tuple, np.ndarray)):
            return [str(t) for t in value]
        if isinstance(value, str):
            return [t.strip() for t in value.split(self.list_sep) if t.strip()]
        return []

    def _side(self, name: str) -> pd.DataFrame | None:
        if not self.paths[name]:
            return None
        frame = self._read(name)
        key, canon = self.keys[name], name[:-1]
        if key not in frame:
            raise BenchError(f"{frame.attrs['source']}: no id column {key!r} (set "
                             f"dataset.{canon}_key)")
        wanted = self.features[name]
        if wanted is None:
            wanted = [c for c in frame.columns if c not in (key, LINE, ERROR)]
        missing = [c for c in wanted if c not in frame]
        if missing:
            raise BenchError(f"{frame.attrs['source']}: no feature column(s) {missing}")
        out = frame[[key, *wanted, LINE, ERROR]].rename(columns={key: canon})
        for col in wanted:
            out[col] = out[col].map(self._list if col in self.list_features else _category)
        out.attrs["source"] = frame.attrs["source"]
        return out


def _category(value) -> str | None:
    """A categorical feature value as text; lists (from Parquet) become one joined label."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "|".join(map(str, value))
    return None if pd.isna(value) else str(value)
