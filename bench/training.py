"""The one LightningModule that trains and evaluates any `Recommender`."""

from __future__ import annotations

import os
import time
import warnings

import pytorch_lightning as pl
import torch
import torch.distributed as dist

from bench.errors import BenchError
from bench.evaluation import MetricAccumulator, merge_accumulators
from bench.recommender import Recommender

# Ranks gather evaluation results themselves (below), so Lightning's advice to sync is moot.
warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting")

# Evaluation-batch fields holding [2, nnz] (row, item) pairs rather than one row per user.
PAIR_FIELDS = ("seen", "targets", "candidates", "labeled")


def rank_and_world() -> tuple[int, int]:
    """This process's data-parallel rank and the number of ranks (0, 1 without DDP)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rows_of_rank(batch: dict, rank: int, world: int) -> dict:
    """This rank's contiguous share of an evaluation batch's users; pair fields are filtered
    to those rows and renumbered, so every rank runs the same number of steps."""
    n = len(batch["users"])
    lo, hi = n * rank // world, n * (rank + 1) // world
    out = {}
    for name, value in batch.items():
        if name.startswith("labeled_"):  # aligned with the `labeled` pairs, filtered with them
            keep = (batch["labeled"][0] >= lo) & (batch["labeled"][0] < hi)
            out[name] = value[keep]
        elif name in PAIR_FIELDS:
            keep = (value[0] >= lo) & (value[0] < hi)
            out[name] = torch.stack([value[0][keep] - lo, value[1][keep]])
        elif isinstance(value, torch.Tensor) and value.dim() and len(value) == n:
            out[name] = value[lo:hi]
        else:
            out[name] = value
    return out


def process_started() -> float | None:
    """When this process started (epoch seconds, 10 ms resolution), from /proc on Linux."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class RankShare:
    """Training batches for data-parallel ranks: every rank cuts the same epoch order (a
    generator seeded by seed and epoch) and takes every world-th batch; the last round is padded
    from the start of that order (as DistributedSampler pads), so all ranks step equally often.
    One process: the batches unchanged."""

    def __init__(self, batches, seed: int):
        self.batches, self.seed, self.epoch = batches, seed, 0

    def __len__(self) -> int:
        return -(-len(self.batches) // rank_and_world()[1])

    def __iter__(self):
        rank, world = rank_and_world()
        if world == 1:
            yield from self.batches
            return
        seed, self.epoch = self.seed * 100_003 + self.epoch, self.epoch + 1
        wanted, given, position = len(self), 0, 0
        while given < wanted:
            self.batches.generator = torch.Generator().manual_seed(seed)
            for batch in self.batches:
                if position % world == rank:
                    yield batch
                    given += 1
                    if given == wanted:
                        return
                position += 1


class NonFiniteLoss(BenchError):
    """The training loss became NaN or inf."""


class RecModule(pl.LightningModule):
    def __init__(self, model: Recommender, n_items: int, ks: list[int], lr: float = 1e-3,
                 weight_decay: float = 0.0, l1: float = 0.0,
                 item_popularity: torch.Tensor | None = None, item_chunk: int | None = None):
        super().__init__()
        self.model, self.n_items, self.ks = model, n_items, list(ks)
        # Evaluation settings: train counts for AvgPop@K; catalog chunk size for score_items.
        self.item_popularity, self.item_chunk = item_popularity, item_chunk
        self.lr, self.weight_decay, self.l1 = lr, weight_decay, l1
        self.accumulator: MetricAccumulator | None = None
        self.results: dict[str, MetricAccumulator] = {}
        self.history: list[dict] = []  # validation summaries per epoch
        self.startup_s: float | None = None  # process start -> first training step
        self.loss_sum, self.loss_rows = torch.zeros(()), 0

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        if self.startup_s is None and (started := process_started()) is not None:
            self.startup_s = round(time.time() - started, 3)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model.loss(batch)
        if self.l1:
            loss = loss + self.l1 * sum(p.abs().sum() for p in self.model.parameters())
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"training loss is {loss.item()} at epoch {self.current_epoch}, "
                                f"step {self.global_step}")
        # Summed here and logged once per epoch: Lightning's per-step logging costs ~5 ms a
        # step on CPU, more than a whole MF step.
        rows = len(next(iter(batch.values())))
        self.loss_sum = self.loss_sum + loss.detach() * rows
        self.loss_rows += rows
        return loss

    def on_train_epoch_start(self) -> None:
        self.loss_sum, self.loss_rows = torch.zeros((), device=self.device), 0

    def on_train_epoch_end(self) -> None:
        if self.loss_rows:
            self.log("train/loss", self.loss_sum / self.loss_rows, prog_bar=True, sync_dist=True)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        if device.type == "cpu":  # batches are born on the CPU; skip Lightning's per-step walk
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _start(self) -> None:
        self.accumulator = MetricAccumulator(self.ks, self.n_items, self.item_popularity,
                                             self.item_chunk)

    def _step(self, batch: dict) -> None:
        rank, world = rank_and_world()
        if world > 1:
            batch = rows_of_rank(batch, rank, world)
            if not len(batch["users"]):
                return
        self.accumulator.update_model(self.model, batch)

    def _end(self, stage: str) -> dict[str, float]:
        if rank_and_world()[1] > 1:  # every rank gets every rank's users: identical metrics
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, self.accumulator)
            self.accumulator = merge_accumulators(parts)
        summary = self.accumulator.summary()
        self.results[stage] = self.accumulator
        self.log_dict({f"{stage}/{k}": v for k, v in summary.items()}, prog_bar=False)
        return summary

    def on_validation_epoch_start(self) -> None:
        self._start()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch)

    def on_validation_epoch_end(self) -> None:
        summary = self._end("val")
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.history.append({"epoch": self.current_epoch, **summary})

    def on_test_epoch_start(self) -> None:
        self._start()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch)

    def on_test_epoch_end(self) -> None:
        self._end("test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.lr,
                                weight_decay=self.weight_decay)
