"""On the embedded default data the leaderboard orders models as the generator implies:
sequence model > collaborative model > popularity (the data has successors and taste clusters)."""

import pandas as pd

from tests.conftest import run_bench


def test_on_the_default_data_lstm_and_mf_beat_pop(results_dir):
    proc = run_bench("model=pop,mf,lstm", "quiet=true", "threads=1", "logger=none", "-m",
                     results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ndcg = pd.read_csv(results_dir / "leaderboard.csv").set_index("model")["ndcg@10"]
    assert ndcg["lstm"] > ndcg["mf"] > ndcg["pop"] > 0
