"""Hydra entry point: `python -m bench [overrides] [-m]`."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bench.errors import BenchError
from bench.help import check_argv, register_help
from bench.schema import register

log = logging.getLogger("bench")
register()
register_help()


def _checked_argv(hydra_main):
    """Catch misspelled group options (`model=lstn`) with a suggestion before Hydra composes."""
    @functools.wraps(hydra_main)
    def wrapper(*args, **kwargs):
        if not args and not kwargs:  # called as the command line entry point
            check_argv()
        return hydra_main(*args, **kwargs)
    return wrapper


INTERRUPTED = ("interrupted: the running job left no record; rerun with resume=true to finish "
               "the remaining jobs")


def _clean_interrupt(entry):
    """Ctrl-C between jobs (in Hydra's own code) ends as cleanly as during one: exit 130."""
    @functools.wraps(entry)
    def wrapper(*args, **kwargs):
        try:
            return entry(*args, **kwargs)
        except KeyboardInterrupt:
            print(INTERRUPTED, file=sys.stderr)
            raise SystemExit(130) from None
    return wrapper


# An absolute path: a relative one would be resolved as the Python package `conf`.
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@_clean_interrupt
@_checked_argv
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job; returns validation NDCG@10 so Hydra sweepers (Optuna) can optimize it."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    from bench.leaderboard import print_leaderboard, rebuild
    from bench.run import JobFailed, run_job

    interrupted = _catch_sigint()
    try:
        record = run_job(cfg, Path(hydra_cfg.runtime.output_dir))
    except JobFailed as exc:
        print(f"failed: {exc} (record {exc.record['run_id']})", file=sys.stderr)
        rebuild(cfg.results_dir)
        if multirun:
            return None  # the failure is recorded; the sweep goes on
        sys.exit(1)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if multirun:
            return None  # one bad job must not end the sweep
        sys.exit(2)
    except (KeyboardInterrupt, SystemExit):
        if not interrupted():
            raise
        # Lightning turns Ctrl-C into SystemExit(1); either way nothing of this job is written.
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(130) from None
    if record.get("skipped"):
        print(f"skipped {record['model']} seed {record['seed']}: finished as "
              f"{record['run_id']} (resume=true)", file=sys.stderr)
        return record["metrics"]["valid"]["ndcg@10"]
    if _data_parallel_rank():
        return record["metrics"]["valid"]["ndcg@10"]  # rank 0 writes and reports
    frame = rebuild(cfg.results_dir)
    if not multirun and not cfg.quiet:
        print_leaderboard(frame, highlight={record["run_id"]})
    return record["metrics"]["valid"]["ndcg@10"]


def _data_parallel_rank() -> int:
    """Lightning's global rank in DDP jobs (every rank runs this entry point), else 0."""
    if "pytorch_lightning" not in sys.modules:
        return 0
    from pytorch_lightning.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0)


def _catch_sigint():
    """Remember a Ctrl-C (then raise KeyboardInterrupt as usual) so it ends the sweep cleanly
    even after Lightning has turned it into SystemExit. Returns `was it pressed?`."""
    pressed = []

    def handler(signum, frame):
        pressed.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    return lambda: bool(pressed)
