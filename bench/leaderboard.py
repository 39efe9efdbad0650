"""Leaderboard views, rebuilt from run records (the records are the truth).

    python -m bench.leaderboard [results_dir]                       print, rewrite the views
    python -m bench.leaderboard --model mf,lstm --sort hit@10 --group
    python -m bench.leaderboard --best --csv best.csv --md best.md --html report.html

Rows are only ranked against rows of the same dataset and protocol tag. Grouping by model
gives mean ± 95% confidence interval (Student t) over seeds. Failed runs are listed apart.
"""

from __future__ import annotations

import argparse
import fcntl
import math
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bench.records import atomic_write_text, load_records, prune_orphans, unresolved_failures

SHOWN = ("ndcg@10", "hit@10", "recall@10", "mrr@10", "map@10", "precision@10", "coverage@10")
KEYS = ("dataset", "protocol", "model")
# The CTR view of pointwise models (bench.ctr); other models leave these cells empty.
CTR_METRICS = ("auc", "logloss", "rmse", "mae")
# Where a row came from: enough to rerun it or to explain why two rows differ.
PROVENANCE = ("best_epoch", "epochs", "n_parameters", "data_s", "train_s", "eval_s", "total_s",
              "threads", "cpu", "gpu", "versions", "commit", "dirty", "config_hash",
              "dataset_fingerprint", "split_fingerprint", "sweep", "tuning_budget", "run_id")
# Too wide for a terminal: versions, cpu, sweep (they are in the CSV and HTML).
TERMINAL_PROVENANCE = ("epochs", "best_epoch", "n_parameters", "data_s", "train_s", "eval_s",
                       "threads", "gpu", "commit", "dirty", "config_hash", "dataset_fingerprint",
                       "split_fingerprint", "tuning_budget")
FAILED_COLUMNS = ("dataset", "protocol", "model", "seed", "phase", "error", "sweep", "run_id")
VERSION_SHORT = {"pytorch-lightning": "pl", "hydra-core": "hydra"}


def _versions(versions: dict | None) -> str:
    return " ".join(f"{VERSION_SHORT.get(k, k)}={v}" for k, v in sorted((versions or {}).items())
                    if v and k != "recbench")


def leaderboard_frame(records: list[dict]) -> pd.DataFrame:
    """One row per finished run: test metrics, then provenance; best first per protocol."""
    rows = []
    for r in records:
        if r.get("status") != "finished":
            continue
        times, hw, git = r.get("times") or {}, r.get("hardware") or {}, r.get("git") or {}
        rows.append({
            "dataset": r["dataset"], "protocol": r["protocol_tag"], "model": r["model"],
            "seed": r["seed"], **r["metrics"]["test"],
            "best_epoch": r.get("best_epoch"), "epochs": r.get("epochs"),
            "n_parameters": r.get("n_parameters"),
            **{k: times.get(k) for k in ("data_s", "train_s", "eval_s", "total_s")},
            "threads": hw.get("torch_threads"), "cpu": hw.get("cpu"), "gpu": hw.get("gpu"),
            "versions": _versions(r.get("versions")),
            "commit": (git.get("commit") or "")[:12] or None, "dirty": git.get("dirty"),
            "config_hash": r["config_hash"],
            "dataset_fingerprint": r.get("dataset_fingerprint"),
            "split_fingerprint": r.get("split_fingerprint"),
            "sweep": r.get("sweep"), "tuning_budget": (r.get("tuning") or {}).get("trials"),
            "run_id": r["run_id"],
        })
    if not rows:
        return pd.DataFrame(columns=["dataset", "protocol", "model", "seed", *SHOWN, *PROVENANCE])
    frame = pd.DataFrame(rows)
    counts = ["best_epoch", "epochs", "n_parameters", "threads"]
    frame[counts] = frame[counts].astype("Int64")  # whole numbers, empty for pop
    return sort_rows(frame, "ndcg@10")


