"""`python -m bench.compare A B`: deltas, paired p-values over users, Holm, marks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import compare
from bench.leaderboard import rebuild
from bench.significance import holm, p_wilcoxon
from tests.test_leaderboard import make_record

N_USERS = 200


@pytest.fixture
def before_after(tmp_path: Path) -> tuple[Path, Path, dict]:
    """mf improves for most users after the change, pop is unchanged, lstm moves by noise."""
    rng = np.random.default_rng(0)
    base = {m: rng.uniform(0, 0.5, N_USERS) for m in ("mf", "pop", "lstm")}
    noise = rng.normal(0, 0.05, N_USERS)
    after = {"mf": base["mf"] + rng.uniform(0.05, 0.15, N_USERS), "pop": base["pop"],
             "lstm": base["lstm"] + noise}
    a, b = tmp_path / "before", tmp_path / "after"
    for side, vectors in ((a, base), (b, after)):
        for model, v in vectors.items():
            for seed in (0, 1):  # identical seeds: the pooled vector is the vector itself
                make_record(side, model, seed, float(v.mean()), per_user=v)
        rebuild(side)
    return a, b, {"base": base, "after": after}


def test_deltas_p_values_and_holm(before_after):
    a, b, truth = before_after
    table = compare.compare(compare.load_side(a), compare.load_side(b), ("ndcg@10",))
    rows = table.set_index("model")
    assert set(rows.index) == {"mf", "pop", "lstm"}
    mf = rows.loc["mf"]
    assert mf["delta"] == pytest.approx(truth["after"]["mf"].mean() - truth["base"]["mf"].mean())
    assert mf["runs_a"] == 2 and mf["n_users"] == N_USERS
    expected = {m: p_wilcoxon(truth["after"][m], truth["base"][m]) for m in rows.index}
    for m in rows.index:
        assert rows.loc[m, "p"] == pytest.approx(expected[m])
    assert rows.loc["pop", "p"] == 1.0 and rows.loc["pop", "delta"] == 0.0
    adjusted = holm([rows.loc[m, "p"] for m in rows.index])
    assert rows["p_holm"].tolist() == pytest.approx(adjusted.tolist())
    assert mf["significant"] and compare.mark(mf) == "▲"
    assert not rows.loc["pop", "significant"] and compare.mark(rows.loc["pop"]) == "·"


def test_cli_prints_deltas_and_p_values(before_after, tmp_path, capsys):
    a, b, _ = before_after
    out = tmp_path / "cmp.csv"
    assert compare.main([str(a), str(b), "--metrics", "ndcg@10,hit@10", "--csv", str(out),
                         "--md", str(tmp_path / "cmp.md")]) == 0
    printed = capsys.readouterr().out
    assert "Δ B−A" in printed and "p Holm" in printed and "▲" in printed
    table = pd.read_csv(out)
    assert len(table) == 6 and table["p"].notna().all()  # 3 models x 2 metrics, all tested
    assert "Holm-adjusted over all 6 tests" in (tmp_path / "cmp.md").read_text()


def test_leaderboard_csv_without_records_gives_deltas_only(before_after, tmp_path):
    a, b, _ = before_after
    lonely = tmp_path / "elsewhere" / "old.csv"
    lonely.parent.mkdir()
    lonely.write_text((a / "leaderboard.csv").read_text())
    table = compare.compare(compare.load_side(lonely), compare.load_side(b / "leaderboard.csv"),
                            ("ndcg@10",))
    assert table["p"].isna().all() and (table["note"] == "no per-user vectors").all()
    assert table.set_index("model").loc["mf", "delta"] > 0.05
    # beside its records/, a leaderboard CSV is paired through them
    table = compare.compare(compare.load_side(a / "leaderboard.csv"),
                            compare.load_side(b / "records"), ("ndcg@10",))
    assert table["p"].notna().all()


def test_runs_on_different_splits_are_not_paired(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    v = np.linspace(0, 1, 50)
    make_record(a, "mf", 0, 0.5, per_user=v, split_fingerprint="one")
    make_record(b, "mf", 0, 0.6, per_user=v, split_fingerprint="two")
    table = compare.compare(compare.load_side(a), compare.load_side(b), ("ndcg@10",))
    assert np.isnan(table["p"].item()) and "split_fingerprint" in table["note"].item()
    assert compare.mark(table.iloc[0]) == "n/a"


def test_bad_inputs_fail_with_one_line(tmp_path, capsys):
    assert compare.main([str(tmp_path / "nowhere"), str(tmp_path)]) == 2
    assert "records/" in capsys.readouterr().err
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    (tmp_path / "records").mkdir()
    assert compare.main([str(bad), str(tmp_path)]) == 2
    assert "lacks columns" in capsys.readouterr().err
