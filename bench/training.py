"""The one LightningModule that trains and evaluates any `Recommender`."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from bench.errors import BenchError
from bench.evaluation import MetricAccumulator
from bench.recommender import Recommender


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

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model.loss(batch)
        if self.l1:
            loss = loss + self.l1 * sum(p.abs().sum() for p in self.model.parameters())
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"training loss is {loss.item()} at epoch {self.current_epoch}, "
                                f"step {self.global_step}")
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(next(iter(batch.values()))))
        return loss

    def _start(self) -> None:
        self.accumulator = MetricAccumulator(self.ks, self.n_items, self.item_popularity,
                                             self.item_chunk)

    def _step(self, batch: dict) -> None:
        self.accumulator.update_model(self.model, batch)

    def _end(self, stage: str) -> dict[str, float]:
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