def failures_frame(records: list[dict]) -> pd.DataFrame:
    """Failed runs not superseded by a finished rerun of the same job (config hash, seed)."""
    rows = [{"dataset": r["dataset"], "protocol": r.get("protocol_tag"), "model": r["model"],
             "seed": r["seed"], "phase": r.get("phase"), "error": r.get("error"),
             "sweep": r.get("sweep"), "run_id": r["run_id"]}
            for r in unresolved_failures(records)]
    return pd.DataFrame(rows, columns=list(FAILED_COLUMNS))


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Test metrics present, the usual ones first."""
    extra = sorted(c for c in frame.columns if "@" in c and c not in SHOWN)
    extra += [c for c in CTR_METRICS if c in frame]  # pointwise models only; empty elsewhere
    return [c for c in SHOWN if c in frame] + extra


def select(frame: pd.DataFrame, dataset: str | None = None, protocol: str | None = None,
           model: str | None = None, sweep: str | None = None) -> pd.DataFrame:
    """Rows matching every given filter; each filter is one value or a comma-separated list."""
    for column, wanted in (("dataset", dataset), ("protocol", protocol), ("model", model),
                           ("sweep", sweep)):
        if wanted:
            frame = frame[frame[column].astype(str).isin(wanted.split(","))]
    return frame.reset_index(drop=True)


def sort_rows(frame: pd.DataFrame, metric: str, ascending: bool = False) -> pd.DataFrame:
    """Sorted by `metric` within each (dataset, protocol); ties in a stable order."""
    if metric not in frame:
        from bench.errors import BenchError

        raise BenchError(f"--sort {metric!r}: not a column; expected one of "
                         f"{metric_columns(frame) or list(SHOWN)}")
    tie = "run_id" if "run_id" in frame else "model"
    return frame.sort_values(["dataset", "protocol", metric, tie],
                             ascending=[True, True, ascending, True]).reset_index(drop=True)


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t interval (NaN half-width for one value)."""
    from scipy import stats

    values = [float(v) for v in values if v is not None and not pd.isna(v)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def aggregate(frame: pd.DataFrame, metric: str = "ndcg@10",
              ascending: bool = False) -> pd.DataFrame:
    """One row per (dataset, protocol, model): seeds, then `<m>` mean and `<m>_ci95` per
    metric, mean train_s; sorted by the mean of `metric`."""
    rows = []
    metrics = metric_columns(frame)
    for keys, group in frame.groupby(list(KEYS), sort=True):
        row = dict(zip(KEYS, keys, strict=True))
        row["seeds"] = group["seed"].nunique()
        row["runs"] = len(group)
        for m in metrics:
            row[m], row[f"{m}_ci95"] = mean_ci95(group[m])
        row["train_s"] = group["train_s"].mean()
        row["n_parameters"] = group["n_parameters"].iloc[0]
        rows.append(row)
    columns = [*KEYS, "seeds", "runs", *[x for m in metrics for x in (m, f"{m}_ci95")],
               "train_s", "n_parameters"]
    out = pd.DataFrame(rows, columns=columns)
    return sort_rows(out, metric, ascending) if not out.empty else out


def best_per_model(frame: pd.DataFrame, metric: str = "ndcg@10",
                   ascending: bool = False) -> pd.DataFrame:
    """The single best run of each model within each (dataset, protocol)."""
    ordered = sort_rows(frame, metric, ascending)
    return sort_rows(ordered.drop_duplicates(list(KEYS), keep="first"), metric, ascending)


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


def fmt(value, ci: float | None = None) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        text = f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
        if ci is not None:
            text += " ± —" if math.isnan(ci) else f" ± {ci:.4f}"
        return text
    return "" if value is None else str(value)


def _table_cells(frame: pd.DataFrame, grouped: bool, metrics: list[str]) -> tuple[list, list]:
    """Header and formatted cells of one (dataset, protocol) block, runs or model groups."""
    if grouped:
        cols = ["model", "seeds", *metrics, "train_s"]
        cells = [[fmt(row[c], row[f"{c}_ci95"]) if c in metrics else fmt(row[c]) for c in cols]
                 for _, row in frame.iterrows()]
    else:
        cols = ["model", "seed", *metrics, "best_epoch", "train_s", "run_id"]
        cells = [[fmt(row[c]) for c in cols] for _, row in frame.iterrows()]
    return cols, cells


def to_markdown(frame: pd.DataFrame, failed: pd.DataFrame | None = None,
                grouped: bool = True) -> str:
    """Per (dataset, protocol): one row per model with mean ± 95% CI over seeds (or one row
    per run with grouped=False), then the failed runs."""
    metrics = [m for m in SHOWN if m in frame]
    table = aggregate(frame) if grouped and not frame.empty else frame
    out = []
    for (dataset, protocol), block in table.groupby(["dataset", "protocol"], sort=True):
        out.append(f"## {dataset} — `{protocol}`\n")
        if grouped:
            out.append("Mean ± 95% CI over seeds (Student t; — with one seed).\n")
        cols, cells = _table_cells(block, grouped, metrics)
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        out += ["| " + " | ".join(row) + " |" for row in cells]
        out.append("")
    if failed is not None and not failed.empty:
        out.append("## Failed runs\n")
        out.append("| " + " | ".join(FAILED_COLUMNS) + " |")
        out.append("|" + "---|" * len(FAILED_COLUMNS))
        for _, row in failed.iterrows():
            out.append("| " + " | ".join(fmt(row[c]).replace("|", "\\|")
                                         for c in FAILED_COLUMNS) + " |")
        out.append("")
    return "\n".join(out)


def rebuild(results_dir: str | Path) -> pd.DataFrame:
    """Rebuild leaderboard.csv (one row per run, with provenance), leaderboard.md (per model,
    mean ± CI over seeds) and leaderboard.failed.csv from every record under results_dir,
    after deleting what killed writers left behind (bench.records.prune_orphans)."""
    results_dir = Path(results_dir)
    with _locked(results_dir):
        prune_orphans(results_dir)
        records = load_records(results_dir)
        frame = leaderboard_frame(records)
        failed = failures_frame(records)
        atomic_write_text(results_dir / "leaderboard.csv", frame.to_csv(index=False))
        atomic_write_text(results_dir / "leaderboard.md", to_markdown(frame, failed))
        atomic_write_text(results_dir / "leaderboard.failed.csv", failed.to_csv(index=False))
    return frame


def print_leaderboard(frame: pd.DataFrame, highlight: set[str] | None = None,
                      failed: pd.DataFrame | None = None, grouped: bool = False,
                      columns: tuple[str, ...] = ()) -> None:
    """Rich tables, one per (dataset, protocol): rows are only ranked against their peers."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    if frame.empty:
        console.print("[yellow]leaderboard is empty: no finished runs yet[/]")
    metrics = [m for m in SHOWN if m in frame or f"{m}_ci95" in frame]
    if columns:  # provenance: keep one metric so the rows stay recognizable
        metrics = metrics[:1]
    for (dataset, protocol), block in frame.groupby(["dataset", "protocol"], sort=True):
        suffix = "  (mean ± 95% CI over seeds)" if grouped else ""
        table = Table(title=f"{dataset} — {protocol}{suffix}", title_justify="left")
        cols, cells = _table_cells(block, grouped, metrics)
        extra = [c for c in columns if c in block and c not in cols]
        for c in [*cols, *extra]:
            table.add_column(c, justify="left" if c in ("model", "run_id") else "right")
        for (_, row), row_cells in zip(block.iterrows(), cells, strict=True):
            hit = highlight and not grouped and row["run_id"] in highlight
            table.add_row(*row_cells, *(fmt(row[c]) for c in extra),
                          style="bold green" if hit else None)
        console.print(table)
    for _, r in (failed if failed is not None else pd.DataFrame()).iterrows():
        console.print(f"[red]failed[/] {r['model']} on {r['dataset']} (seed {r['seed']}, "
                      f"{r['phase']}): {r['error']}  [dim]{r['run_id']}[/]")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.leaderboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dir", nargs="?", default="results",
                   help="folder holding records/ (default: results)")
    for name in ("dataset", "protocol", "model", "sweep"):
        p.add_argument(f"--{name}", help=f"only these {name}s (comma-separated)")
    p.add_argument("--sort", default="ndcg@10", help="metric or column to rank by")
    p.add_argument("--ascending", action="store_true", help="smallest first")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--group", action="store_true",
                      help="one row per model: mean ± 95%% CI over seeds")
    view.add_argument("--best", action="store_true", help="the best run of each model")
    p.add_argument("--provenance", action="store_true",
                   help="show provenance columns (commit, hashes, times, epochs, ...); "
                        "the CSV always has them all")
    p.add_argument("--csv", type=Path, help="write this view as CSV")
    p.add_argument("--md", type=Path, help="write this view as Markdown")
    p.add_argument("--html", type=Path, nargs="?", const=True,
                   help="write an HTML report with PNG charts (default RESULTS_DIR/report.html)")
    return p


def main(argv: list[str] | None = None) -> int:
    from bench.errors import BenchError

    args = _parser().parse_args(argv)
    results_dir = Path(args.results_dir)
    try:
        rebuild(results_dir)  # the canonical views always cover every record
        records = load_records(results_dir)
        frame = select(leaderboard_frame(records), args.dataset, args.protocol, args.model,
                       args.sweep)
        failed = select(failures_frame(records), args.dataset, args.protocol, args.model,
                        args.sweep)
        if args.group:
            view = aggregate(frame, args.sort, args.ascending) if not frame.empty else frame
        elif args.best:
            view = best_per_model(frame, args.sort, args.ascending)
        else:
            view = sort_rows(frame, args.sort, args.ascending)
        print_leaderboard(view, failed=failed, grouped=args.group,
                          columns=TERMINAL_PROVENANCE if args.provenance else ())
        written = [results_dir / "leaderboard.csv", results_dir / "leaderboard.md"]
        if args.csv:
            atomic_write_text(args.csv, view.to_csv(index=False))
            written.append(args.csv)
        if args.md:
            atomic_write_text(args.md, to_markdown(frame if args.group else view, failed,
                                                   grouped=args.group))
            written.append(args.md)
        if args.html:
            from bench.report import write_report

            html = results_dir / "report.html" if args.html is True else args.html
            written.append(write_report(records, html, frame=frame, failed=failed))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("views written: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
