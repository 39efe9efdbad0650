"""One job: compose -> data -> model -> train -> evaluate -> record -> leaderboard."""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
import traceback
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from bench.data import Prepared, Split, fingerprint, load_split, prepare
from bench.errors import BenchError
from bench.recommender import BATCH_KINDS, Recommender, train_batches
from bench.records import (
    config_hash,
    finished_record,
    git_state,
    hardware,
    protocol_tag,
    versions,
    write_record,
)

log = logging.getLogger("bench")

# Keys of conf/model and conf/dataset files that configure the harness, not the constructor.
MODEL_RESERVED = ("description", "train")
DATASET_RESERVED = ("name", "description", "filter", "clean", "cache")


def _constructor_kwargs(cfg: DictConfig, reserved: tuple[str, ...]) -> dict:
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
            if k not in reserved and k != "_target_"}


def _resolve(cfg: DictConfig, group: str):
    target = cfg.get("_target_")
    if not target:
        raise BenchError(f"{group}._target_ is missing; every conf/{group}/*.yaml names a class")
    try:
        return get_class(target)
    except Exception as exc:  # hydra wraps import errors in several types
        raise BenchError(f"{group}._target_={target!r} cannot be imported: {exc}") from exc


def build_dataset(cfg: DictConfig, quiet: bool = False):
    cls = _resolve(cfg, "dataset")
    kwargs = _constructor_kwargs(cfg, DATASET_RESERVED)
    if quiet and "progress" in inspect.signature(cls.__init__).parameters:
        kwargs["progress"] = False  # quiet=true silences download bars too
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise BenchError(f"dataset={cfg.get('name')}: {exc}") from exc


def build_model(cfg: DictConfig, prep: Prepared) -> Recommender:
    """Instantiate a model plugin; data-derived arguments are offered where its constructor
    names them (n_users, n_items, max_len, feature_sizes, item_popularity)."""
    cls = _resolve(cfg, "model")
    if not (isinstance(cls, type) and issubclass(cls, Recommender)):
        raise BenchError(f"model._target_={cfg._target_!r} is not a bench Recommender")
    if cls.batch_kind not in BATCH_KINDS:
        raise BenchError(f"{cls.__name__}.batch_kind={cls.batch_kind!r}; expected {BATCH_KINDS}")
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = _constructor_kwargs(cfg, MODEL_RESERVED)
    data_args = {k: v for k, v in prep.model_args().items() if k in accepted}
    try:
        return cls(**data_args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"model {cls.__name__}: {exc}") from exc


def prepare_data(cfg: DictConfig) -> tuple[Split, Prepared]:
    """The job's data pipeline (load -> filter -> remap -> split -> tensors); `bench.recommend`
    rebuilds a trained run's id mappings through this same function."""
    # Cleaned, filtered and split data is cached under results_dir/cache when dataset.cache.
    cache = Path(cfg.results_dir) / "cache" if cfg.dataset.get("cache") else None
    split = load_split(build_dataset(cfg.dataset, quiet=cfg.quiet),
                       OmegaConf.to_container(cfg.dataset, resolve=True),
                       OmegaConf.to_container(cfg.split, resolve=True), cache, quiet=cfg.quiet)
    return split, prepare(split, max_len=cfg.max_len, eval_batch_size=cfg.eval.batch_size,
                          label_threshold=cfg.eval.get("label_threshold"))


def data_fingerprints(split: Split) -> dict[str, str]:
    """What a record stores to tell whether later data is the version a run was trained on."""
    frame = split.frame
    return {
        "dataset_fingerprint": fingerprint(frame["user"].to_numpy(), frame["item"].to_numpy(),
                                           frame["timestamp"].to_numpy()),
        "split_fingerprint": fingerprint(frame["fold"].to_numpy().astype("U5")),
    }


