"""The data spine: canonical tables -> clean -> filter -> id remap -> split -> tensors.

Every dataset plugin returns a `RawData` of canonical tables; everything after that is shared.
`load_split` runs clean (bench.cleaning) -> split through an on-disk cache of the result.
Time order is total: interactions are sorted by (timestamp, original row order) with a stable
sort, so "the last item" of a user is always defined.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.errors import BenchError

TIE_RULE = "stable(timestamp,row)"


@dataclass
class RawData:
    """Canonical tables. interactions: user, item, timestamp (epoch s) [, rating, behavior].
    users: user + categorical columns. items: item + categorical or list-valued columns."""

    interactions: pd.DataFrame
    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None


@dataclass
class Split:
    """Remapped, time-ordered interactions with a `fold` column in {train, valid, test}."""

    frame: pd.DataFrame
    n_users: int
    n_items: int
    user_ids: np.ndarray  # inner user index -> raw id
    item_ids: np.ndarray  # inner item index -> raw id
    protocol: dict
    users: pd.DataFrame | None = None  # indexed by inner user id
    items: pd.DataFrame | None = None  # indexed by inner item id
    cleaning: dict | None = None  # the cleaning report (bench.cleaning)
    sizes: dict = field(default_factory=dict)  # per-fold counts from check_split


def time_order(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by (user, timestamp, original row order) — the stated, total time order."""
    df = df.reset_index(drop=True)
    df["_row"] = np.arange(len(df))
    df = df.sort_values(["user", "timestamp", "_row"], kind="stable").drop(columns="_row")
    return df.reset_index(drop=True)


def filter_interactions(
    df: pd.DataFrame,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    implicit_threshold: float | None = None,
    behaviors: list[str] | None = None,
) -> pd.DataFrame:
    """Optional behaviour selection and rating threshold, then iterative k-core until both
    minimums hold."""
    if behaviors is not None:
        if "behavior" not in df:
            raise BenchError("filter.behaviors is set but the dataset has no behavior column")
        df = df[df["behavior"].isin(list(behaviors))]
    if implicit_threshold is not None:
        if "rating" not in df:
            raise BenchError("filter.implicit_threshold is set but the dataset has no rating")
        df = df[df["rating"] >= implicit_threshold]
    while True:
        n = len(df)
        if min_item_interactions > 0:
            df = df[df.groupby("item")["item"].transform("size") >= min_item_interactions]
        if min_user_interactions > 0:
            df = df[df.groupby("user")["user"].transform("size") >= min_user_interactions]
        if len(df) == n:
            return df.reset_index(drop=True)


def split_interactions(df: pd.DataFrame, kind: str, **opts) -> pd.Series:
    """Assign each (time-ordered) row to train/valid/test. Returns the fold column."""
    fold = np.full(len(df), "train", dtype=object)
    if kind == "loo":
        # Last interaction of each user -> test, second-to-last -> valid (users need >= 3).
        pos_from_end = df.groupby("user").cumcount(ascending=False).to_numpy()
        fold[pos_from_end == 0] = "test"
        fold[pos_from_end == 1] = "valid"
    elif kind == "ratio":
        ratios = np.asarray(opts.get("ratios", (0.7, 0.2, 0.1)), dtype=float)
        ratios = ratios / ratios.sum()
        if opts.get("order", "time") == "time":
            pos = df.groupby("user").cumcount().to_numpy()
        elif opts.get("order") == "random":  # a seeded random 7:2:1 per user, not by time
            keys = pd.Series(np.random.default_rng(opts.get("seed", 0)).random(len(df)),
                             index=df.index)
            pos = (keys.groupby(df["user"]).rank(method="first") - 1).to_numpy().astype(int)
        else:
            raise BenchError(f"split.order={opts.get('order')!r}; expected time or random")
        size = df.groupby("user")["user"].transform("size").to_numpy()
        frac = pos / size
        # The tolerance keeps exact boundaries exact: [0.7, 0.2, 0.1] sums to 0.9999999999999999.
        fold[frac >= ratios[0] - 1e-9] = "valid"
        fold[frac >= ratios[0] + ratios[1] - 1e-9] = "test"
    elif kind == "temporal":
        ts = df["timestamp"].to_numpy()
        valid_cut, test_cut = np.quantile(ts, [opts.get("valid_at", 0.8), opts.get("test_at", 0.9)])
        fold[ts >= valid_cut] = "valid"
        fold[ts >= test_cut] = "test"
    else:
        raise BenchError(f"split.kind={kind!r} is unknown; expected one of loo, ratio, temporal")
    return pd.Series(fold, index=df.index, name="fold")


