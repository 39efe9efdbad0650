"""Use a trained model: recommend for a user (or a what-if history) and see where the user's
real next item ranks.

    python -m bench.recommend run=<run directory or record id> user=<raw user id> k=10
    python -m bench.recommend run=<...> history=[12,7,31] k=10       a cold or what-if history
    python -m bench.recommend run=<...> user=42 json=true            JSON for scripts

The run's record gives its resolved config, checkpoint and data fingerprints. The data is
rebuilt through the job's own pipeline (`bench.run.prepare_data`), so ids map exactly as in
training; a fingerprint mismatch means the data changed and is refused. Scores come from the
model's `score_all` on an evaluation batch, ranked by the evaluator's `mask_seen` and `top_k`
(ties -> smaller item index), so `user=` reproduces the evaluator's test-time list exactly:
history = train + valid interactions, both masked; the held-out item is the user's test item.

`history=[...]` builds the same kind of batch from raw item ids (time order as given; masked
as seen). Sequence models read its order; set-based models read it as a set (EASE scores
from it, pop only masks it). Models that score through a learned user id or user features
(batch kinds `pairwise`, `features`, e.g. mf) have no vector for a new user: a history
without `user=` is refused with one line rather than folded in.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see STACK.md, threads

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf

from bench.data import Prepared, Split
from bench.errors import BenchError
from bench.evaluation import mask_seen, top_k
from bench.recommender import Recommender
from bench.records import load_records, records_dir

# Models whose scores depend on the user id / user features: a new history alone means nothing.
USER_ID_KINDS = ("pairwise", "features")
# Item side-table columns shown next to recommendations, in this order, when present.
ITEM_COLUMNS = ("title", "name", "category", "genres")
OPTIONS = ("run", "user", "history", "k", "json", "results_dir", "explain")


@dataclass
class LoadedRun:
    """A finished run, ready to score: its record, config, rebuilt data and trained model."""

    record: dict
    cfg: DictConfig
    split: Split
    prep: Prepared
    model: Recommender


def find_record(run: str, results_dir: str | Path = "results") -> dict:
    """The record of `run`: a record id (or unique prefix), a record .json file, or a run's
    output directory (its record is looked up in `results_dir` and above the directory)."""
    path = Path(run)
    if path.suffix == ".json" and path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    places = [Path(results_dir)]
    if path.is_dir():
        target = path.resolve()
        places += [p for p in target.parents if (p / "records").is_dir()]
        for place in places:
            for record in load_records(place):
                if record.get("output_dir") and Path(record["output_dir"]) == target:
                    return record
        raise BenchError(f"no run record names output_dir {target} (looked in "
                         f"{', '.join(str(records_dir(p)) for p in places)})")
    matches = [r for r in load_records(results_dir) if str(r.get("run_id", "")).startswith(run)]
    if len(matches) != 1:
        found = "no" if not matches else f"{len(matches)}"
        raise BenchError(f"run={run!r}: {found} records in {records_dir(results_dir)} match; "
                         "give a run directory or a run_id from the leaderboard")
    return matches[0]


def load_run(run: str, results_dir: str | Path = "results") -> LoadedRun:
    """Rebuild a finished run's data and model and load its best checkpoint."""
    from bench.run import build_model, data_fingerprints, prepare_data

    record = find_record(run, results_dir)
    run_id = record.get("run_id", run)
    if record.get("status") != "finished":
        raise BenchError(f"run {run_id} is {record.get('status')!r}, not finished: "
                         "nothing trained to recommend with")
    cfg = OmegaConf.create(record["config"])
    cfg.quiet = True  # the data pipeline's reports would get in the way of the table or JSON
    split, prep = prepare_data(cfg)
    now = data_fingerprints(split)
    for key, value in now.items():
        if record.get(key) != value:
            raise BenchError(f"run {run_id} was trained on {cfg.dataset.name} with {key} "
                             f"{record.get(key)}, but its config now yields {value}: the data "
                             "or its pipeline changed since training; retrain on this version")
    model = build_model(cfg.model, prep)
    ckpt = record.get("checkpoint")
    trainable = any(p.requires_grad for p in model.parameters())
    if ckpt is None and trainable:
        raise BenchError(f"run {run_id} has no checkpoint; only models with nothing to train "
                         "(e.g. pop) can be rebuilt without one")
    if ckpt is not None:
        if not Path(ckpt).is_file():
            raise BenchError(f"checkpoint {ckpt} of run {run_id} does not exist "
                             "(run directory moved or deleted?)")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        weights = {k.removeprefix("model."): v for k, v in state.items()
                   if k.startswith("model.")}
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise BenchError(f"checkpoint {ckpt} does not fit model {record['model']}: "
                             f"{first}") from exc
    model.eval()
    return LoadedRun(record, cfg, split, prep, model)


