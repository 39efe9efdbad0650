"""Paired significance over stored per-user vectors: the statistics, and two real runs."""

import numpy as np
import pytest
from scipy import stats

from bench.errors import BenchError
from bench.records import load_per_user, load_records
from bench.significance import (
    align,
    bootstrap_ci,
    comparable,
    compare_runs,
    compare_to_baseline,
    holm,
    p_ttest,
    p_wilcoxon,
)
from tests.conftest import TINY, run_bench


def test_holm_matches_the_step_down_rule():
    # Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]
    assert holm([]).tolist() == []


def test_paired_tests_pair_by_user_and_see_a_shift():
    rng = np.random.default_rng(0)
    a = rng.random(300)
    b = a - 0.05 + rng.normal(0, 0.1, 300)
    assert p_ttest(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert p_ttest(a, b) < 1e-6 and p_wilcoxon(a, b) < 1e-6
    # Unpaired noise of the same size: no effect.
    c = a + rng.normal(0, 0.1, 300)
    assert p_wilcoxon(a, c) > 0.01 and p_ttest(a, c) > 0.01
    assert p_wilcoxon(a, a) == 1.0 and p_ttest(a, a) == 1.0


def test_align_orders_by_user_and_refuses_different_users():
    users, x, y = align(np.array([3, 1, 2]), np.array([0.3, 0.1, 0.2]),
                        np.array([2, 3, 1]), np.array([20.0, 30.0, 10.0]))
    assert users.tolist() == [1, 2, 3]
    assert x.tolist() == [0.1, 0.2, 0.3] and y.tolist() == [10.0, 20.0, 30.0]
    with pytest.raises(BenchError, match="different users"):
        align(np.array([1, 2]), np.zeros(2), np.array([1, 3]), np.zeros(2))


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_more_users():
    rng = np.random.default_rng(1)
    small, large = rng.random(100), rng.random(10_000)
    lo_s, hi_s = bootstrap_ci(small, seed=3)
    lo_l, hi_l = bootstrap_ci(large, seed=3)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5  # ~ 1/sqrt(n): 10x narrower
    # 95% interval of a uniform mean over n users ~ mean +- 1.96 * 0.2887 / sqrt(n).
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * 0.2887 / 100, rel=0.15)
    assert bootstrap_ci(small, seed=3) == (lo_s, hi_s)


def test_two_models_on_one_split_get_a_p_value_from_their_stored_vectors(results_dir):
    proc = run_bench("model=pop,mf", "-m", *TINY, results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["model"]: r for r in load_records(results_dir) if r["status"] == "finished"}
    pop, mf = records["pop"], records["mf"]
    result = compare_runs(results_dir, mf, pop, "ndcg@10")
    assert result["n_users"] == mf["n_eval_users"]["test"] > 50
    assert 0.0 <= result["p_wilcoxon"] <= 1.0 and 0.0 <= result["p_ttest"] <= 1.0
    assert result["mean_a"] == pytest.approx(mf["metrics"]["test"]["ndcg@10"])
    assert result["mean_b"] == pytest.approx(pop["metrics"]["test"]["ndcg@10"])
    assert result["ci_low"] <= result["diff"] <= result["ci_high"]
    # The same numbers straight from the stored vectors, paired by user id.
    users_a, va = load_per_user(results_dir, mf)
    users_b, vb = load_per_user(results_dir, pop)
    _, x, y = align(users_a, va["ndcg@10"], users_b, vb["ndcg@10"])
    assert result["p_ttest"] == pytest.approx(stats.ttest_rel(x, y).pvalue)
    assert result["p_wilcoxon"] == pytest.approx(stats.wilcoxon(x - y).pvalue)
    # A run against itself: no difference at all.
    same = compare_runs(results_dir, pop, pop, "hit@10")
    assert same["diff"] == 0 and same["p_wilcoxon"] == 1.0
    rows = compare_to_baseline(results_dir, pop, [mf, pop], "ndcg@10")
    assert [r["p_holm"] for r in rows] == pytest.approx(
        holm([result["p_wilcoxon"], 1.0]).tolist())


def test_runs_on_different_protocols_are_never_paired():
    a = {"run_id": "a", "dataset": "d", "protocol_tag": "loo|full", "split_fingerprint": "s"}
    comparable(a, dict(a, run_id="b"))
    with pytest.raises(BenchError, match="protocol_tag"):
        comparable(a, dict(a, run_id="b", protocol_tag="loo|sampled100"))
    with pytest.raises(BenchError, match="split_fingerprint"):
        comparable(a, dict(a, run_id="b", split_fingerprint="t"))
