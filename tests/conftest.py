"""Shared test fixtures: composing configs in-process and running `python -m bench` for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
ML100K = ROOT.parent / "shared" / "data" / "ml-100k"

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("WANDB_MODE", "offline")

# A budget small enough for CI yet big enough that learning shows: used by end-to-end tests.
TINY = [
    "dataset.n_users=120", "dataset.n_items=60", "dataset.mean_length=15",
    "trainer.max_epochs=2", "quiet=true", "threads=1", "logger=none",
]


def compose(*overrides: str):
    """The resolved job config for `overrides`, as `python -m bench` would build it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bench.schema import register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def run_bench(*args: str, results_dir: Path, cwd: Path | None = None, timeout: int = 600):
    """Run `python -m bench ...` in a subprocess; returns the CompletedProcess."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    flags = [a for a in args if a.startswith("-")]  # Hydra's argparse wants flags after overrides
    overrides = [a for a in args if not a.startswith("-")]
    cmd = [sys.executable, "-m", "bench", *overrides, f"results_dir={results_dir}", *flags]
    return subprocess.run(cmd, cwd=cwd or ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture(scope="session")
def ml100k_root() -> Path:
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100K not found at {ML100K}")
    return ML100K
