"""Typed schemas for the harness's own config groups, so a bad override fails at compose time
naming the key (e.g. `trainer.max_epochs=lots`). Model and dataset groups stay free-form:
their keys are the plugins' constructor arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class TrainerConfig:
    max_epochs: int = 30
    patience: int = 3
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    # Fraction (float) or number (int) of training batches per epoch: smoke tests, startup timing.
    limit_train_batches: Any = 1.0


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [10, 20])
    batch_size: int = 1024
    # 0: full-catalog ranking. N > 0: rank each user's targets against N sampled negatives,
    # drawn once per split (seeded by the split, not the run) and tagged `sampled<N>`.
    sampled: int = 0
    # Catalog items scored per chunk for models with `score_items` (null: the whole catalog).
    item_chunk: int | None = None
    # The CTR view of pointwise models: held-out rows labeled rating >= this (null: no CTR view;
    # datasets without ratings have none either).
    label_threshold: float | None = 4.0


@dataclass
class BenchConfig:
    dataset: Any = MISSING
    split: Any = MISSING
    model: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    max_len: int = 50
    threads: int | None = None
    quiet: bool = False
    resume: bool = False
    results_dir: str = "results"
    # Set by `python -m bench.tune` on the re-runs of a tuned config: trials, sweeper, best value.
    tuning: Any = None


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="bench_schema", node=BenchConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)
    cs.store(group="eval", name="eval_schema", node=EvalConfig)
    OmegaConf.register_new_resolver("bench.mixed_precision", mixed_precision, replace=True)


def mixed_precision() -> str:
    """The fastest safe precision here: bf16 where the GPU supports it, fp16 on older GPUs,
    full precision without CUDA. Resolved when the job starts, so the record shows the choice."""
    import torch

    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