def check_leak_free(df: pd.DataFrame) -> list[int]:
    """Every train interaction precedes every valid one, which precedes every test one (a global
    time cut). Returns the first valid and test timestamps; raises BenchError on a leak."""
    ts, fold = df["timestamp"].to_numpy(), df["fold"].to_numpy()
    firsts = {}
    last_before, earlier = None, None
    for name in ("train", "valid", "test"):
        times = ts[fold == name]
        firsts[name] = int(times.min()) if len(times) else None
        if not len(times):
            continue
        if last_before is not None and last_before >= times.min():
            raise BenchError(f"split=temporal leaks: a {earlier} interaction at {last_before} is "
                             f"not before the first {name} interaction at {times.min()}")
        last_before, earlier = int(times.max()), name
    return [firsts["valid"], firsts["test"]]


def prepare_split(raw: RawData, filter_cfg: dict, split_cfg: dict) -> Split:
    """Filter, remap ids to dense 0..n-1, split. Items unseen in train stay in the catalog."""
    required = {"user", "item", "timestamp"}
    missing = required - set(raw.interactions.columns)
    if missing:
        raise BenchError(f"interactions table lacks column(s) {sorted(missing)}; "
                         f"expected {sorted(required)}")
    df = filter_interactions(raw.interactions.copy(), **filter_cfg)
    if df.empty:
        raise BenchError("no interactions left after filtering; relax dataset.filter")
    df = time_order(df)
    user_codes, user_ids = pd.factorize(df["user"], sort=True)
    item_codes, item_ids = pd.factorize(df["item"], sort=True)
    df["user"], df["item"] = user_codes.astype(np.int64), item_codes.astype(np.int64)
    split_opts = {k: v for k, v in split_cfg.items() if k != "kind"}
    df["fold"] = split_interactions(df, split_cfg["kind"], **split_opts)
    protocol = {
        "split": split_cfg["kind"],
        **{f"split.{k}": v for k, v in split_opts.items()},
        "filter": dict(filter_cfg),
        "time_order": TIE_RULE,
        # loo/ratio cut each user's own timeline: train may hold interactions later than
        # another user's test item. Only the global cut is temporal, and it is checked.
        "temporal": split_cfg["kind"] == "temporal",
        "mask": "seen",  # train items masked at valid, train+valid items at test
        "candidates": "full",  # the evaluator may switch it to sampled<N>
    }
    if protocol["temporal"]:
        protocol["cut_times"] = check_leak_free(df)
    users = _side_table(raw.users, "user", user_ids)
    items = _side_table(raw.items, "item", item_ids)
    split = Split(df, len(user_ids), len(item_ids), np.asarray(user_ids), np.asarray(item_ids),
                  protocol, users, items)
    split.sizes = check_split(split, split_cfg["kind"],
                              chronological=split_opts.get("order", "time") == "time")
    return split


def _side_table(table: pd.DataFrame | None, key: str, ids) -> pd.DataFrame | None:
    """Reindex a side table by inner id; rows for ids absent from the table become missing."""
    if table is None:
        return None
    return table.drop_duplicates(key).set_index(key).reindex(ids).reset_index(drop=True)


FOLD_RANK = {"train": 0, "valid": 1, "test": 2}