def _inner_ids(raw_ids: np.ndarray) -> dict[str, int]:
    # Raw ids are matched as text: the command line cannot tell 42 from "42".
    return {str(v): i for i, v in enumerate(raw_ids.tolist())}


def user_batch(loaded: LoadedRun, user) -> tuple[dict, list[int]]:
    """The evaluator's own test-time batch row for a raw user id, and its held-out items.
    A user without a test interaction gets all their interactions as history, nothing held out."""
    prep, split = loaded.prep, loaded.split
    lookup = _inner_ids(split.user_ids)
    if str(user) not in lookup:
        sample = ", ".join(str(u) for u in split.user_ids[:3].tolist())
        raise BenchError(f"user {user!r} is not in dataset {loaded.cfg.dataset.name} after "
                         f"filtering ({split.n_users} users, e.g. {sample})")
    inner = lookup[str(user)]
    for batch in prep.stages["test"].batches:
        rows = (batch["users"] == inner).nonzero().flatten()
        if len(rows):
            targets = batch["targets"]
            return _row(batch, int(rows[0])), targets[1][targets[0] == rows[0]].tolist()
    frame = split.frame
    items = frame.loc[frame["user"] == inner, "item"].tolist()
    return history_batch(prep, items, inner), []


def _row(batch: dict, row: int) -> dict:
    """One user's slice of an evaluation batch, with `seen`/`targets` pairs re-indexed to row 0."""
    out = {}
    for key, value in batch.items():
        if key in ("seen", "targets"):
            keep = value[:, value[0] == row]
            out[key] = torch.stack([torch.zeros_like(keep[0]), keep[1]])
        else:
            out[key] = value[row : row + 1]
    return out


def history_batch(prep: Prepared, items: list[int], user: int = -1) -> dict:
    """An evaluation batch for one history of inner item ids in time order, shaped like the
    evaluator's: last `max_len` items left-padded with n_items, every history item masked."""
    history = torch.full((1, prep.max_len), prep.n_items, dtype=torch.long)
    if items:
        recent = torch.tensor(items[-prep.max_len :], dtype=torch.long)
        history[0, -len(recent) :] = recent
    seen = torch.unique(torch.tensor(items, dtype=torch.long))
    batch = {
        "users": torch.tensor([user], dtype=torch.long),
        "history": history,
        "seen": torch.stack([torch.zeros_like(seen), seen]),
        "targets": torch.empty((2, 0), dtype=torch.long),
    }
    for name, codes in prep.user_features.items():  # a new user's features are unknown (0)
        batch[f"user.{name}"] = codes[[user]] if user >= 0 else torch.zeros_like(codes[:1])
    return batch


def _item_info(split: Split, inner: int) -> dict:
    out = {"item": split.item_ids[inner : inner + 1].tolist()[0]}  # a plain int or str
    if split.items is None:
        return out
    columns = [c for c in ITEM_COLUMNS if c in split.items] or list(split.items.columns[:2])
    for col in columns:
        value = split.items.at[inner, col]
        if isinstance(value, (list, tuple, np.ndarray)):
            value = (" " if col == "title" else ", ").join(str(v) for v in value)
        out[col] = "" if value is None or (isinstance(value, float) and np.isnan(value)) \
            else str(value)
    return out


def recommend(loaded: LoadedRun, user=None, history: list | None = None, k: int = 10) -> dict:
    """Top-k unseen items for a raw user id or a raw item history, as a JSON-ready dict:
    recommendations (rank, item, score, side columns), the history used, and the rank of each
    held-out item among all rankable items (None when it is masked as already seen)."""
    if (user is None) == (history is None):
        raise BenchError("give exactly one of user=<raw user id> or history=[raw item ids]")
    if k < 1:
        raise BenchError(f"k={k}; expected k >= 1")
    model, split, prep = loaded.model, loaded.split, loaded.prep
    if user is not None:
        batch, held_out = user_batch(loaded, user)
    else:
        if model.batch_kind in USER_ID_KINDS:
            raise BenchError(f"model {loaded.record['model']} scores through a learned user "
                             f"id (batch kind {model.batch_kind!r}): a new history has no "
                             "user vector; pass user=<raw id> or use a sequence model")
        lookup = _inner_ids(split.item_ids)
        unknown = [i for i in history if str(i) not in lookup]
        if unknown:
            raise BenchError(f"item(s) {unknown} are not in the catalog of dataset "
                             f"{loaded.cfg.dataset.name} ({split.n_items} items after filtering)")
        batch, held_out = history_batch(prep, [lookup[str(i)] for i in history]), []
    with torch.no_grad():
        scores = model.score_all(batch).detach().float().cpu()
    mask_seen(scores, batch["seen"])
    ranked = top_k(scores, k)[0]
    ranked = ranked[torch.isfinite(scores[0, ranked])].tolist()
    row = scores[0]
    used = batch["history"][0]
    used = used[used != prep.n_items].tolist()
    return {
        "run_id": loaded.record["run_id"],
        "model": loaded.record["model"],
        "dataset": loaded.record["dataset"],
        "user": user,
        "k": k,
        "sequence_model": model.batch_kind == "sequence",
        "history": [_item_info(split, i) for i in used],
        "n_masked": int(batch["seen"].shape[1]),
        "recommendations": [{"rank": r + 1, **_item_info(split, i), "score": float(row[i])}
                            for r, i in enumerate(ranked)],
        "held_out": [{**_item_info(split, t), "rank": _rank(row, t)} for t in held_out],
    }


