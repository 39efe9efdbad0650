"""`python -m bench.recommend`: a trained run recommends like its evaluator ranked, and the
held-out rank agrees with the per-user metrics recorded at training time."""

import json
import math
import subprocess
import sys

import pytest
import torch

from bench.errors import BenchError
from bench.evaluation import rank_metrics
from bench.recommend import load_run, recommend
from bench.records import load_per_user, load_records
from tests.conftest import ROOT, TINY, run_bench


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny sweep: a sequence model, a user-id model and one with nothing to train."""
    results_dir = tmp_path_factory.mktemp("recommend") / "results"
    proc = run_bench("model=pop,mf,lstm", "-m", *TINY, results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["model"]: r for r in load_records(results_dir)}
    assert sorted(records) == ["lstm", "mf", "pop"]
    return results_dir, records


def _seen_raw(loaded, raw_user) -> set:
    frame, split = loaded.split.frame, loaded.split
    inner = int(list(split.user_ids).index(raw_user))
    known = frame[(frame["user"] == inner) & frame["fold"].isin(["train", "valid"])]
    return set(split.item_ids[known["item"].to_numpy()].tolist())


@pytest.mark.parametrize("model", ["lstm", "mf", "pop"])
def test_user_top_k_is_the_evaluators_list_and_held_out_rank_matches_the_record(trained, model):
    results_dir, records = trained
    record = records[model]
    loaded = load_run(record["run_id"], results_dir)
    users, recorded = load_per_user(results_dir, record)
    assert len(users) == record["n_eval_users"]["test"] > 50

    # The evaluator's own top-10 lists for the whole test stage, from the rebuilt model.
    evaluator_top = {}
    with torch.no_grad():
        for batch in loaded.prep.stages["test"].batches:
            _, top = rank_metrics(loaded.model.score_all(batch).clone(), batch, [10])
            for inner, row in zip(batch["users"].tolist(), top.tolist(), strict=True):
                evaluator_top[inner] = [i for i in row if i >= 0]

    user_ids = loaded.split.user_ids.tolist()
    for pos, raw_user in enumerate(users.tolist()):
        result = recommend(loaded, user=raw_user, k=10)
        items = [r["item"] for r in result["recommendations"]]
        expected = loaded.split.item_ids[evaluator_top[user_ids.index(raw_user)]].tolist()
        assert items == expected, raw_user
        seen = _seen_raw(loaded, raw_user)
        assert not set(items) & seen
        assert len(items) == min(10, loaded.split.n_items - len(seen))  # long users fill less
        (held,) = result["held_out"]  # leave-one-out: exactly one test item per user
        rank = held["rank"]
        hit = rank is not None and rank <= 10
        assert recorded["hit@10"][pos] == float(hit), (raw_user, rank)
        assert recorded["ndcg@10"][pos] == pytest.approx(1 / math.log2(rank + 1) if hit else 0)
        assert recorded["mrr@10"][pos] == pytest.approx(1 / rank if hit else 0)
        if hit:
            assert items[rank - 1] == held["item"]
    assert any(recorded["hit@10"]), "a tiny model should still hit some test items"


def test_history_gives_sequence_models_the_same_list_as_the_users_own_history(trained):
    results_dir, records = trained
    loaded = load_run(records["lstm"]["run_id"], results_dir)
    raw_user = loaded.split.user_ids[3].item()
    frame = loaded.split.frame
    known = frame[(frame["user"] == 3) & frame["fold"].isin(["train", "valid"])]
    history = loaded.split.item_ids[known["item"].to_numpy()].tolist()  # time order

    by_user = recommend(loaded, user=raw_user, k=5)
    by_history = recommend(loaded, history=history, k=5)
    assert by_history["recommendations"] == by_user["recommendations"]
    assert [h["item"] for h in by_history["history"]] == history[-loaded.prep.max_len:]

    # Order matters to a sequence model; masking uses the set.
    what_if = recommend(loaded, history=history[:2][::-1], k=8)
    assert not {r["item"] for r in what_if["recommendations"]} & set(history[:2])
    assert what_if["n_masked"] == 2 and what_if["held_out"] == []


def test_pop_takes_a_history_as_a_set_and_mf_refuses_a_cold_history(trained):
    results_dir, records = trained
    pop = load_run(records["pop"]["run_id"], results_dir)
    counts = pop.model.counts
    best = torch.argsort(-counts, stable=True)[:3].tolist()
    raw_best = pop.split.item_ids[best].tolist()
    result = recommend(pop, history=[raw_best[0]], k=2)
    assert [r["item"] for r in result["recommendations"]] == raw_best[1:3]
    assert [r["score"] for r in result["recommendations"]] == counts[best[1:3]].tolist()

    mf = load_run(records["mf"]["run_id"], results_dir)
    with pytest.raises(BenchError, match="learned user id.*pass user="):
        recommend(mf, history=raw_best, k=5)


def test_bad_input_is_one_clear_line(trained, tmp_path):
    results_dir, records = trained
    loaded = load_run(records["lstm"]["run_id"], results_dir)
    with pytest.raises(BenchError, match="user 'nobody' is not in dataset synthetic"):
        recommend(loaded, user="nobody")
    with pytest.raises(BenchError, match=r"item\(s\) \[99999\] are not in the catalog"):
        recommend(loaded, history=[1, 99999])
    with pytest.raises(BenchError, match="exactly one of user="):
        recommend(loaded)
    with pytest.raises(BenchError, match="0 records .* match|no records"):
        load_run("no-such-run", results_dir)

    # A record whose checkpoint is gone, and one whose data no longer matches its fingerprint.
    broken = tmp_path / "results"
    (broken / "records").mkdir(parents=True)
    gone = {**records["lstm"], "run_id": "gone", "checkpoint": str(tmp_path / "none.ckpt")}
    other = json.loads(json.dumps({**records["lstm"], "run_id": "other"}))
    other["config"]["dataset"]["n_users"] = 130
    for rec in (gone, other):
        (broken / "records" / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    with pytest.raises(BenchError, match="checkpoint .*none.ckpt of run gone does not exist"):
        load_run("gone", broken)
    with pytest.raises(BenchError, match="dataset_fingerprint .* the data or its pipeline changed"):
        load_run("other", broken)


def test_cli_by_run_directory_prints_the_table_and_json(trained):
    results_dir, records = trained
    record = records["lstm"]
    raw_user = load_per_user(results_dir, record)[0][0].item()
    readme = [sys.executable, "-m", "bench.recommend", f"run={record['run_id']}",
              f"user={raw_user}", "k=10", "explain=3", f"results_dir={results_dir}"]
    proc = subprocess.run(readme, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "history used: last 3 of" in proc.stdout and "top-10" in proc.stdout
    assert "held-out test item" in proc.stdout

    base = [sys.executable, "-m", "bench.recommend", f"run={record['output_dir']}",
            f"user={raw_user}", "k=5"]

    proc = subprocess.run([*base, "json=true"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    result = json.loads(proc.stdout)
    assert result["run_id"] == record["run_id"] and len(result["recommendations"]) == 5
    assert [r["rank"] for r in result["recommendations"]] == [1, 2, 3, 4, 5]

    proc = subprocess.run([*base[:3], f"run={record['run_id']}", "user=nobody",
                           f"results_dir={results_dir}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "user 'nobody' is not in dataset" in proc.stderr