def check_split(split: Split, kind: str, chronological: bool = True) -> dict:
    """Self-check a split and report its sizes. Per-user protocols (loo, ratio by time) must
    never put a user's train interaction after their own valid/test one; loo gives every user
    exactly one test and one valid interaction. Raises BenchError naming the first violation."""
    df = split.frame
    unknown = set(np.unique(df["fold"])) - set(FOLD_RANK)
    if unknown:
        raise BenchError(f"split={kind}: unknown fold(s) {sorted(unknown)}")
    users, rank = df["user"].to_numpy(), df["fold"].map(FOLD_RANK).to_numpy()
    if chronological and kind in ("loo", "ratio") and len(df) > 1:
        same_user = users[1:] == users[:-1]
        back = np.flatnonzero(same_user & (rank[1:] < rank[:-1]))
        if len(back):
            row = back[0] + 1
            raise BenchError(f"split={kind} leaks: user {split.user_ids[users[row]]} has a "
                             f"{df['fold'].iat[row]} interaction after a "
                             f"{df['fold'].iat[row - 1]} one")
    if kind == "loo":
        counts = pd.crosstab(df["user"], df["fold"]).reindex(columns=list(FOLD_RANK),
                                                             fill_value=0)
        wrong = counts[(counts["test"] != 1) | (counts["valid"] != 1)]
        if len(wrong):
            u = wrong.index[0]
            raise BenchError(f"split=loo: user {split.user_ids[u]} has {wrong.at[u, 'valid']} "
                             f"valid and {wrong.at[u, 'test']} test interactions; expected 1 "
                             "each (set dataset.filter.min_user_interactions >= 3)")
    sizes: dict = {}
    train = df[df["fold"] == "train"]
    train_users, train_items = set(train["user"]), set(train["item"])
    for name in FOLD_RANK:
        part = df[df["fold"] == name]
        sizes[name] = {"interactions": len(part), "users": int(part["user"].nunique()),
                       "items": int(part["item"].nunique())}
        if name != "train":
            sizes[name]["cold_users"] = int((~part["user"].drop_duplicates()
                                             .isin(train_users)).sum())
            sizes[name]["cold_items"] = int((~part["item"].drop_duplicates()
                                             .isin(train_items)).sum())
    return sizes


# Bump when the processed-data layout changes; the code of the pipeline is hashed in too.
CACHE_VERSION = 1
_PIPELINE_SOURCES = ("data.py", "cleaning.py", "readers.py")


def load_split(dataset, dataset_cfg: dict, split_cfg: dict, cache_root: Path | None = None,
               quiet: bool = False) -> Split:
    """load -> clean (with report) -> filter -> remap -> split, through an on-disk cache keyed by
    the dataset, cleaning, filter and split config, the raw files and the pipeline's code."""
    from bench.cleaning import clean, print_report

    folder = None
    if cache_root is not None:
        folder = Path(cache_root) / _cache_key(dataset, dataset_cfg, split_cfg)
        split = _read_cached(folder)
        if split is not None:
            if not quiet:
                print_report(split.cleaning)
            return split
    import inspect

    accepted = set(inspect.signature(filter_interactions).parameters) - {"df"}
    unknown = set(dataset_cfg.get("filter") or {}) - accepted
    if unknown:
        raise BenchError(f"dataset.filter.{sorted(unknown)[0]} is unknown; expected one of "
                         f"{sorted(accepted)}")
    raw = dataset.load()
    raw, report = clean(raw, dataset_cfg.get("clean"), dataset_cfg.get("name") or "dataset")
    if not quiet:
        print_report(report)
    split = prepare_split(raw, dict(dataset_cfg.get("filter") or {}), dict(split_cfg))
    split.cleaning = report
    split.protocol["cleaning"] = report["fingerprint"]
    if folder is not None:
        _write_cached(folder, split)
    return split