def _rank(scores: torch.Tensor, item: int) -> int | None:
    """1-based position of `item` in the full (score desc, index asc) order; None if masked."""
    s = scores[item]
    if not torch.isfinite(s):
        return None
    ahead = (scores > s).sum() + (scores[:item] == s).sum()
    return int(ahead) + 1


def print_result(result: dict, explain: int = 5) -> None:
    """Rich tables: the history used (sequence models), the top-K, the held-out item's rank."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120, highlight=False)
    who = f"user {result['user']}" if result["user"] is not None else "the given history"
    console.print(f"{result['model']} on {result['dataset']} (run {result['run_id']}) for {who}; "
                  f"{result['n_masked']} seen items masked")
    rows = result["recommendations"]
    columns = [c for c in (rows or result["history"] or [{}])[0] if c not in ("rank", "score")]

    def table(title: str, first: str) -> Table:
        out = Table(title=title, title_justify="left")
        out.add_column(first, justify="right")
        for col in columns:
            out.add_column(col, justify="right" if col == "item" else "left")
        return out

    if result["sequence_model"] and explain > 0 and result["history"]:
        recent = result["history"][-explain:]
        used = table(f"history used: last {len(recent)} of {len(result['history'])}, "
                     "oldest first", "#")
        start = len(result["history"]) - len(recent) + 1
        for pos, h in enumerate(recent, start):
            used.add_row(str(pos), *(str(h.get(c, "")) for c in columns))
        console.print(used)
    top = table(f"top-{result['k']}", "rank")
    top.add_column("score", justify="right")
    held = {str(h["item"]) for h in result["held_out"]}
    for rec in rows:
        style = "bold green" if str(rec["item"]) in held else None
        top.add_row(str(rec["rank"]), *(str(rec.get(c, "")) for c in columns),
                    f"{rec['score']:.4f}", style=style)
    console.print(top)
    for h in result["held_out"]:
        where = (f"rank {h['rank']} of the unseen catalog" if h["rank"] is not None
                 else "masked: the user had already seen it")
        console.print(f"held-out test item {h['item']} ({h.get('title', '')}): {where}")


def parse_args(argv: list[str]) -> dict:
    """key=value arguments in Hydra's syntax (`history=[1,2,3]`, `json=true`)."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise BenchError(f"arguments are key=value ({', '.join(OPTIONS)}); got {bad[0]!r}")
    try:
        args = OmegaConf.to_container(OmegaConf.from_dotlist(argv))
    except Exception as exc:
        raise BenchError(f"cannot read arguments {argv}: {exc}") from exc
    unknown = sorted(set(args) - set(OPTIONS))
    if unknown:
        raise BenchError(f"unknown argument(s) {unknown}; expected {', '.join(OPTIONS)}")
    if "run" not in args:
        raise BenchError("run=<run directory or record id> is required")
    history = args.get("history")
    if history is not None and not isinstance(history, list):
        history = [history]
    return {"run": str(args["run"]), "user": args.get("user"), "history": history,
            "k": int(args.get("k", 10)), "json": bool(args.get("json", False)),
            "results_dir": args.get("results_dir", "results"),
            "explain": int(args.get("explain", 5))}


def main(argv: list[str] | None = None) -> None:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        loaded = load_run(args["run"], args["results_dir"])
        result = recommend(loaded, args["user"], args["history"], args["k"])
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if args["json"]:
        print(json.dumps(result, indent=1, default=str))
    else:
        print_result(result, args["explain"])


if __name__ == "__main__":
    main()
