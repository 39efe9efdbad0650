"""Fault injection: kills, NaNs, Ctrl-C and concurrent writers never lose or duplicate a record.

Real `python -m bench` sweeps run in subprocesses; a small wrapper (HOOKS) patches one point of
the job to SIGKILL its own process there (data preparation, a training step, an evaluation
step, or halfway through writing the record file), so every phase is hit on purpose.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.leaderboard import rebuild
from bench.records import job_key, load_records, write_record
from tests.conftest import ROOT, TINY

# Runs `python -m bench` after patching one point of the job (env BENCH_FAULT=phase:job:step):
# `job` counts the jobs this process actually runs (resume skips don't count).
HOOKS = r"""
import os, signal, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import bench.records as records, bench.run as run, bench.training as training

phase, job_no, step = os.environ["BENCH_FAULT"].split(":")
job_no, step, jobs = int(job_no), int(step), [0]
def here(): return jobs[0] == job_no
def die(): os.kill(os.getpid(), signal.SIGKILL)

run_job = run._run_job
def counted(*args, **kwargs):
    jobs[0] += 1
    return run_job(*args, **kwargs)
run._run_job = counted

if phase == "data":
    prepare_data = run.prepare_data
    def dying_prepare(cfg):
        out = prepare_data(cfg)
        if here(): die()
        return out
    run.prepare_data = dying_prepare
elif phase in ("train", "eval", "mark"):
    name = "test_step" if phase == "eval" else "training_step"
    original = getattr(training.RecModule, name)
    def hooked(self, batch, batch_idx):
        if here() and batch_idx == step:
            if phase == "mark":  # tell the test that training is under way, then go on
                open(os.environ["BENCH_MARK"], "w").close()
            else:
                die()
        return original(self, batch, batch_idx)
    setattr(training.RecModule, name, hooked)
elif phase == "record":
    atomic_write = records.atomic_write
    def half_write(path, write):
        if here() and path.suffix == ".json" and path.parent.name == "records":
            def half(tmp):
                write(tmp)
                tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
                die()
            return atomic_write(path, half)
        return atomic_write(path, write)
    records.atomic_write = half_write

