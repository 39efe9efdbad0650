"""Leaderboard views, rebuilt from run records (the records are the truth).

    python -m bench.leaderboard [results_dir]     print and rewrite the views
"""

from __future__ import annotations

import fcntl
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bench.records import atomic_write_text, load_records

SHOWN = ("ndcg@10", "hit@10", "recall@10", "mrr@10", "map@10", "precision@10", "coverage@10")


def leaderboard_frame(records: list[dict]) -> pd.DataFrame:
    """One row per finished run, best first within each (dataset, protocol)."""
    rows = []
    for r in records:
        if r.get("status") != "finished":
            continue
        rows.append({
            "dataset": r["dataset"], "protocol": r["protocol_tag"], "model": r["model"],
            "seed": r["seed"], **r["metrics"]["test"],
            "best_epoch": r.get("best_epoch"), "train_s": r["times"].get("train_s"),
            "run_id": r["run_id"], "config_hash": r["config_hash"],
            "commit": (r.get("git") or {}).get("commit"),
        })
    if not rows:
        return pd.DataFrame(columns=["dataset", "protocol", "model", "seed", *SHOWN, "run_id"])
    frame = pd.DataFrame(rows)
    return frame.sort_values(["dataset", "protocol", "ndcg@10", "run_id"],
                             ascending=[True, True, False, True]).reset_index(drop=True)


@contextmanager
def _locked(results_dir: Path):
    """Serialize view rebuilds so concurrent jobs never interleave their writes."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / ".leaderboard.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def to_markdown(frame: pd.DataFrame) -> str:
    cols = ["model", "seed", *[c for c in SHOWN if c in frame], "best_epoch", "train_s", "run_id"]
    out = []
    for (dataset, protocol), group in frame.groupby(["dataset", "protocol"], sort=True):
        out.append(f"## {dataset} — `{protocol}`\n")
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        for _, row in group.iterrows():
            out.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
        out.append("")
    return "\n".join(out)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def rebuild(results_dir: str | Path) -> pd.DataFrame:
    """Rebuild leaderboard.csv and leaderboard.md from every record under results_dir."""
    results_dir = Path(results_dir)
    with _locked(results_dir):
        frame = leaderboard_frame(load_records(results_dir))
        atomic_write_text(results_dir / "leaderboard.csv", frame.to_csv(index=False))
        atomic_write_text(results_dir / "leaderboard.md", to_markdown(frame))
    return frame


def print_leaderboard(frame: pd.DataFrame, highlight: set[str] | None = None,
                      failed: list[dict] | None = None) -> None:
    """Rich tables, one per (dataset, protocol): rows are only ranked against their peers."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    if frame.empty:
        console.print("[yellow]leaderboard is empty: no finished runs yet[/]")
    for (dataset, protocol), group in frame.groupby(["dataset", "protocol"], sort=True):
        table = Table(title=f"{dataset} — {protocol}", title_justify="left")
        cols = ["model", "seed", *[c for c in SHOWN if c in group], "train_s"]
        for c in cols:
            table.add_column(c, justify="left" if c in ("model", "run_id") else "right")
        for _, row in group.iterrows():
            style = "bold green" if highlight and row["run_id"] in highlight else None
            table.add_row(*(_fmt(row[c]) for c in cols), style=style)
        console.print(table)
    for r in failed or []:
        console.print(f"[red]failed[/] {r['model']} on {r['dataset']} (seed {r['seed']}): "
                      f"{r.get('error')}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    results_dir = Path(argv[0] if argv else "results")
    frame = rebuild(results_dir)
    print_leaderboard(frame)
    print(f"views written: {results_dir / 'leaderboard.csv'}, {results_dir / 'leaderboard.md'}")


if __name__ == "__main__":
    main()
