"""The evaluator's metrics: checked against trec_eval (pytrec_eval), against hand-computed
numbers, and for independence from the user batch size and the number of item chunks."""

import math

import numpy as np
import pytest
import torch

from bench.evaluation import (
    MetricAccumulator,
    evaluate,
    gini,
    rank_metrics,
    rank_top_k,
    score_all_in_chunks,
    top_k,
)

pytrec_eval = pytest.importorskip("pytrec_eval")

KS = [1, 3, 5, 10, 60]  # 60 is larger than every catalog below


def pairs(rows_items: dict[int, list[int]]) -> torch.Tensor:
    rows = [r for r, items in rows_items.items() for _ in items]
    items = [i for its in rows_items.values() for i in its]
    return torch.tensor([rows, items], dtype=torch.long).reshape(2, -1)


def random_case(rng: np.random.Generator, n_users: int = 40):
    """Integer scores from a handful of values (many ties), random seen items, 0-6 targets per
    user (some users have none; some targets are also seen, so unreachable)."""
    n_items = int(rng.integers(4, 45))
    scores = torch.tensor(rng.integers(0, 6, (n_users, n_items)), dtype=torch.float32)
    seen, targets = {}, {}
    for u in range(n_users):
        seen[u] = sorted(rng.choice(n_items, int(rng.integers(0, n_items // 2 + 1)),
                                    replace=False).tolist())
        targets[u] = sorted(rng.choice(n_items, int(rng.integers(0, min(6, n_items) + 1)),
                                       replace=False).tolist())
    batch = {"users": torch.arange(n_users), "seen": pairs(seen), "targets": pairs(targets)}
    return scores, batch, seen, targets


def doc(item: int) -> str:
    # trec_eval breaks score ties by docno, descending: this naming makes that "item index
    # ascending", the evaluator's rule, so both rank every list identically.
    return f"d{999_999 - item:06d}"


def trec_reference(scores, seen, targets, ks):
    qrels = {f"u{u}": {doc(i): 1 for i in t} for u, t in targets.items() if t}
    run = {f"u{u}": {doc(i): float(scores[u, i]) for i in range(scores.shape[1])
                     if i not in seen[u]} for u in targets if targets[u]}
    cut = ",".join(map(str, ks))
    measures = {f"P.{cut}", f"recall.{cut}", f"ndcg_cut.{cut}", f"map_cut.{cut}",
                f"success.{cut}", "recip_rank"}
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def expected_from_trec(res: dict, n_rel: int, k: int) -> dict[str, float]:
    """trec_eval's numbers mapped to ours. Two documented differences: MAP@K divides by
    min(|R|, K), trec's map_cut by |R|; MRR@K is trec's reciprocal rank cut at K."""
    rr = res["recip_rank"]
    first_rank = round(1 / rr) if rr > 0 else math.inf
    return {
        f"precision@{k}": res[f"P_{k}"],
        f"recall@{k}": res[f"recall_{k}"],
        f"ndcg@{k}": res[f"ndcg_cut_{k}"],
        f"hit@{k}": res[f"success_{k}"],
        f"map@{k}": res[f"map_cut_{k}"] * n_rel / min(n_rel, k),
        f"mrr@{k}": rr if first_rank <= k else 0.0,
    }


@pytest.mark.parametrize("case_seed", range(12))
def test_metrics_equal_trec_eval_on_random_cases_with_ties(case_seed):
    rng = np.random.default_rng(case_seed)
    scores, batch, seen, targets = random_case(rng)
    ours, _ = rank_metrics(scores, batch, KS)
    trec = trec_reference(scores, seen, targets, KS)
    evaluated = [u for u in targets if targets[u]]
    assert len(ours["ndcg@10"]) == len(evaluated)  # users without a relevant item: no row
    checked = 0
    for row, u in enumerate(evaluated):
        res = trec.get(f"u{u}")
        for k in KS:
            if res is None:  # every item seen: nothing rankable, every metric is 0
                expected = dict.fromkeys(
                    (f"{m}@{k}" for m in ("precision", "recall", "ndcg", "hit", "map", "mrr")),
                    0.0)
            else:
                expected = expected_from_trec(res, len(targets[u]), k)
            for name, value in expected.items():
                assert ours[name][row].item() == pytest.approx(value, abs=1e-9), (u, name)
                checked += 1
    assert checked > 300


def test_ties_are_broken_by_item_index_even_across_the_cut():
    scores = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0, 3.0]])
    assert top_k(scores, 2).tolist() == [[1, 2]]
    assert top_k(scores, 5).tolist() == [[1, 2, 3, 5, 0]]


