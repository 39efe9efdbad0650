"""Sweep progress on a terminal: after each job, one line with `[i/n]`, its test NDCG@10 and
the running leaders of its (dataset, protocol) table. Silent when stdout is not a terminal or
with quiet=true. Lines, not a live display: Lightning's rich epoch bar owns the live region.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

LEADERS = 3


def sweep_size(config: DictConfig) -> int | None:
    """Jobs a sweep will launch: Optuna's n_trials, or the product of the basic sweeper's
    comma/range choices; None when it cannot be known up front."""
    hydra_cfg = config.get("hydra") or {}
    sweeper = hydra_cfg.get("sweeper") or {}
    if sweeper.get("n_trials"):
        return int(sweeper["n_trials"])
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(
            list(hydra_cfg.get("overrides", {}).get("task", [])))
        sizes = [len(list(o.sweep_string_iterator())) for o in overrides
                 if o.is_sweep_override()]
    except Exception:  # glob() and friends need the config to expand; show i without n
        return None
    return math.prod(sizes)


def progress_line(record: dict | None, index: int, total: int | None, records: list[dict]
                  ) -> str:
    """`[3/6] mf seed=0: test ndcg@10 0.1894 | leaders: pop 0.2363, lstm 0.2290, mf 0.1894`
    (leaders: the best run of each model so far in the job's dataset and protocol)."""
    from bench.leaderboard import best_per_model, leaderboard_frame, select

    head = f"[{index}/{total}]" if total else f"[{index}]"
    if record is None:
        return f"{head} job finished without a record"
    name = f"{record['model']} seed={record['seed']}"
    if record.get("status") != "finished":
        return f"{head} {name} failed during {record.get('phase')}: {record.get('error')}"
    board = select(leaderboard_frame(records), record["dataset"], record["protocol_tag"])
    top = best_per_model(board, "ndcg@10").head(LEADERS)  # each model's best run
    leaders = ", ".join(f"{row.model} {row['ndcg@10']:.4f}" for _, row in top.iterrows())
    return (f"{head} {name}: test ndcg@10 {record['metrics']['test']['ndcg@10']:.4f}"
            f" | leaders: {leaders}")


class SweepProgress(Callback):
    def __init__(self) -> None:
        self.total: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.total = sweep_size(config)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        hydra_cfg = config.get("hydra") or {}
        multirun = str(hydra_cfg.get("mode")).endswith("MULTIRUN")
        if config.get("quiet") or not sys.stdout.isatty() or not multirun:
            return
        from bench.records import load_records

        records = load_records(config.results_dir)
        output_dir = Path(hydra_cfg.runtime.output_dir).resolve()
        mine = [r for r in records if r.get("output_dir") and
                Path(r["output_dir"]) == output_dir]
        index = int(hydra_cfg.job.get("num", 0)) + 1
        print(progress_line(mine[-1] if mine else None, index, self.total, records), flush=True)