def attach_negatives(cfg: DictConfig, split: Split, prep: Prepared) -> dict:
    """Sampled-negative evaluation (eval.sampled=N): the negatives are a function of the data
    and split only, stored once under results_dir/negatives/ and checked on every later run,
    so every model ranks against the same ones. Returns the protocol entries to add."""
    from bench.evaluation import attach_sampled_negatives
    from bench.records import atomic_write

    n = int(cfg.eval.sampled)
    if n < 0:
        raise BenchError(f"eval.sampled={n}; expected 0 (full ranking) or a positive count")
    fps = data_fingerprints(split)
    seed = int(fps["dataset_fingerprint"][:8] + fps["split_fingerprint"][:7], 16)
    drawn = attach_sampled_negatives(prep.stages, prep.n_items, n, seed)
    arrays = {}
    for stage, (users, items) in drawn.items():
        arrays[f"{stage}_users"] = np.asarray(split.user_ids[users]).astype(str)
        arrays[f"{stage}_items"] = np.asarray(split.item_ids[items]).astype(str)
    path = (Path(cfg.results_dir) / "negatives"
            / f"{fps['dataset_fingerprint']}-{fps['split_fingerprint']}-n{n}.npz")
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            same = set(stored.files) == set(arrays) and all(
                np.array_equal(stored[k], v) for k, v in arrays.items())
        if not same:
            raise BenchError(f"{path}: stored negatives differ from this split's draw")
    else:
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

        atomic_write(path, save)
    return {"candidates": f"sampled{n}", "negatives_file": str(path),
            "negatives_fingerprint": fingerprint(*(arrays[k] for k in sorted(arrays)))}


class JobFailed(BenchError):
    """A job that started and broke (exception, NaN loss); its `failed` record is written."""

    def __init__(self, record: dict):
        super().__init__(f"{record['model']} on {record['dataset']} (seed {record['seed']}) "
                         f"failed during {record['phase']}: {record['error']}")
        self.record = record


def run_job(cfg: DictConfig, output_dir: Path) -> dict:
    """Run one configured job and return its record (already written under results_dir).

    Bad input found before training (BenchError) writes nothing. Anything that breaks once
    training starts, and any unexpected exception, writes a `failed` record and raises
    JobFailed, so a sweep can go on. With `resume=true` a job whose config hash and seed
    already have a finished record is skipped: its record comes back with `skipped: True`.
    """
    config = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash(config)
    if cfg.get("resume"):
        done = finished_record(cfg.results_dir, chash, int(cfg.seed))
        if done is not None:
            return {**done, "skipped": True}
    job = {"phase": "setup", "times": {}, "config": config, "config_hash": chash,
           "started": time.perf_counter()}
    try:
        record = _run_job(cfg, output_dir, job)
    except Exception as exc:
        if isinstance(exc, BenchError) and job["phase"] == "setup":
            raise  # bad input: a clear line, no record
        record = {
            **_identity(cfg, job),
            "status": "failed",
            "phase": job["phase"],
            "error": f"{type(exc).__name__}: {exc}".strip(),
            "traceback": traceback.format_exc(limit=-8)[-4000:],
            "protocol_tag": job.get("protocol_tag"),
            "times": {**job["times"],
                      "total_s": round(time.perf_counter() - job["started"], 3)},
            "output_dir": str(output_dir.resolve()),
        }
        write_record(cfg.results_dir, record)
        _close_logger(job, record, cfg)
        raise JobFailed(record) from exc
    _close_logger(job, record, cfg)
    return record


def _identity(cfg: DictConfig, job: dict) -> dict:
    """Fields every record carries, finished or failed."""
    return {
        "run_id": f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": cfg.dataset.name,
        "model": _model_name(cfg),
        "seed": int(cfg.seed),
        "sweep": _sweep_id(),
        "config": job["config"],
        "config_hash": job["config_hash"],
        "git": git_state(),
        "versions": versions(),
        "hardware": hardware(),
    }