def test_hand_computed_user():
    # 6 items; item 2 already seen; relevant {0, 5, 3}; ranking (after masking) 1, 0, 5, 4, 3.
    scores = torch.tensor([[0.8, 0.9, 1.0, 0.1, 0.3, 0.5]])
    batch = {"users": torch.tensor([7]), "seen": pairs({0: [2]}), "targets": pairs({0: [0, 5, 3]})}
    before = scores.clone()
    m, top = rank_metrics(scores, batch, [3, 10])
    assert torch.equal(scores, before)  # masking never leaks into the caller's scores
    assert top.tolist() == [[1, 0, 5, 4, 3, -1, -1, -1, -1, -1]]
    log2 = math.log2
    assert m["hit@3"].item() == 1.0
    assert m["precision@3"].item() == pytest.approx(2 / 3, abs=1e-12)
    assert m["recall@3"].item() == pytest.approx(2 / 3, abs=1e-12)
    assert m["mrr@3"].item() == pytest.approx(1 / 2, abs=1e-12)
    assert m["ndcg@3"].item() == pytest.approx(
        (1 / log2(3) + 1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4)), abs=1e-12)
    assert m["map@3"].item() == pytest.approx((1 / 2 + 2 / 3) / 3, abs=1e-12)
    # K=10 > 5 rankable items: the empty slots never hit, but K stays Precision's denominator.
    assert m["precision@10"].item() == pytest.approx(3 / 10, abs=1e-12)
    assert m["recall@10"].item() == 1.0
    assert m["map@10"].item() == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 3, abs=1e-12)
    assert m["ndcg@10"].item() == pytest.approx(
        (1 / log2(3) + 1 / log2(4) + 1 / log2(6)) / (1 + 1 / log2(3) + 1 / log2(4)), abs=1e-12)


def test_map_denominator_is_min_of_relevant_and_k():
    # 4 relevant items, K=2, both top slots hit: MAP@2 = (1 + 1) / min(4, 2) = 1 (trec: 0.5).
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    batch = {"users": torch.tensor([0]), "seen": pairs({}),
             "targets": pairs({0: [0, 1, 2, 3]})}
    m, _ = rank_metrics(scores, batch, [2])
    assert m["map@2"].item() == 1.0 and m["recall@2"].item() == 0.5
    assert m["ndcg@2"].item() == pytest.approx(1.0, abs=1e-12)


def test_beyond_accuracy_figures():
    popularity = torch.tensor([10.0, 0.0, 4.0, 2.0])
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    batch = {"users": torch.tensor([0, 1, 2]), "seen": pairs({1: [0]}),
             "targets": pairs({0: [1], 1: [1], 2: [1]})}
    acc = MetricAccumulator([2], 4, popularity)
    acc.update(scores, batch)
    # Lists: [0, 1], [1, 2], [3, 2] -> exposure (1, 2, 2, 1).
    assert acc.exposure[2].tolist() == [1, 2, 2, 1]
    _, vectors = acc.per_user()
    assert vectors["avgpop@2"].tolist() == [5.0, 2.0, 3.0]
    summary = acc.summary()
    assert summary["avgpop@2"] == pytest.approx(10 / 3)
    assert summary["coverage@2"] == 1.0
    # Gini of (1, 1, 2, 2): sum (2j - 5) c_j / (4 * 6) = (-3 - 1 + 2 + 6) / 24.
    assert summary["gini@2"] == pytest.approx(4 / 24)
    assert gini(torch.tensor([0, 0, 0, 4])) == pytest.approx(3 / 4)
    assert gini(torch.tensor([5, 5, 5])) == 0.0


def test_nan_scores_are_an_error():
    from bench.errors import BenchError

    batch = {"users": torch.tensor([0]), "seen": pairs({}), "targets": pairs({0: [0]})}
    with pytest.raises(BenchError, match="NaN"):
        rank_metrics(torch.tensor([[0.1, float("nan")]]), batch, [1])


def slice_batch(batch: dict, rows: torch.Tensor) -> dict:
    """The sub-batch of `rows` (contiguous), with pair indices renumbered."""
    out = {"users": batch["users"][rows]}
    for key in ("seen", "targets", "candidates"):
        if key in batch:
            p = batch[key]
            inside = (p[0] >= rows[0]) & (p[0] <= rows[-1])
            out[key] = torch.stack([p[0][inside] - rows[0], p[1][inside]])
    return out


