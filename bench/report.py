"""A self-contained HTML report of the leaderboard, with PNG charts beside it.

    python -m bench.leaderboard --html [path]      (default results/report.html)

`report.html` plus `report_files/*.png`: no scripts, no stylesheets or fonts from the network;
the page is well-formed XHTML, so any XML parser can check it. matplotlib is imported only here.
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.leaderboard import (
    PROVENANCE,
    SHOWN,
    aggregate,
    failures_frame,
    fmt,
    leaderboard_frame,
)
from bench.records import atomic_write, atomic_write_text

CHART_METRICS = ("ndcg@10", "hit@10")
CURVE_METRIC = "ndcg@10"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
tr.best td { font-weight: bold; } code { background: #f6f6f6; }
.failed td { color: #a00; text-align: left; } img { max-width: 100%; }
details { margin-bottom: 1.5em; }
"""


def _slug(text: str) -> str:
    """A file name readable at a glance and unique per text (protocol tags can be long)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9]+', '-', text).strip('-')[:40]}-{digest}"


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                               bbox_inches="tight"))


def metric_chart(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Bars of each model's mean with 95% CI error bars, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in CHART_METRICS if m in summary]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        ci = summary[f"{metric}_ci95"].fillna(0.0)
        ax.bar(summary["model"], summary[metric], yerr=ci, capsize=4, color="#4c72b0")
        ax.set_title(f"{metric} (mean ± 95% CI)")
        ax.set_ylim(bottom=0)
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def curve_chart(records: list[dict], path: Path, title: str) -> Path | None:
    """Validation NDCG@10 per epoch, one line per run (label model/seed)."""
    runs = [r for r in records if r.get("validation_curve")]
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in sorted(runs, key=lambda r: (r["model"], r["seed"], r["run_id"])):
        curve = r["validation_curve"]
        ax.plot([p["epoch"] for p in curve], [p.get(CURVE_METRIC) for p in curve], marker="o",
                markersize=3, label=f"{r['model']}/s{r['seed']}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {CURVE_METRIC}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def _table(frame: pd.DataFrame, columns: list[str], ci: bool = False,
           best: str | None = None, css: str = "") -> str:
    text_cols = {"model", "run_id", "versions", "cpu", "gpu", "commit", "config_hash", "sweep",
                 "dataset_fingerprint", "split_fingerprint", "error", "phase", "dataset"}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    top = frame[best].max() if best and best in frame and not frame.empty else None
    for _, row in frame.iterrows():
        cells = []
        for c in columns:
            value = fmt(row[c], row[f"{c}_ci95"]) if ci and f"{c}_ci95" in row else fmt(row[c])
            klass = ' class="text"' if c in text_cols else ""
            cells.append(f"<td{klass}>{html.escape(value)}</td>")
        mark = ' class="best"' if top is not None and row[best] == top else ""
        body.append(f"<tr{mark}>{''.join(cells)}</tr>")
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}><tr>{head}</tr>{''.join(body)}</table>"


def write_report(records: list[dict], path: str | Path, frame: pd.DataFrame | None = None,
                 failed: pd.DataFrame | None = None) -> Path:
    """Write the HTML page and its PNG charts; returns the page's path. `frame`/`failed`
    (already filtered leaderboard rows) default to every record's."""
    path = Path(path)
    frame = leaderboard_frame(records) if frame is None else frame
    failed = failures_frame(records) if failed is None else failed
    images = path.parent / f"{path.stem}_files"
    by_id = {r["run_id"]: r for r in records}
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<!DOCTYPE html>",
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/>',
        f"<title>recbench leaderboard</title><style>{STYLE}</style></head><body>",
        "<h1>recbench leaderboard</h1>",
        f"<p>{len(frame)} finished runs, {len(failed)} failed; generated "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from the run records. Rows are only "
        "ranked against rows with the same dataset and protocol. Means are over seeds with a "
        "95% Student-t interval (— with one seed).</p>",
    ]
    metrics = [m for m in SHOWN if m in frame]
    for (dataset, protocol), block in frame.groupby(["dataset", "protocol"], sort=True):
        title = f"{dataset} — {protocol}"
        slug = _slug(f"{dataset}-{protocol}")
        summary = aggregate(block)
        bars = metric_chart(summary, images / f"{slug}-metrics.png", title)
        curves = curve_chart([by_id[i] for i in block["run_id"] if i in by_id],
                             images / f"{slug}-curves.png", title)
        parts.append(f"<h2>{html.escape(dataset)} — <code>{html.escape(protocol)}</code></h2>")
        parts.append(_table(summary, ["model", "seeds", *metrics, "train_s", "n_parameters"],
                            ci=True, best="ndcg@10"))
        for image, alt in ((bars, "metrics per model"), (curves, "validation curves")):
            if image is not None:
                src = f"{images.name}/{image.name}"
                parts.append(f'<p><img src="{html.escape(src)}" alt="{alt}"/></p>')
        parts.append("<details><summary>every run, with provenance</summary>")
        parts.append(_table(block, ["model", "seed", *metrics,
                                    *[c for c in PROVENANCE if c in block]]))
        parts.append("</details>")
    if not failed.empty:
        parts.append("<h2>Failed runs</h2>")
        parts.append(_table(failed, list(failed.columns), css="failed"))
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
