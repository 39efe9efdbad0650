"""Hydra entry point: `python -m bench [overrides] [-m]`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bench.errors import BenchError
from bench.schema import register

log = logging.getLogger("bench")
register()


# An absolute path: a relative one would be resolved as the Python package `conf`.
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job; returns validation NDCG@10 so Hydra sweepers (Optuna) can optimize it."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    from bench.leaderboard import print_leaderboard, rebuild
    from bench.run import run_job

    try:
        record = run_job(cfg, Path(hydra_cfg.runtime.output_dir))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if multirun:
            return None  # one bad job must not end the sweep
        sys.exit(2)
    frame = rebuild(cfg.results_dir)
    if not multirun and not cfg.quiet:
        print_leaderboard(frame, highlight={record["run_id"]})
    return record["metrics"]["valid"]["ndcg@10"]
