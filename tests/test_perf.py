"""bench.perf measures what it says on a tiny budget (numbers are not asserted against targets:
timings on shared CI cores are not a test)."""

import math

from bench.perf import COLUMNS, table, worker

TINY_DATA = ["dataset.n_users=80", "dataset.n_items=50", "dataset.mean_length=12"]


def test_worker_times_lightning_and_plain_epochs_and_evaluation(tmp_path):
    out = worker(["model=mf", *TINY_DATA, f"results_dir={tmp_path}"], epochs=2, threads=1)
    assert out["threads"] == 1
    assert len(out["lightning_epochs_s"]) == len(out["plain_epochs_s"]) == 2
    for key in ("lightning_epoch_s", "plain_epoch_s", "lightning_epoch_cpu_s", "eval_s"):
        assert out[key] > 0, key
    assert math.isclose(out["overhead"], out["lightning_epoch_s"] / out["plain_epoch_s"])
    assert math.isclose(out["train_per_s"], out["n_train"] / out["lightning_epoch_s"])
    assert 0 < out["eval_users"] <= 80 and out["peak_rss_mb"] > 50

    pop = worker(["model=pop", *TINY_DATA, f"results_dir={tmp_path}"], epochs=2, threads=1)
    assert "lightning_epoch_s" not in pop and pop["eval_s"] > 0  # nothing to train

    text = table([{"dataset": "synthetic", "model": "mf", **out}])
    header, _, row = text.splitlines()
    assert header.count("|") == row.count("|") == len(COLUMNS) + 1
    assert "| synthetic | mf |" in row
