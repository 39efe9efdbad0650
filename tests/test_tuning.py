"""Tuned baselines: an Optuna study of a fixed number of trials per model, the best config
re-run on test, and the budget recorded with it."""

import os
import subprocess
import sys

import pytest

from bench.records import load_records
from tests.conftest import ROOT, TINY


@pytest.mark.slow
def test_three_trial_study_records_the_budget_with_the_best_config(results_dir):
    cmd = [sys.executable, "-m", "bench.tune", "--models", "mf", "--trials", "3", "--seeds", "0",
           "--", *TINY, f"results_dir={results_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    trials = load_records(results_dir / "tuning")
    assert len(trials) == 3 and {t["model"] for t in trials} == {"mf"}
    best_trial = max(trials, key=lambda t: t["metrics"]["valid"]["ndcg@10"])

    [record] = load_records(results_dir)  # trials stay out of the main leaderboard
    tuning = record["tuning"]
    assert tuning["sweeper"] == "optuna" and tuning["trials"] == 3
    assert tuning["objective"] == "valid/ndcg@10"
    assert tuning["best_value"] == pytest.approx(best_trial["metrics"]["valid"]["ndcg@10"])
    for key in ("embedding_dim", "loss"):
        assert record["config"]["model"][key] == best_trial["config"]["model"][key]
    assert record["config"]["model"]["train"] == best_trial["config"]["model"]["train"]
    # Same config and seed as the best trial: the re-run reproduces its validation score.
    assert record["metrics"]["valid"]["ndcg@10"] == pytest.approx(tuning["best_value"])


def test_a_model_without_a_search_space_is_refused_in_one_line(tmp_path):
    cmd = [sys.executable, "-m", "bench.tune", "--models", "pop", "--trials", "2", "--",
           f"results_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "conf/search/pop.yaml" in proc.stderr and "Traceback" not in proc.stderr