@pytest.mark.parametrize("case_seed", range(4))
def test_results_do_not_depend_on_user_batch_size_or_item_chunks(case_seed):
    rng = np.random.default_rng(100 + case_seed)
    scores, batch, _, _ = random_case(rng, n_users=50)
    n_items = scores.shape[1]
    reference = None
    for batch_size in (1, 7, 50):
        for chunk in (1, 3, n_items - 1, None):
            acc = MetricAccumulator(KS, n_items, torch.arange(n_items, dtype=torch.float32),
                                    item_chunk=chunk)
            for start in range(0, 50, batch_size):
                rows = torch.arange(start, min(start + batch_size, 50))
                acc.update(scores[rows], slice_batch(batch, rows))
            users, vectors = acc.per_user()
            got = (users.tolist(), {k: v.tolist() for k, v in vectors.items()}, acc.summary())
            if reference is None:
                reference = got
            assert got == reference, (batch_size, chunk)  # exactly equal, not approximately


class ChunkedMF(torch.nn.Module):
    """A scorer with `score_items`, so the evaluator streams the catalog in chunks."""

    def __init__(self, n_users, n_items, dim=8):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        # Rounded so that many scores tie exactly.
        self.users = torch.round(torch.randn(n_users, dim, generator=g))
        self.items = torch.round(torch.randn(n_items, dim, generator=g))

    def score_items(self, batch, start, stop):
        return self.users[batch["users"]] @ self.items[start:stop].T

    def score_all(self, batch):
        return score_all_in_chunks(lambda a, b: self.score_items(batch, a, b),
                                   len(batch["users"]), len(self.items), item_chunk=5)


def test_model_scored_in_item_chunks_matches_full_scoring():
    rng = np.random.default_rng(7)
    _, batch, _, _ = random_case(rng, n_users=30)
    n_items = int(batch["seen"][1].max().item()) + 1
    model = ChunkedMF(30, n_items)
    full = model.score_all(batch)
    assert torch.equal(full, model.users @ model.items.T)
    direct = MetricAccumulator(KS, n_items)
    direct.update(full, batch)
    for chunk in (2, 9, None):
        streamed = evaluate(model, [batch], KS, n_items, item_chunk=chunk)
        assert streamed.summary() == direct.summary()
    top_a = rank_top_k(lambda a, b: full[:, a:b], batch, n_items, 10)
    top_b = rank_top_k(lambda a, b: model.score_items(batch, a, b), batch, n_items, 10, 4)
    assert torch.equal(top_a, top_b)


def test_pipeline_metrics_do_not_depend_on_eval_batch_size():
    from bench.datasets.synthetic import Synthetic

    from bench.data import prepare, prepare_split

    raw = Synthetic(n_users=150, n_items=80, mean_length=12).load()
    split = prepare_split(raw, {"min_user_interactions": 3}, {"kind": "ratio",
                                                              "ratios": [0.6, 0.2, 0.2]})
    torch.manual_seed(0)
    model = ChunkedMF(split.n_users, split.n_items)
    results = []
    for batch_size, chunk in ((1000, None), (13, 7)):
        prep = prepare(split, max_len=10, eval_batch_size=batch_size)
        acc = evaluate(model, prep.stages["test"], [10, 20], prep.n_items, item_chunk=chunk)
        users, vectors = acc.per_user()
        results.append((users.tolist(), {k: v.tolist() for k, v in vectors.items()},
                        acc.summary()))
    assert results[0] == results[1]
    assert len(results[0][0]) > 100


def test_pipeline_batches_scored_in_chunks_equal_trec_eval():
    """The real path: data pipeline batches, a model's score_items in item chunks, per-user
    vectors aligned with users, against trec_eval on the same scores."""
    from bench.datasets.synthetic import Synthetic

    from bench.data import prepare, prepare_split

    raw = Synthetic(n_users=120, n_items=70, mean_length=10).load()
    split = prepare_split(raw, {"min_user_interactions": 3}, {"kind": "ratio",
                                                              "ratios": [0.5, 0.2, 0.3]})
    prep = prepare(split, max_len=10, eval_batch_size=32)
    model = ChunkedMF(split.n_users, split.n_items)
    acc = evaluate(model, prep.stages["test"], [5, 20], prep.n_items, item_chunk=16)
    users, ours = acc.per_user()
    row_of = {u: i for i, u in enumerate(users.tolist())}
    checked = 0
    for batch in prep.stages["test"]:
        scores = model.users[batch["users"]] @ model.items.T
        rows = range(len(batch["users"]))
        seen = {r: set(batch["seen"][1][batch["seen"][0] == r].tolist()) for r in rows}
        targets = {r: batch["targets"][1][batch["targets"][0] == r].tolist() for r in rows}
        trec = trec_reference(scores, seen, targets, [5, 20])
        for r in rows:
            res, row = trec[f"u{r}"], row_of[int(batch["users"][r])]
            for k in (5, 20):
                for name, value in expected_from_trec(res, len(targets[r]), k).items():
                    assert ours[name][row].item() == pytest.approx(value, abs=1e-9)
                    checked += 1
    assert checked == 12 * len(users) and len(users) > 100