def _run_job(cfg: DictConfig, output_dir: Path, job: dict) -> dict:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    from bench.training import RankShare, RecModule

    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    threads = cfg.get("threads") or _parallel_share()
    if threads:
        torch.set_num_threads(int(threads))
    keep_freed_memory()
    started = time.perf_counter()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    split, prep = prepare_data(cfg)
    if cfg.eval.get("sampled"):
        split.protocol.update(attach_negatives(cfg, split, prep))
    data_s = time.perf_counter() - started
    job["times"]["data_s"] = round(data_s, 3)
    job["protocol_tag"] = protocol_tag(split.protocol)

    model = build_model(cfg.model, prep)
    train_cfg = cfg.model.get("train") or {}
    ks = sorted(set(cfg.eval.ks))
    if 10 not in ks:
        raise BenchError(f"eval.ks={list(ks)} must include 10: early stopping and the "
                         "leaderboard rank by NDCG@10")
    module = RecModule(model, prep.n_items, ks, lr=train_cfg.get("lr", 1e-3),
                       weight_decay=train_cfg.get("weight_decay", 0.0),
                       l1=train_cfg.get("l1", 0.0),
                       item_popularity=prep.model_args()["item_popularity"],
                       item_chunk=cfg.eval.get("item_chunk"))
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    patience = trainer_cfg.pop("patience")
    # A model's own epoch budget (model.train.max_epochs) caps the trainer's, never raises it.
    if train_cfg.get("max_epochs"):
        trainer_cfg["max_epochs"] = min(trainer_cfg["max_epochs"], train_cfg["max_epochs"])
    # Redrawn bars only on a terminal: piped output (CI, logs, sweeps' files) stays clean.
    progress = (trainer_cfg.pop("enable_progress_bar", True) and not cfg.quiet
                and sys.stdout.isatty())
    # Rating regressors (mse) are selected by what they optimize; rankers by NDCG@10.
    selection, mode = (("rmse", "min") if getattr(model, "objective", None) == "mse"
                       else ("ndcg@10", "max"))
    monitor = f"val/{selection}"
    checkpoint = ModelCheckpoint(dirpath=output_dir / "checkpoints", filename="best",
                                 monitor=monitor, mode=mode, save_weights_only=True)
    try:
        trainer = pl.Trainer(
            **trainer_cfg,
            default_root_dir=output_dir,
            logger=job.setdefault("logger", _logger(cfg, output_dir)),
            callbacks=[checkpoint, EarlyStopping(monitor=monitor, mode=mode, patience=patience),
                       *([RichProgressBar()] if progress else [])],
            num_sanity_val_steps=0,
            enable_model_summary=False,
            enable_progress_bar=progress,
        )
    except MisconfigurationException as exc:  # e.g. trainer=gpu on a machine without one
        raise BenchError(f"trainer (accelerator={trainer_cfg.get('accelerator')}, "
                         f"devices={trainer_cfg.get('devices')}): {exc}") from exc
    job["phase"] = "train"
    valid, test = prep.stages["valid"], prep.stages["test"]
    train_started = time.perf_counter()
    batches = train_batches(model.batch_kind, prep, train_cfg.get("batch_size", 256),
                            train_cfg.get("n_negatives", 1), train_cfg.get("augment"),
                            objective=getattr(model, "objective", "bce"))
    trainable = batches is not None and any(p.requires_grad for p in model.parameters())
    if trainable:
        trainer.fit(module, train_dataloaders=RankShare(batches, int(cfg.seed)),
                    val_dataloaders=valid)
        ckpt = checkpoint.best_model_path or None
    else:
        ckpt = None
    train_s = time.perf_counter() - train_started
    job["times"]["train_s"] = round(train_s, 3)

    job["phase"] = "eval"
    eval_started = time.perf_counter()
    if ckpt:  # weights only: loading a checkpoint never unpickles arbitrary objects
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        module.load_state_dict(state["state_dict"])
    trainer.validate(module, dataloaders=valid, verbose=False)
    trainer.test(module, dataloaders=test, verbose=False)
    eval_s = time.perf_counter() - eval_started

    job["phase"] = "record"
    users, vectors = module.results["test"].per_user()
    raw_users = np.asarray(split.user_ids[users.numpy()])
    if raw_users.dtype == object:
        raw_users = raw_users.astype(str)
    history = module.history
    pick = min if mode == "min" else max
    best_epoch = pick(history, key=lambda h: h[selection])["epoch"] if history else None
    record = {
        **_identity(cfg, job),
        "status": "finished",
        "protocol": split.protocol,
        "protocol_tag": protocol_tag(split.protocol),
        "metrics": {"valid": module.results["val"].summary(),
                    "test": module.results["test"].summary()},
        "n_eval_users": {"valid": len(prep.stages["valid"].users),
                         "test": len(prep.stages["test"].users)},
        **data_fingerprints(split),
        "data": {"n_users": prep.n_users, "n_items": prep.n_items,
                 "n_interactions": len(split.frame),
                 "n_train": int(len(prep.train_items)), "folds": split.sizes},
        "cleaning": split.cleaning,
        "times": {"data_s": round(data_s, 3), "train_s": round(train_s, 3),
                  "eval_s": round(eval_s, 3),
                  "total_s": round(time.perf_counter() - started, 3),
                  "startup_s": module.startup_s},
        "best_epoch": best_epoch,
        "selected_by": f"{mode} {monitor}",
        "epochs": trainer.current_epoch if trainable else 0,
        "validation_curve": history,
        "n_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "checkpoint": str(Path(ckpt).resolve()) if ckpt else None,
        "output_dir": str(output_dir.resolve()),
        "tuning": job["config"].get("tuning"),
        "world_size": trainer.world_size,  # data-parallel processes that trained and evaluated
    }
    if trainer.is_global_zero:  # data-parallel ranks hold identical results; one record
        write_record(cfg.results_dir, record,
                     (raw_users, {k: v.numpy() for k, v in vectors.items()}))
    return record


