"""Paired significance over per-user metric vectors (records store them, aligned by raw user id).

    p_wilcoxon(a, b)          Wilcoxon signed-rank test on the paired differences a - b
    p_ttest(a, b)             paired t-test
    holm(p_values)            Holm-Bonferroni adjusted p-values (family-wise error control)
    bootstrap_ci(values)      percentile bootstrap CI of the mean over users
    compare_runs(dir, a, b)   all of the above for two records on the same split
    compare_to_baseline(...)  one baseline against several runs, Holm-adjusted

Two runs are only compared when they share dataset, protocol tag and split fingerprint:
otherwise their users, targets or candidate sets differ and a pairing would be meaningless.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import BenchError


def align(users_a: np.ndarray, a: np.ndarray, users_b: np.ndarray, b: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair two per-user vectors by user id. Both runs must hold the same users (they do when
    they share the split); a mismatch raises instead of silently dropping users."""
    if len(np.unique(users_a)) != len(users_a) or len(np.unique(users_b)) != len(users_b):
        raise BenchError("per-user vectors hold a user twice; expected one value per user")
    if set(users_a.tolist()) != set(users_b.tolist()):
        raise BenchError(f"the two runs evaluated different users ({len(users_a)} vs "
                         f"{len(users_b)}); pair only runs on the same split")
    order_a, order_b = np.argsort(users_a, kind="stable"), np.argsort(users_b, kind="stable")
    return users_a[order_a], np.asarray(a, float)[order_a], np.asarray(b, float)[order_b]


def p_ttest(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value (1.0 when every difference is zero)."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2 or np.all(d == d[0]):
        return 1.0 if len(d) == 0 or d[0] == 0 else 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def p_wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value on a - b; zero differences are dropped
    (Wilcoxon's convention), so 1.0 when no user differs."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values: reject H_i at level alpha iff adjusted p_i <= alpha."""
    p = np.asarray(p_values, float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def bootstrap_ci(values: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over users (resampling users with
    replacement). Pass a - b to get the interval of a paired difference."""
    x = np.asarray(values, float)
    if len(x) == 0:
        raise BenchError("bootstrap_ci: no values")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    step = max(1, 2_000_000 // len(x))  # bounded memory: resample in blocks
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        means[start:stop] = x[rng.integers(0, len(x), (stop - start, len(x)))].mean(1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _vectors(results_dir: str | Path, record: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    from bench.records import load_per_user

    if not record.get("per_user_file"):
        raise BenchError(f"record {record.get('run_id')} has no per-user vectors")
    users, vectors = load_per_user(results_dir, record)
    if metric not in vectors:
        raise BenchError(f"record {record['run_id']} has no per-user {metric!r}; "
                         f"available: {sorted(vectors)}")
    return users, vectors[metric]


def comparable(a: dict, b: dict) -> None:
    """Raise unless the two records were evaluated on the same data, split and protocol."""
    for key in ("dataset", "protocol_tag", "dataset_fingerprint", "split_fingerprint"):
        if a.get(key) != b.get(key):
            raise BenchError(f"runs {a.get('run_id')} and {b.get('run_id')} differ in {key} "
                             f"({a.get(key)!r} vs {b.get(key)!r}); they cannot be paired")
    fp_a = (a.get("protocol") or {}).get("negatives_fingerprint")
    fp_b = (b.get("protocol") or {}).get("negatives_fingerprint")
    if fp_a != fp_b:
        raise BenchError(f"runs {a.get('run_id')} and {b.get('run_id')} ranked different "
                         "sampled negatives; they cannot be paired")


def compare_runs(results_dir: str | Path, a: dict, b: dict, metric: str = "ndcg@10",
                 confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Paired comparison of two finished records on one per-user metric (test stage)."""
    comparable(a, b)
    users, x, y = align(*_vectors(results_dir, a, metric), *_vectors(results_dir, b, metric))
    diff = x - y
    low, high = bootstrap_ci(diff, confidence, n_resamples, seed)
    return {
        "metric": metric, "run_a": a["run_id"], "run_b": b["run_id"],
        "model_a": a.get("model"), "model_b": b.get("model"), "n_users": len(users),
        "mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": float(diff.mean()),
        "ci_low": low, "ci_high": high, "confidence": confidence,
        "p_wilcoxon": p_wilcoxon(x, y), "p_ttest": p_ttest(x, y),
    }


def compare_to_baseline(results_dir: str | Path, baseline: dict, others: list[dict],
                        metric: str = "ndcg@10", test: str = "wilcoxon", **kwargs) -> list[dict]:
    """Each run against one baseline; `p_holm` adjusts the chosen test's p-values for the
    number of comparisons made."""
    if test not in ("wilcoxon", "ttest"):
        raise BenchError(f"test={test!r}; expected 'wilcoxon' or 'ttest'")
    rows = [compare_runs(results_dir, r, baseline, metric, **kwargs) for r in others]
    for row, adjusted in zip(rows, holm([r[f"p_{test}"] for r in rows]), strict=True):
        row["p_holm"] = float(adjusted)
        row["test"] = test
    return rows