def _cache_key(dataset, dataset_cfg: dict, split_cfg: dict) -> str:
    code = hashlib.sha256()
    here = Path(__file__).resolve().parent
    module = __import__(type(dataset).__module__, fromlist=["_"])
    for path in [here / n for n in _PIPELINE_SOURCES] + [Path(module.__file__)]:
        code.update(path.read_bytes())
    files = getattr(dataset, "source_files", lambda: [])()
    stamp = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in map(Path, files)
             if p.is_file()]
    semantic = {k: v for k, v in dataset_cfg.items() if k not in ("description", "cache")}
    blob = json.dumps({"v": CACHE_VERSION, "code": code.hexdigest(), "dataset": semantic,
                       "split": split_cfg, "files": stamp}, sort_keys=True, default=str)
    return f"{dataset_cfg.get('name', 'dataset')}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _write_cached(folder: Path, split: Split) -> None:
    """Parquet tables + JSON metadata (no pickle), written in a temporary folder and renamed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        split.frame.to_parquet(tmp / "frame.parquet", index=False)
        pd.DataFrame({"id": split.user_ids}).to_parquet(tmp / "user_ids.parquet", index=False)
        pd.DataFrame({"id": split.item_ids}).to_parquet(tmp / "item_ids.parquet", index=False)
        for name in ("users", "items"):
            table = getattr(split, name)
            if table is not None:
                table.astype(object).where(table.notna(), None).to_parquet(
                    tmp / f"{name}.parquet", index=False)
        meta = {"n_users": split.n_users, "n_items": split.n_items, "protocol": split.protocol,
                "cleaning": split.cleaning, "sizes": split.sizes}
        (tmp / "meta.json").write_text(json.dumps(meta, default=_json_default))
        try:
            os.replace(tmp, folder)
        except OSError:  # another job cached the same data first: theirs is identical
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _read_cached(folder: Path) -> Split | None:
    if not (folder / "meta.json").is_file():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        side = {name: pd.read_parquet(folder / f"{name}.parquet")
                if (folder / f"{name}.parquet").is_file() else None
                for name in ("users", "items")}
        return Split(pd.read_parquet(folder / "frame.parquet"), meta["n_users"],
                     meta["n_items"],
                     pd.read_parquet(folder / "user_ids.parquet")["id"].to_numpy(),
                     pd.read_parquet(folder / "item_ids.parquet")["id"].to_numpy(),
                     meta["protocol"], side["users"], side["items"], meta["cleaning"],
                     meta["sizes"])
    except (OSError, ValueError, KeyError):
        return None  # unreadable cache entry: rebuild from the raw files


def fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@dataclass
class EvalStage:
    """Everything needed to rank for one stage (valid or test), as prebuilt user batches."""

    users: torch.Tensor  # inner user ids with at least one target
    batches: list[dict]

    # Iterable but not a list: Lightning reads a list as several dataloaders.
    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@dataclass
class Prepared:
    """Tensors every model and the evaluator consume. Item `n_items` is the padding index."""

    split: Split
    max_len: int
    train_users: torch.Tensor  # per train interaction, time-ordered within user
    train_items: torch.Tensor
    train_ratings: torch.Tensor | None
    # per train interaction, the user's previous train item (n_items = none): the request
    # context a feature model sees for that row, as the eval batch's `history[:, -1]` at test
    train_prev_items: torch.Tensor
    user_features: dict[str, torch.Tensor] = field(default_factory=dict)  # [n_users] codes
    item_features: dict[str, torch.Tensor] = field(default_factory=dict)  # [n_items(, m)] codes
    feature_sizes: dict[str, int] = field(default_factory=dict)
    stages: dict[str, EvalStage] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.split.n_users

    @property
    def n_items(self) -> int:
        return self.split.n_items

    def model_args(self) -> dict:
        """Data-derived constructor arguments offered to every model."""
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "max_len": self.max_len,
            "feature_sizes": dict(self.feature_sizes),
            "item_popularity": torch.bincount(self.train_items, minlength=self.n_items).float(),
            "item_feature_codes": dict(self.item_features),
            # [2, n_train] (user, item) pairs: for closed-form models (EASE, item-kNN).
            "train_interactions": torch.stack([self.train_users, self.train_items]),
        }

    def train_sequences(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every train interaction as a target exactly once: per user, windows of `max_len`
        inputs (left-padded) and their next-item targets, cut from the end of the sequence."""
        pad = self.n_items
        inputs, targets = [], []
        counts = torch.bincount(self.train_users, minlength=self.n_users).tolist()
        for seq in torch.split(self.train_items, counts):
            if len(seq) < 2:
                continue
            src, dst = seq[:-1], seq[1:]
            for end in range(len(src), 0, -self.max_len):
                start = max(0, end - self.max_len)
                inputs.append(_left_pad(src[start:end], self.max_len, pad))
                targets.append(_left_pad(dst[start:end], self.max_len, pad))
        return torch.stack(inputs), torch.stack(targets)