def keep_freed_memory() -> bool:
    """Tell glibc malloc to keep freed memory for reuse instead of returning it to the kernel.

    Training allocates and frees the same large tensors every step (batch embeddings, dense
    embedding gradients). With glibc's default, adaptive thresholds, many of them go back to
    the kernel and come back as fresh zeroed pages: on ml100k MF that was a third of the epoch
    in system time (0.3-1.4 s per 2 s of compute), and how much depended on the order of frees,
    so it also made the Lightning vs plain-loop comparison noisy. Fixed thresholds keep the
    heap at its peak size for the life of the job. False where there is no glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, 1 << 30))


def _parallel_share() -> int | None:
    """Torch threads for a job of a parallel launcher (joblib): an equal share of the cores,
    so n_jobs jobs never oversubscribe them. None elsewhere (torch's default)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if not n_jobs:
        return None
    cores = os.cpu_count() or 1
    return max(1, cores // (cores if n_jobs < 0 else n_jobs))


def _model_name(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return choice
    return cfg.model._target_.rsplit(".", 1)[-1].lower()


def _sweep_id() -> str | None:
    """The sweep folder's name for jobs of a multirun (groups them in views and W&B)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


def _logger(cfg: DictConfig, output_dir: Path):
    lcfg = cfg.get("logger")
    if not lcfg or not lcfg.get("_target_"):
        return False
    if lcfg._target_.endswith("WandbLogger"):
        from bench.callbacks import wandb_logger

        return wandb_logger(cfg, output_dir, _model_name(cfg), _sweep_id())
    from hydra.utils import instantiate

    return instantiate(lcfg, save_dir=str(output_dir))


def _close_logger(job: dict, record: dict, cfg: DictConfig) -> None:
    """Give W&B the final metrics and leaderboard; its failure never fails a recorded job."""
    logger = job.get("logger")
    if type(logger).__name__ != "WandbLogger":
        return
    from bench.callbacks import finish_wandb

    try:
        finish_wandb(logger, record, cfg.results_dir)
    except Exception as exc:  # the record is already written; W&B is a mirror
        log.warning("W&B: could not finish run %s: %s", record["run_id"], exc)
