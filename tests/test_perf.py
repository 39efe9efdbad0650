"""bench.perf measures what it says on a tiny budget (numbers are not asserted against targets:
timings on shared CI cores are not a test)."""

import math
import subprocess
import sys

import pytest

from bench.perf import COLUMNS, table, worker

TINY_DATA = ["dataset.n_users=80", "dataset.n_items=50", "dataset.mean_length=12"]


def test_worker_times_lightning_and_plain_epochs_and_evaluation(tmp_path):
    out = worker(["model=mf", *TINY_DATA, f"results_dir={tmp_path}"], epochs=2, threads=1)
    assert out["threads"] == 1
    assert len(out["lightning_epochs_s"]) == len(out["plain_epochs_s"]) == 2
    for key in ("lightning_epoch_s", "plain_epoch_s", "lightning_epoch_cpu_s", "eval_s"):
        assert out[key] > 0, key
    assert math.isclose(out["overhead"], out["lightning_epoch_s"] / out["plain_epoch_s"])
    fastest = [min(cpu for _, cpu in out[f"{loop}_epochs_s"][1:])
               for loop in ("lightning", "plain")]
    assert math.isclose(out["overhead_min"], fastest[0] / fastest[1])
    assert math.isclose(out["train_per_s"], out["n_train"] / out["lightning_epoch_s"])
    assert 0 < out["eval_users"] <= 80 and out["peak_rss_mb"] > 50

    pop = worker(["model=pop", *TINY_DATA, f"results_dir={tmp_path}"], epochs=2, threads=1)
    assert "lightning_epoch_s" not in pop and pop["eval_s"] > 0  # nothing to train

    text = table([{"dataset": "synthetic", "model": "mf", **out}])
    header, _, row = text.splitlines()
    assert header.count("|") == row.count("|") == len(COLUMNS) + 1
    assert "| synthetic | mf |" in row


PAGE_FAULTS = """
import resource, sys, torch
from bench.run import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    print("unsupported"); sys.exit()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(8 << 20)
before = faults()
for _ in range(10):
    torch.ones(8 << 20)
print((faults() - before) * resource.getpagesize() // (32 << 20))
"""


@pytest.mark.parametrize("mode", ["default", "keep"])
def test_freed_tensor_memory_is_reused_instead_of_refaulted(mode):
    """Allocating and freeing a 32 MB tensor ten times: glibc's default hands the pages back to
    the kernel and faults them in again every time; after keep_freed_memory (what every job
    runs) they are reused. Counted in page faults, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PAGE_FAULTS, mode], capture_output=True,
                         text=True, check=True).stdout.split()[-1]
    if out == "unsupported":
        pytest.skip("no glibc mallopt on this platform")
    tensors_faulted = int(out)
    if mode == "keep":
        assert tensors_faulted <= 1
    else:
        assert tensors_faulted >= 9