AUGMENTATIONS = ("crop", "mask", "noise")


def augment_sequences(inputs: torch.Tensor, targets: torch.Tensor, pad: int,
                      crop: float = 0.0, mask: float = 0.0, noise: float = 0.0) -> dict:
    """Train-only augmentation of left-padded next-item windows, drawn afresh per batch:
    `crop` - probability that a window keeps only a random-length suffix (inputs and targets);
    `mask` - probability that each input item is hidden (becomes padding);
    `noise` - probability that each input item is replaced by a random item.
    Targets are never altered except by cropping; evaluation batches never pass through here."""
    for name, p in (("crop", crop), ("mask", mask), ("noise", noise)):
        if not 0.0 <= p <= 1.0:
            raise BenchError(f"model.train.augment.{name}={p}; expected a probability in [0, 1]")
    inputs, targets = inputs.clone(), targets.clone()
    real = inputs != pad
    if crop > 0:
        lengths = real.sum(dim=1)
        keep = (torch.rand(len(inputs)) * lengths).long() + 1  # 1..length items kept
        chosen = torch.rand(len(inputs)) < crop
        first_kept = inputs.shape[1] - torch.where(chosen, keep, lengths)
        cut = torch.arange(inputs.shape[1]).unsqueeze(0) < first_kept.unsqueeze(1)
        inputs[cut], targets[cut] = pad, pad
        real = inputs != pad
    if noise > 0:
        swap = real & (torch.rand(inputs.shape) < noise)
        inputs[swap] = torch.randint(0, pad, (int(swap.sum()),))
    if mask > 0:
        inputs[real & (torch.rand(inputs.shape) < mask)] = pad
    return {"inputs": inputs, "targets": targets}


def _left_pad(seq: torch.Tensor, length: int, pad: int) -> torch.Tensor:
    out = torch.full((length,), pad, dtype=torch.long)
    if len(seq):
        out[-len(seq):] = seq[-length:]
    return out


def _encode_side(table: pd.DataFrame | None, n: int, prefix: str,
                 vocab_rows: np.ndarray | None = None):
    """Categorical columns -> codes (0 = unknown); list columns -> padded multi-hot code lists.
    A list column's vocabulary (title tokens, genres) comes from `vocab_rows` only (the items
    seen in train), so held-out items cannot shape it; their other tokens map to 0."""
    feats, sizes = {}, {}
    if table is None:
        return feats, sizes
    for col in table.columns:
        values = table[col]
        if values.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
            lists = values.map(lambda v: list(v) if isinstance(v, (list, tuple, np.ndarray))
                               else [])
            known = lists if vocab_rows is None else lists[vocab_rows]
            vocab = {tok: i + 1 for i, tok in enumerate(sorted({t for v in known for t in v},
                                                                key=str))}
            width = max(1, max(len(v) for v in lists))
            codes = torch.zeros((n, width), dtype=torch.long)
            for row, v in enumerate(lists):
                codes[row, : len(v)] = torch.tensor([vocab.get(t, 0) for t in v],
                                                    dtype=torch.long)
            feats[col], sizes[f"{prefix}.{col}"] = codes, len(vocab) + 1
        else:
            codes, uniques = pd.factorize(values, sort=True)
            feats[col] = torch.as_tensor(codes + 1, dtype=torch.long)  # -1 (missing) -> 0
            sizes[f"{prefix}.{col}"] = len(uniques) + 1
    return feats, sizes


