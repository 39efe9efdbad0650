"""Compare two leaderboards or two sets of run records (two branches, two library versions,
before/after a change): per model and metric, the delta B - A and, where per-user vectors
exist, a paired test over users with Holm correction across every comparison made.

    python -m bench.compare results_before results_after
    python -m bench.compare old/leaderboard.csv new/leaderboard.csv --metrics ndcg@10,hit@10
    python -m bench.compare results results --a-sweep 2026-11-28_10-00 --b-sweep 2026-11-28_12-00

A and B are each a results folder (holding records/), a records/ folder, or a leaderboard CSV
(its rows' records are used when a records/ folder sits beside it; else deltas only). A model's
seeds are pooled: its per-user vectors are averaged over its runs before pairing users.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.leaderboard import KEYS, fmt, leaderboard_frame, select
from bench.records import atomic_write_text, load_per_user, load_records, records_dir

DEFAULT_METRICS = ("ndcg@10", "hit@10", "recall@10", "mrr@10")


@dataclass
class RunSet:
    """One side of a comparison: leaderboard rows, and the records behind them if any."""

    name: str
    frame: pd.DataFrame
    results_dir: Path | None = None
    records: dict[str, dict] = field(default_factory=dict)


def load_side(path: str | Path, sweep: str | None = None) -> RunSet:
    """A results folder, a records/ folder, or a leaderboard CSV -> RunSet."""
    path = Path(path)
    if path.is_file() and path.suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise BenchError(f"{path}: not a readable leaderboard CSV ({exc})") from exc
        missing = [c for c in (*KEYS, "seed") if c not in frame]
        if missing:
            raise BenchError(f"{path}: leaderboard CSV lacks columns {missing}; expected the "
                             "leaderboard.csv that `python -m bench.leaderboard` writes")
        results_dir = path.parent if records_dir(path.parent).is_dir() else None
        records = {}
        if results_dir is not None and "run_id" in frame:
            wanted = set(frame["run_id"].astype(str))
            records = {r["run_id"]: r for r in load_records(results_dir) if r["run_id"] in wanted}
        return RunSet(str(path), select(frame, sweep=sweep) if sweep else frame,
                      results_dir, records)
    if path.is_dir() and path.name == "records" and not records_dir(path).is_dir():
        path = path.parent
    if not records_dir(path).is_dir():
        raise BenchError(f"{path}: expected a results folder holding records/, a records/ "
                         "folder, or a leaderboard .csv")
    recs = load_records(path)
    frame = select(leaderboard_frame(recs), sweep=sweep)
    return RunSet(str(path), frame, path, {r["run_id"]: r for r in recs})


def _pooled_vector(side: RunSet, run_ids: list[str], metric: str
                   ) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """Per-user `metric` averaged over a model's runs (seeds), sorted by user id; None when
    any run lacks its vectors (e.g. a CSV without records)."""
    runs = [side.records.get(i) for i in run_ids]
    if side.results_dir is None or not runs or any(r is None or not r.get("per_user_file")
                                                   for r in runs):
        return None
    users_ref, total = None, None
    for record in runs:
        users, vectors = load_per_user(side.results_dir, record)
        if metric not in vectors:
            return None
        order = np.argsort(users, kind="stable")
        users, values = users[order], np.asarray(vectors[metric], float)[order]
        if users_ref is None:
            users_ref, total = users, values.copy()
        elif not np.array_equal(users, users_ref):
            raise BenchError(f"{side.name}: runs {run_ids} of one model evaluated different "
                             "users; are they on the same split?")
        else:
            total += values
    # Averaging identical seeds leaves ~1e-17 noise, which a signed-rank test would count as
    # real differences: metric values carry no information below 1e-12.
    return users_ref, np.round(total / len(runs), 12), runs[0]


def compare(a: RunSet, b: RunSet, metrics: tuple[str, ...] = DEFAULT_METRICS,
            test: str = "wilcoxon", alpha: float = 0.05) -> pd.DataFrame:
    """One row per (dataset, protocol, model, metric) present on both sides: means over runs,
    delta (B - A), the paired p-value over users and its Holm-adjusted value."""
    from bench import significance

    if test not in ("wilcoxon", "ttest"):
        raise BenchError(f"--test {test!r}; expected 'wilcoxon' or 'ttest'")
    p_value = significance.p_wilcoxon if test == "wilcoxon" else significance.p_ttest
    rows = []
    groups_b = {k: g for k, g in b.frame.groupby(list(KEYS), sort=True)}
    for keys, group_a in a.frame.groupby(list(KEYS), sort=True):
        group_b = groups_b.get(keys)
        if group_b is None:
            continue
        for metric in metrics:
            if metric not in group_a or metric not in group_b:
                continue
            row = dict(zip(KEYS, keys, strict=True))
            mean_a, mean_b = group_a[metric].mean(), group_b[metric].mean()
            row.update(metric=metric, runs_a=len(group_a), runs_b=len(group_b),
                       mean_a=mean_a, mean_b=mean_b, delta=mean_b - mean_a,
                       rel=(mean_b - mean_a) / mean_a if mean_a else math.nan,
                       n_users=0, p=math.nan, note="")
            pooled_a = _pooled_vector(a, group_a["run_id"].astype(str).tolist(), metric)
            pooled_b = _pooled_vector(b, group_b["run_id"].astype(str).tolist(), metric)
            if pooled_a is None or pooled_b is None:
                row["note"] = "no per-user vectors"
            else:
                try:
                    significance.comparable(pooled_a[2], pooled_b[2])
                    _, x, y = significance.align(pooled_a[0], pooled_a[1],
                                                 pooled_b[0], pooled_b[1])
                except BenchError as exc:
                    row["note"] = str(exc)
                else:
                    row.update(n_users=len(x), p=p_value(y, x))
            rows.append(row)
    columns = [*KEYS, "metric", "runs_a", "runs_b", "mean_a", "mean_b", "delta", "rel",
               "n_users", "p", "p_holm", "significant", "note"]
    out = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "significant")])
    tested = out["p"].notna()
    out["p_holm"] = math.nan
    if tested.any():
        out.loc[tested, "p_holm"] = significance.holm(out.loc[tested, "p"].to_numpy())
    out["significant"] = out["p_holm"] <= alpha
    return out[columns]


def mark(row) -> str:
    """▲ B significantly higher, ▼ significantly lower, · no significant difference."""
    if pd.isna(row["p_holm"]):
        return "n/a"
    if not row["significant"]:
        return "·"
    return "▲" if row["delta"] > 0 else "▼"


def _cells(row) -> list[str]:
    rel = "—" if pd.isna(row["rel"]) else f"{row['rel']:+.1%}"
    p = "—" if pd.isna(row["p"]) else f"{row['p']:.2g}"
    p_holm = "—" if pd.isna(row["p_holm"]) else f"{row['p_holm']:.2g}"
    return [row["model"], row["metric"], f"{fmt(row['mean_a'])} ({row['runs_a']})",
            f"{fmt(row['mean_b'])} ({row['runs_b']})", f"{row['delta']:+.4f}", rel, p, p_holm,
            mark(row)]


HEADER = ["model", "metric", "A (runs)", "B (runs)", "Δ B−A", "rel", "p", "p Holm", "sig"]


def to_markdown(table: pd.DataFrame, a: str, b: str, test: str, alpha: float) -> str:
    out = [f"# Compare\n\nA = `{a}`, B = `{b}`. Paired {test} test over users (per-user "
           f"vectors averaged over seeds), Holm-adjusted over all {int(table['p'].notna().sum())}"
           f" tests; ▲/▼ = B significantly higher/lower at α = {alpha}, · = not significant.\n"]
    for (dataset, protocol), block in table.groupby(["dataset", "protocol"], sort=True):
        out.append(f"## {dataset} — `{protocol}`\n")
        out.append("| " + " | ".join(HEADER) + " |")
        out.append("|" + "---|" * len(HEADER))
        out += ["| " + " | ".join(_cells(row)) + " |" for _, row in block.iterrows()]
        out.append("")
    return "\n".join(out)


def print_comparison(table: pd.DataFrame, a: str, b: str, test: str, alpha: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"A = {a}\nB = {b}")
    if table.empty:
        console.print("[yellow]nothing to compare: no (dataset, protocol, model) on both "
                      "sides[/]")
    for (dataset, protocol), block in table.groupby(["dataset", "protocol"], sort=True):
        view = Table(title=f"{dataset} — {protocol}", title_justify="left")
        for c in HEADER:
            view.add_column(c, justify="left" if c in ("model", "metric") else "right")
        for _, row in block.iterrows():
            style = None
            if row["significant"]:
                style = "bold green" if row["delta"] > 0 else "bold red"
            view.add_row(*_cells(row), style=style)
        console.print(view)
    notes = sorted(set(table["note"]) - {""})
    for note in notes:
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"paired {test} over users, Holm-adjusted over {int(table['p'].notna().sum())}"
                  f" tests; ▲/▼ B significantly higher/lower at α={alpha}; · not significant")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="before: results folder, records/ folder or leaderboard CSV")
    p.add_argument("b", help="after: results folder, records/ folder or leaderboard CSV")
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help="comma-separated test metrics")
    for name in ("dataset", "protocol", "model"):
        p.add_argument(f"--{name}", help=f"only these {name}s (comma-separated)")
    p.add_argument("--a-sweep", help="only A's runs of this sweep")
    p.add_argument("--b-sweep", help="only B's runs of this sweep")
    p.add_argument("--test", default="wilcoxon", choices=("wilcoxon", "ttest"))
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--csv", type=Path, help="write the comparison as CSV")
    p.add_argument("--md", type=Path, help="write the comparison as Markdown")
    args = p.parse_args(argv)
    try:
        a, b = load_side(args.a, args.a_sweep), load_side(args.b, args.b_sweep)
        for side in (a, b):
            side.frame = select(side.frame, args.dataset, args.protocol, args.model)
        table = compare(a, b, tuple(args.metrics.split(",")), args.test, args.alpha)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_comparison(table, a.name, b.name, args.test, args.alpha)
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
    if args.md:
        atomic_write_text(args.md, to_markdown(table, a.name, b.name, args.test, args.alpha))
    return 0


if __name__ == "__main__":
    sys.exit(main())
