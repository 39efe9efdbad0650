"""`logger=wandb`, offline: the run folder holds the config, curves, final metrics and the
leaderboard table; the mode is decided without ever touching the network."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bench import callbacks
from bench.records import load_records
from tests.conftest import ROOT, TINY

SECRET = "0123456789abcdef-not-a-real-key"


def wandb_records(path: Path):
    """Decode a `.wandb` file: a LevelDB-style log (32 KiB blocks, 7-byte chunk headers) of
    protobuf Records after a 7-byte `:W&B` header. wandb 0.31 ships no Python reader."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a FULL chunk, or the LAST of FIRST/MIDDLE/LAST
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def test_offline_run_holds_config_curves_final_metrics_and_leaderboard(results_dir):
    overrides = [o for o in TINY if not o.startswith("logger=")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
           "WANDB_API_KEY": SECRET}
    proc = subprocess.run([sys.executable, "-m", "bench", "model=mf", "logger=wandb", *overrides,
                           "trainer.max_epochs=3", f"results_dir={results_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = load_records(results_dir)
    runs = list(Path(record["output_dir"]).glob("wandb/offline-run-*"))
    assert len(runs) == 1
    (log,) = runs[0].glob("run-*.wandb")

    history, summary, run = [], {}, None
    for r in wandb_records(log):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run = r.run
        elif kind == "history":
            history.append({_key(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            summary.update({_key(i): json.loads(i.value_json) for i in r.summary.update})
    assert run.display_name == "mf-synthetic-s0" and run.job_type == "mf"
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["model"]["_target_"].endswith("MatrixFactorization")
    assert "logger" not in config  # logger options may hold credentials

    train_loss = [h["train/loss"] for h in history if "train/loss" in h]
    val_curve = [h["val/ndcg@10"] for h in history if "val/ndcg@10" in h]
    assert len(train_loss) == record["epochs"] == 3 and len(val_curve) >= 3
    assert summary["final/test/ndcg@10"] == pytest.approx(record["metrics"]["test"]["ndcg@10"])
    assert summary["status"] == "finished" and summary["run_id"] == record["run_id"]

    table_path = runs[0] / "files" / summary["leaderboard/path"]
    table = json.loads(table_path.read_text())
    row = dict(zip(table["columns"], table["data"][0], strict=True))
    assert row["run_id"] == record["run_id"] and row["model"] == "mf"
    assert row["ndcg@10"] == pytest.approx(record["metrics"]["test"]["ndcg@10"])

    # the API key reaches neither the record, the views nor the run's W&B files
    for path in results_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".md", ".yaml", ".wandb", ".log"):
            assert SECRET not in path.read_text(errors="ignore"), path


def test_mode_is_decided_without_hanging(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    reached = []
    monkeypatch.setattr(callbacks, "_reachable", lambda host: reached.append(host) or False)
    assert callbacks.wandb_mode("auto") == "offline" and reached == []  # no login: no probe
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    assert callbacks.wandb_mode("auto") == "offline" and reached == ["api.wandb.ai"]
    monkeypatch.setattr(callbacks, "_reachable", lambda host: True)
    assert callbacks.wandb_mode("auto") == "online"
    assert callbacks.wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert callbacks.wandb_mode("online") == "offline"