def prepare(split: Split, max_len: int = 50, eval_batch_size: int = 1024,
            label_threshold: float | None = None) -> Prepared:
    """Tensors for training and evaluation. `label_threshold`: eval batches also carry their
    held-out rows labeled rating >= threshold (the CTR view); None or no ratings: they don't."""
    df = split.frame
    train = df[df["fold"] == "train"]
    if train.empty:
        raise BenchError("the split left no training interactions")
    ratings = torch.tensor(train["rating"].to_numpy(np.float32)) if "rating" in train else None
    prep = Prepared(
        split=split,
        max_len=max_len,
        train_users=torch.tensor(train["user"].to_numpy()),
        train_items=torch.tensor(train["item"].to_numpy()),
        train_ratings=ratings,
        train_prev_items=torch.tensor(train.groupby("user", sort=False)["item"].shift(1)
                                      .fillna(split.n_items).to_numpy(np.int64)),
    )
    uf, us = _encode_side(split.users, split.n_users, "user")
    in_train = np.zeros(split.n_items, dtype=bool)
    in_train[train["item"].to_numpy()] = True
    itf, its = _encode_side(split.items, split.n_items, "item", vocab_rows=in_train)
    prep.user_features, prep.item_features = uf, itf
    prep.feature_sizes = {**us, **its}
    threshold = label_threshold if "rating" in df else None
    prep.stages["valid"] = _eval_stage(prep, df, ("train",), "valid", eval_batch_size, threshold)
    prep.stages["test"] = _eval_stage(prep, df, ("train", "valid"), "test", eval_batch_size,
                                      threshold)
    return prep


def _eval_stage(prep: Prepared, df: pd.DataFrame, known: tuple[str, ...], target: str,
                batch_size: int, label_threshold: float | None = None) -> EvalStage:
    """Batches of users that have targets in `target`: their known history (time order, last
    `max_len`, left-padded), the known items to mask, and the target items. With a
    `label_threshold`, also every held-out row with a rating: `labeled` [2, n] (row, item)
    pairs, `labeled_rating` [n] and `labeled_label` [n] (1.0 where rating >= threshold)."""
    n_items, pad = prep.n_items, prep.n_items
    hist = df[df["fold"].isin(known)]
    tgt = df[df["fold"] == target]
    users = np.unique(tgt["user"].to_numpy())
    hist_by_user = _group_items(hist, prep.n_users)
    tgt_by_user = _group_items(tgt, prep.n_users)
    batches = []
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        history = torch.full((len(chunk), prep.max_len), pad, dtype=torch.long)
        seen_rows, seen_cols, tgt_rows, tgt_cols = [], [], [], []
        for row, u in enumerate(chunk):
            h = hist_by_user[u]
            if len(h):
                history[row, -min(len(h), prep.max_len):] = torch.tensor(h[-prep.max_len:])
            seen = np.unique(h)
            seen_rows.append(np.full(len(seen), row))
            seen_cols.append(seen)
            t = np.unique(tgt_by_user[u])
            tgt_rows.append(np.full(len(t), row))
            tgt_cols.append(t)
        batch = {
            "users": torch.as_tensor(chunk, dtype=torch.long),
            "history": history,
            "seen": torch.as_tensor(np.stack([np.concatenate(seen_rows),
                                              np.concatenate(seen_cols)]), dtype=torch.long),
            "targets": torch.as_tensor(np.stack([np.concatenate(tgt_rows),
                                                 np.concatenate(tgt_cols)]), dtype=torch.long),
        }
        for name, codes in prep.user_features.items():
            batch[f"user.{name}"] = codes[batch["users"]]
        if label_threshold is not None:
            batch.update(_labeled_rows(tgt, chunk, label_threshold))
        assert batch["history"].max() <= n_items
        batches.append(batch)
    return EvalStage(torch.as_tensor(users, dtype=torch.long), batches)


def _labeled_rows(held_out: pd.DataFrame, chunk: np.ndarray, threshold: float) -> dict:
    """The held-out rows (every one, repeats included) of the batch's users (`chunk`, sorted)
    that have a rating, as (batch row, item) pairs with their rating and binary label."""
    users, ratings = held_out["user"].to_numpy(), held_out["rating"].to_numpy(np.float64)
    keep = np.isin(users, chunk) & ~np.isnan(ratings)
    rows = np.searchsorted(chunk, users[keep])
    return {"labeled": torch.as_tensor(np.stack([rows, held_out["item"].to_numpy()[keep]]),
                                       dtype=torch.long),
            "labeled_rating": torch.as_tensor(ratings[keep], dtype=torch.float32),
            "labeled_label": torch.as_tensor(ratings[keep] >= threshold, dtype=torch.float32)}


def _group_items(frame: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Per inner user id, their items in time order (frame is already time-ordered)."""
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy()
    counts = np.bincount(users, minlength=n_users)
    return np.split(items, np.cumsum(counts)[:-1])
