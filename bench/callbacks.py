"""Hydra callbacks: the leaderboard after a sweep."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class LeaderboardCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bench.leaderboard import print_leaderboard, rebuild

        frame = rebuild(config.results_dir)
        if not config.get("quiet"):
            print_leaderboard(frame)
