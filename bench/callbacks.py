"""Hooks around jobs and sweeps: the leaderboard (and HTML report) after a sweep, and the
Weights & Biases run of a job (`logger=wandb`)."""

from __future__ import annotations

import os
import socket
from netrc import NetrcParseError, netrc
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

WANDB_HOST = "api.wandb.ai"
WANDB_MODES = ("auto", "online", "offline", "disabled")


class LeaderboardCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bench.leaderboard import failures_frame, print_leaderboard, rebuild
        from bench.records import load_records
        from bench.report import write_report

        frame = rebuild(config.results_dir)
        records = load_records(config.results_dir)
        report = write_report(records, Path(config.results_dir) / "report.html")
        if not config.get("quiet"):
            print_leaderboard(frame, failed=failures_frame(records))
            print(f"report: {report}")


def wandb_mode(requested: str = "auto") -> str:
    """The W&B mode, always decided before `wandb.init` (an API key without network hangs it):
    WANDB_MODE wins; `auto` is online only with a login and api.wandb.ai answering in 2 s."""
    from bench.errors import BenchError

    env = os.environ.get("WANDB_MODE")
    if env:
        return "offline" if env == "dryrun" else env
    if requested not in WANDB_MODES:
        raise BenchError(f"logger.mode={requested!r}; expected one of {WANDB_MODES}")
    if requested != "auto":
        return requested
    return "online" if _wandb_login() and _reachable(WANDB_HOST) else "offline"


def _wandb_login() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc().authenticators(WANDB_HOST) is not None
    except (OSError, NetrcParseError):
        return False


def _reachable(host: str, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def wandb_logger(cfg: DictConfig, output_dir: Path, model: str, sweep: str | None):
    """A Lightning WandbLogger for one job: named model/dataset/seed, grouped by sweep, the
    resolved config attached; its files live in the job's output folder."""
    from pytorch_lightning.loggers import WandbLogger

    options = OmegaConf.to_container(cfg.logger, resolve=True)
    options.pop("_target_", None)
    options.pop("offline", None)  # Lightning's flag rewrites WANDB_MODE; `mode` is explicit
    mode = wandb_mode(options.pop("mode", "auto"))
    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop("logger", None)  # logger options may hold credentials; never sent or stored
    return WandbLogger(
        name=f"{model}-{cfg.dataset.name}-s{cfg.seed}",
        group=sweep or options.pop("group", None),
        job_type=model,
        save_dir=str(output_dir),
        config=config,
        mode=mode,
        settings={"init_timeout": 30, "silent": True},
        **options,
    )


def finish_wandb(logger, record: dict, results_dir: str | Path) -> None:
    """Attach the final metrics and the leaderboard (as a wandb.Table), then close the run."""
    import wandb

    run = logger.experiment
    summary = {"status": record["status"], "run_id": record["run_id"],
               "config_hash": record["config_hash"]}
    if record["status"] == "finished":
        from bench.leaderboard import leaderboard_frame, select
        from bench.records import load_records

        for stage, metrics in record["metrics"].items():
            summary.update({f"final/{stage}/{k}": v for k, v in metrics.items()})
        summary.update({f"time/{k}": v for k, v in record["times"].items()})
        board = select(leaderboard_frame(load_records(results_dir)), record["dataset"],
                       record["protocol_tag"])
        board = board.astype(object).where(board.notna(), None)
        run.log({"leaderboard": wandb.Table(dataframe=board)})
    else:
        summary["error"] = record.get("error")
    run.summary.update(summary)
    run.finish(exit_code=0 if record["status"] == "finished" else 1)