from bench.main import main
sys.argv = ["bench", *sys.argv[1:]]
main()
"""

SWEEP = ["model=mf,pop", "seed=0,1", "eval.batch_size=16", *TINY]  # 4 jobs, mf first


def bench(args: list[str], results_dir: Path, fault: str | None = None,
          extra_env: dict | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", **(extra_env or {})}
    if fault:
        env["BENCH_FAULT"] = fault
    code = ["-c", HOOKS] if fault else ["-m", "bench"]
    overrides = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    cmd = [sys.executable, *code, *overrides, f"results_dir={results_dir}", *flags]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: int = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def check_intact(results_dir: Path) -> tuple[dict, int]:
    """Records parse and the view lists only real records, once each. Returns the records by
    run id and how many finished records repeat a job (config hash, seed): must stay 0."""
    recs = load_records(results_dir)
    finished = [r for r in recs if r["status"] == "finished"]
    duplicates = sum(n - 1 for n in Counter(job_key(r) for r in finished).values())
    view = results_dir / "leaderboard.csv"
    if view.exists():
        board = pd.read_csv(view)
        assert board["run_id"].is_unique
        assert set(board["run_id"]) <= {r["run_id"] for r in finished}
    return {r["run_id"]: r for r in recs}, duplicates


def report(name: str, **figures) -> None:
    print(f"\n[{name}] " + " ".join(f"{k}={v}" for k, v in figures.items()))


def test_kill_9_in_every_phase_loses_nothing_and_resume_finishes_only_the_missing(results_dir):
    rng = random.Random(6)
    # (phase, which job of this process, which step): one SIGKILL per process, then a clean run.
    plan = [("data", 2, 0), ("train", 1, rng.randrange(2)), ("eval", 1, rng.randrange(3)),
            ("record", 1, 0), (None, 0, 0)]
    seen: dict[str, dict] = {}
    killed = lost = duplicates = 0
    for phase, job, step in plan:
        args = [*SWEEP, "-m"] if not seen else [*SWEEP, "resume=true", "-m"]
        rc, err = finish(bench(args, results_dir, f"{phase}:{job}:{step}" if phase else None))
        if phase:
            assert rc == -signal.SIGKILL, err[-2000:]
            killed += 1
        else:
            assert rc == 0, err[-2000:]
        now, dups = check_intact(results_dir)
        lost, duplicates = lost + len(set(seen) - set(now)), duplicates + dups
        if phase == "record":  # the half-written temporary file exists and is never read
            assert list((results_dir / "records").glob(".*.json.*.tmp"))
        seen = now
    report("kill -9 by phase", cases=len(plan), killed=killed, lost=lost, duplicates=duplicates)
    assert lost == 0 and duplicates == 0 and killed == 4
    finished = [r for r in seen.values() if r["status"] == "finished"]
    assert sorted((r["model"], r["seed"]) for r in finished) == [
        ("mf", 0), ("mf", 1), ("pop", 0), ("pop", 1)]
    assert not [r for r in seen.values() if r["status"] != "finished"]
    assert err.count("skipped") == 1  # the last run skipped mf/0 and ran the three missing
    board = pd.read_csv(results_dir / "leaderboard.csv")
    assert sorted(board["run_id"]) == sorted(r["run_id"] for r in finished)

    import torch  # checkpoints are plain tensors: they load without unpickling objects

    ckpt = next(r["checkpoint"] for r in finished if r["model"] == "mf")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert any(k.startswith("model.") for k in state["state_dict"])


def test_kill_9_at_random_times_then_resume(results_dir):
    rng = random.Random(9)
    seen: dict[str, dict] = {}
    killed = lost = duplicates = 0
    for _ in range(1):  # the phase test above kills on purpose; this one at a random moment
        proc = bench([*SWEEP, "resume=true", "-m"], results_dir, start_new_session=True)
        # a random moment after the first record lands (startup time varies with load)
        while not list(results_dir.glob("records/*.json")) and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed += 1
        finish(proc)
        now, dups = check_intact(results_dir)
        lost, duplicates = lost + len(set(seen) - set(now)), duplicates + dups
        seen = now
    rc, err = finish(bench([*SWEEP, "resume=true", "-m"], results_dir))
    assert rc == 0, err[-2000:]
    now, dups = check_intact(results_dir)
    lost, duplicates = lost + len(set(seen) - set(now)), duplicates + dups
    done_before = sum(r["status"] == "finished" for r in seen.values())
    assert err.count("skipped") == done_before  # only the missing jobs ran
    report("kill -9 at a random time", killed=killed, finished_before_kill=done_before,
           lost=lost, duplicates=duplicates)
    assert lost == 0 and duplicates == 0 and killed >= 1
    assert sorted((r["model"], r["seed"]) for r in now.values()) == [
        ("mf", 0), ("mf", 1), ("pop", 0), ("pop", 1)]


def test_nan_loss_writes_a_failed_record_and_the_sweep_goes_on(results_dir):
    args = ["model=mf", "model.train.lr=1e30,0.005", *TINY, "-m"]
    rc, err = finish(bench(args, results_dir))
    assert rc == 0, err[-2000:]
    assert "Traceback" not in err
    recs = load_records(results_dir)
    failed = [r for r in recs if r["status"] == "failed"]
    assert len(failed) == 1 and len(recs) == 2
    assert failed[0]["phase"] == "train"
    assert "NonFiniteLoss" in failed[0]["error"]
    assert "epoch 0" in failed[0]["error"] and "step " in failed[0]["error"]
    assert failed[0]["config"]["model"]["train"]["lr"] == 1e30
    assert pd.read_csv(results_dir / "leaderboard.csv")["run_id"].tolist() == [
        r["run_id"] for r in recs if r["status"] == "finished"]
    failures = pd.read_csv(results_dir / "leaderboard.failed.csv")
    assert failures["run_id"].tolist() == [failed[0]["run_id"]]
    assert "Failed runs" in (results_dir / "leaderboard.md").read_text()

    # resume reruns the failed job (it fails again: lr is still 1e30) and skips the finished one
    rc, err = finish(bench([*args[:-1], "resume=true", "-m"], results_dir))
    assert rc == 0 and err.count("skipped") == 1
    statuses = Counter(r["status"] for r in load_records(results_dir))
    assert statuses == {"failed": 2, "finished": 1}


def test_ctrl_c_ends_the_sweep_cleanly(results_dir, tmp_path):
    mark = tmp_path / "training"
    # ++: mf's own epoch cap (model.train.max_epochs) would otherwise end its training first
    args = ["model=mf,pop", *TINY, "trainer.max_epochs=1000", "trainer.patience=1000",
            "++model.train.max_epochs=1000", "-m"]
    # the hook touches `mark` at the first training step
    proc = bench(args, results_dir, "mark:1:0", {"BENCH_MARK": str(mark)},
                 start_new_session=True)
    deadline = time.time() + 120
    while not mark.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert mark.exists(), "training never started"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
    rc, err = finish(proc, timeout=60)
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    assert load_records(results_dir) == []  # no partial record; pop never started
    assert not list(results_dir.glob("records/*.tmp"))


def _write_many(args: tuple) -> None:
    results_dir, worker, n, barrier = args
    barrier.wait()  # everybody finishes at once
    for i in range(n):
        record = {"run_id": f"w{worker:02d}-{i:03d}", "status": "finished",
                  "dataset": "synthetic", "protocol_tag": "loo", "model": f"m{i % 5}",
                  "seed": worker, "config_hash": f"h{i:03d}", "times": {"train_s": 0.1},
                  "metrics": {"test": {"ndcg@10": (worker * n + i) / 1000}}}
        users = np.arange(20)
        write_record(results_dir, record, (users, {"ndcg@10": users / 20}))
        if i % 5 == 4:  # a job rebuilds the views after its record; every 5th keeps it quick
            rebuild(results_dir)


def test_many_writers_finishing_at_once_each_record_appears_once(results_dir):
    workers, per_worker = 8, 25
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_write_many, args=((results_dir, w, per_worker, barrier),))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers
    recs = load_records(results_dir)
    report("concurrent writers", writers=workers, records=len(recs),
           lost=workers * per_worker - len({r["run_id"] for r in recs}),
           duplicates=len(recs) - len({r["run_id"] for r in recs}))
    assert len(recs) == workers * per_worker == len({r["run_id"] for r in recs})
    board = pd.read_csv(results_dir / "leaderboard.csv")
    assert len(board) == workers * per_worker and board["run_id"].is_unique
    assert not list((results_dir / "records").glob("*.tmp"))


def test_half_written_temp_file_is_never_read(results_dir):
    record = {"run_id": "r1", "status": "finished", "dataset": "d", "protocol_tag": "loo",
              "model": "m", "seed": 0, "config_hash": "h", "times": {},
              "metrics": {"test": {"ndcg@10": 0.5}}}
    write_record(results_dir, record)
    folder = results_dir / "records"
    text = (folder / "r1.json").read_text().replace('"r1"', '"r2"')
    (folder / ".r2.json.abc123.tmp").write_text(text[: len(text) // 2])
    assert [r["run_id"] for r in load_records(results_dir)] == ["r1"]
    assert rebuild(results_dir)["run_id"].tolist() == ["r1"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
