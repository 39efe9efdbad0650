"""Records: atomic, immutable, and the keys `resume` and the views rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.records import (
    NON_SEMANTIC_KEYS,
    atomic_write,
    atomic_write_text,
    config_hash,
    finished_record,
    load_records,
    unresolved_failures,
    write_record,
)
from tests.conftest import TINY, compose


def record(run_id: str, status: str = "finished", chash: str = "h1", seed: int = 0) -> dict:
    return {"run_id": run_id, "status": status, "config_hash": chash, "seed": seed,
            "dataset": "d", "model": "m", "protocol_tag": "loo", "times": {},
            "metrics": {"test": {"ndcg@10": 0.1}}}


def test_config_hash_ignores_what_does_not_change_the_result():
    base = {"model": {"dim": 8}, "seed": 0, "results_dir": "a", "quiet": False,
            "threads": 1, "resume": False, "logger": {"_target_": "x"}}
    same = {**base, "seed": 3, "results_dir": "b", "quiet": True, "threads": 2,
            "resume": True, "logger": None}
    assert config_hash(base) == config_hash(same)
    assert config_hash(base) != config_hash({**base, "model": {"dim": 16}})
    assert {"seed", "resume", "results_dir"} <= set(NON_SEMANTIC_KEYS)
    here = {**base, "dataset": {"name": "ml100k", "root": "/a/ml-100k", "cache_dir": None}}
    moved = {**base, "dataset": {"name": "ml100k", "root": "../b/ml-100k", "cache_dir": "/c"}}
    assert config_hash(here) == config_hash(moved)  # the data's fingerprint says what it is
    assert config_hash(here) != config_hash({**here, "dataset": {"name": "ml1m", "root": None}})


def test_resume_key_of_a_composed_config_is_seed_free():
    from omegaconf import OmegaConf

    hashes = {config_hash(OmegaConf.to_container(compose("model=mf", f"seed={s}", *TINY, r),
                                                 resolve=True))
              for s in (0, 1) for r in ("resume=true", "resume=false")}
    assert len(hashes) == 1
    other = compose("model=mf", "model.embedding_dim=8", *TINY)
    assert config_hash(OmegaConf.to_container(other, resolve=True)) not in hashes


def test_finished_record_is_what_resume_skips_and_failures_are_rerun(tmp_path: Path):
    write_record(tmp_path, record("20260101T000000-aaaa", status="failed"))
    assert finished_record(tmp_path, "h1", 0) is None  # only failed: rerun it
    write_record(tmp_path, record("20260101T000001-bbbb"))
    write_record(tmp_path, record("20260101T000002-cccc"))
    assert finished_record(tmp_path, "h1", 0)["run_id"] == "20260101T000002-cccc"
    assert finished_record(tmp_path, "h1", 1) is None  # another seed is another job
    assert finished_record(tmp_path, "h2", 0) is None


def test_a_failure_is_resolved_once_its_job_finishes():
    failed = record("r1", status="failed")
    other = record("r2", status="failed", seed=1)
    assert unresolved_failures([failed, other]) == [failed, other]
    assert unresolved_failures([failed, other, record("r3")]) == [other]


def test_a_failing_writer_leaves_neither_temp_nor_target(tmp_path: Path):
    target = tmp_path / "records" / "x.json"

    def broken(tmp: Path) -> None:
        tmp.write_text('{"half": ')
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert list(target.parent.iterdir()) == []
    atomic_write_text(target, '{"whole": 1}')
    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_text() == '{"whole": 1}'  # the old version stays whole
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_records_round_trip_with_their_per_user_vectors(tmp_path: Path):
    import numpy as np

    from bench.records import load_per_user

    users = np.array(["u3", "u1", "u2"])
    write_record(tmp_path, record("r1"), (users, {"ndcg@10": np.array([0.5, 0.0, 1.0])}))
    (loaded,) = load_records(tmp_path)
    got_users, vectors = load_per_user(tmp_path, loaded)
    assert got_users.tolist() == ["u3", "u1", "u2"]
    assert vectors["ndcg@10"].tolist() == [0.5, 0.0, 1.0]


def test_git_state_is_dirty_for_changed_code_but_not_for_rewritten_results(tmp_path):
    import subprocess

    from bench.records import git_state

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "bench").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "bench" / "model.py").write_text("x = 1\n")
    (tmp_path / "results" / "leaderboard.md").write_text("| a |\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    clean = git_state(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "results" / "leaderboard.md").write_text("| b |\n")  # a sweep's own views
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "bench" / "model.py").write_text("x = 2\n")
    assert git_state(tmp_path)["dirty"] is True


def test_rebuild_deletes_what_killed_writers_left_but_not_live_or_complete_files(tmp_path):
    import os
    import time

    from bench.leaderboard import rebuild
    from bench.records import write_record

    folder = tmp_path / "records"
    folder.mkdir()
    record = {"run_id": "r1", "status": "failed", "config_hash": "h", "seed": 0,
              "model": "m", "dataset": "d", "protocol_tag": "p", "error": "x", "phase": "fit"}
    write_record(tmp_path, record)
    old_tmp, live_tmp = folder / ".r2.json.abc.tmp", folder / ".r3.json.def.tmp"
    orphan, kept_sidecar = folder / "r4.npz", folder / "r1.npz"
    for path in (old_tmp, live_tmp, orphan, kept_sidecar):
        path.write_bytes(b"x")
    hours_ago = time.time() - 2 * 3600
    for path in (old_tmp, orphan, kept_sidecar):
        os.utime(path, (hours_ago, hours_ago))
    rebuild(tmp_path)
    assert not old_tmp.exists() and not orphan.exists()  # a killed writer's leftovers
    assert live_tmp.exists()  # young: a writer may still be renaming it into place
    assert kept_sidecar.exists() and (folder / "r1.json").exists()  # its record landed
