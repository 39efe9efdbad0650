"""`python -m bench` for real, in a subprocess: rows land in the leaderboard, bad input doesn't."""

import json

import pandas as pd

from bench.records import load_records
from tests.conftest import TINY, run_bench


def test_multirun_adds_one_row_per_job_and_reruns_append(results_dir):
    proc = run_bench("model=pop,mf,lstm", "-m", *TINY, results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(results_dir / "leaderboard.csv")
    assert sorted(board["model"]) == ["lstm", "mf", "pop"]
    assert board["ndcg@10"].between(0, 1).all() and board["hit@10"].gt(0).all()
    first_ids = set(board["run_id"])

    proc = run_bench("model=pop", *TINY, "quiet=false", results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(results_dir / "leaderboard.csv")
    assert len(board) == 4 and first_ids < set(board["run_id"])
    assert "pop" in proc.stdout  # the leaderboard is printed at the end of a single job

    records = load_records(results_dir)
    assert len(records) == 4
    rec = next(r for r in records if r["model"] == "lstm")
    for key in ("config_hash", "dataset_fingerprint", "split_fingerprint", "git", "versions",
                "times", "best_epoch", "protocol_tag"):
        assert key in rec
    assert json.loads(json.dumps(rec["config"]))["model"]["_target_"].endswith("LSTMRecommender")
    assert (results_dir / "leaderboard.md").read_text().count("| lstm |") == 1


def test_unknown_model_fails_with_one_clear_line_and_no_row(results_dir):
    proc = run_bench("model=lstn", *TINY, results_dir=results_dir)
    assert proc.returncode != 0
    assert "lstn" in proc.stderr and "Traceback" not in proc.stderr
    assert not (results_dir / "records").exists()


def test_bad_override_names_the_key(results_dir):
    overrides = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    proc = run_bench("trainer.max_epochs=lots", *overrides, results_dir=results_dir)
    assert proc.returncode != 0
    assert "max_epochs" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_bench("+nonsense_key=1", "eval.no_such=3", *TINY, results_dir=results_dir)
    assert proc.returncode != 0 and "no_such" in proc.stderr
    assert not (results_dir / "records").exists()
