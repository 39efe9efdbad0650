"""Data-parallel training on CPU (2 processes, gloo): evaluation shards users over the ranks and
gathers them, so the recorded metrics equal a single-process evaluation of the same checkpoint."""

import numpy as np
import pytest
import torch

from bench.evaluation import evaluate
from bench.records import load_per_user, load_records
from bench.run import build_model, prepare_data
from bench.training import rows_of_rank
from tests.conftest import TINY, compose, run_bench

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def test_rows_of_rank_splits_users_and_renumbers_pairs():
    batch = {"users": torch.tensor([7, 8, 9]), "history": torch.arange(6).reshape(3, 2),
             "seen": torch.tensor([[0, 1, 2, 2], [5, 6, 7, 8]]),
             "targets": torch.tensor([[0, 1, 2], [1, 2, 3]])}
    first, second = rows_of_rank(batch, 0, 2), rows_of_rank(batch, 1, 2)
    assert first["users"].tolist() == [7] and second["users"].tolist() == [8, 9]
    assert second["history"].tolist() == [[2, 3], [4, 5]]
    assert second["seen"].tolist() == [[0, 1, 1], [6, 7, 8]]
    assert first["targets"].tolist() == [[0], [1]]


@pytest.mark.parametrize("n_rows", [7 * 16, 2 * 16, 16])
def test_rank_share_deals_one_epoch_order_out_evenly(monkeypatch, n_rows):
    import bench.training as training
    from bench.recommender import TrainBatches

    batches = TrainBatches({"rows": torch.arange(n_rows)}, batch_size=16)
    dealt = []
    for rank in (0, 1, 2):
        monkeypatch.setattr(training, "rank_and_world", lambda rank=rank: (rank, 3))
        dealt.append([b["rows"] for b in training.RankShare(batches, seed=5)])
    counts = {len(d) for d in dealt}
    assert counts == {-(-len(batches) // 3)}  # every rank steps equally often
    seen = torch.cat([b for d in dealt for b in d])
    assert set(seen.tolist()) == set(range(n_rows))  # one shared order: every row is trained
    assert len(seen) - n_rows == (counts.pop() * 3 - len(batches)) * 16  # padding only


@pytest.mark.slow
def test_ddp_metrics_equal_single_process_evaluation_of_its_checkpoint(results_dir):
    overrides = [*TINY, "model=lstm", "trainer.max_epochs=1"]
    proc = run_bench(*DDP, *overrides, results_dir=results_dir, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = load_records(results_dir)
    assert len(records) == 1  # both ranks finished, rank 0 alone wrote
    record = records[0]
    assert record["world_size"] == 2 and record["checkpoint"]

    cfg = compose(*overrides, f"results_dir={results_dir}")
    split, prep = prepare_data(cfg)
    model = build_model(cfg.model, prep)
    state = torch.load(record["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    single = evaluate(model, prep.stages["test"], sorted(cfg.eval.ks), prep.n_items,
                      prep.model_args()["item_popularity"])

    expected = single.summary()
    assert expected.keys() == record["metrics"]["test"].keys()
    for name, value in expected.items():
        assert record["metrics"]["test"][name] == pytest.approx(value, abs=1e-9), name
    users, vectors = single.per_user()
    raw_users, recorded = load_per_user(results_dir, record)
    assert np.array_equal(raw_users, split.user_ids[users.numpy()])
    np.testing.assert_allclose(recorded["ndcg@10"], vectors["ndcg@10"].numpy(), atol=1e-12)
    assert record["metrics"]["test"]["ndcg@10"] > 0
