"""Leaderboard views rebuilt from records: filters, sorting, seed aggregation with CIs, best
rows, failures apart, provenance columns, CSV/Markdown/HTML."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import leaderboard
from bench.leaderboard import (
    aggregate,
    best_per_model,
    failures_frame,
    leaderboard_frame,
    mean_ci95,
    rebuild,
    select,
    sort_rows,
)
from bench.records import load_records, write_record

XHTML = "{http://www.w3.org/1999/xhtml}"
RUN_NUMBERS = itertools.count()


def make_record(results_dir: Path, model: str, seed: int, ndcg: float, *,
                dataset: str = "synthetic", protocol: str = "loo|full", status: str = "finished",
                sweep: str | None = "s1", per_user: np.ndarray | None = None,
                split_fingerprint: str = "sf", run_id: str | None = None) -> dict:
    """A record shaped like run_job's, with a per-user NDCG vector over users u0..u(n-1)."""
    run_id = run_id or f"20260101T0000{next(RUN_NUMBERS):02d}-{model}{seed}"
    rec = {
        "run_id": run_id, "status": status, "dataset": dataset, "model": model,
        "seed": seed, "protocol_tag": protocol, "sweep": sweep,
        "config_hash": f"{model}-{dataset}-{protocol}", "config": {"model": model},
        "git": {"commit": "abc123def4567890", "dirty": False},
        "versions": {"torch": "2.13.0", "pytorch-lightning": "2.6.6"},
        "hardware": {"cpu": "x86_64", "gpu": None, "torch_threads": 1},
        "times": {"data_s": 0.1, "train_s": 1.5, "eval_s": 0.2, "total_s": 1.9},
        "dataset_fingerprint": "df", "split_fingerprint": split_fingerprint,
    }
    if status == "finished":
        rec.update(metrics={"test": {"ndcg@10": ndcg, "hit@10": min(1.0, 2 * ndcg)},
                            "valid": {"ndcg@10": ndcg}},
                   best_epoch=2, epochs=3, n_parameters=1000,
                   validation_curve=[{"epoch": e, "ndcg@10": ndcg * (e + 1) / 3}
                                     for e in range(3)])
    else:
        rec.update(phase="train", error="NonFiniteLoss: training loss is nan at epoch 0, step 3")
    vectors = None
    if per_user is not None:
        users = np.array([f"u{i}" for i in range(len(per_user))])
        vectors = (users, {"ndcg@10": per_user, "hit@10": (per_user > 0).astype(float)})
    write_record(results_dir, rec, vectors)
    return rec


@pytest.fixture
def board(results_dir: Path) -> Path:
    for seed, (mf, pop) in enumerate([(0.1, 0.05), (0.2, 0.05), (0.3, 0.05)]):
        make_record(results_dir, "mf", seed, mf)
        make_record(results_dir, "pop", seed, pop)
    make_record(results_dir, "mf", 0, 0.9, protocol="ratio|full", sweep="s2")
    make_record(results_dir, "lstm", 0, 0.0, status="failed")
    return results_dir


def test_mean_and_95_ci_over_seeds_use_student_t():
    mean, half = mean_ci95([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert half == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    assert np.isnan(mean_ci95([0.4])[1]) and mean_ci95([0.4])[0] == 0.4


def test_views_group_seeds_and_never_rank_across_protocols(board: Path):
    frame = leaderboard_frame(load_records(board))
    assert len(frame) == 7  # the failed run is not a row
    summary = aggregate(frame)
    loo = summary[summary["protocol"] == "loo|full"]
    assert loo["model"].tolist() == ["mf", "pop"]  # ranked by mean NDCG@10
    mf = loo.iloc[0]
    assert mf["seeds"] == 3 and mf["ndcg@10"] == pytest.approx(0.2)
    assert mf["ndcg@10_ci95"] == pytest.approx(0.248414, rel=1e-4)
    assert loo.iloc[1]["ndcg@10_ci95"] == pytest.approx(0.0)
    ratio = summary[summary["protocol"] == "ratio|full"]
    assert ratio["model"].tolist() == ["mf"] and ratio.iloc[0]["seeds"] == 1


def test_filter_sort_and_best_row_per_model(board: Path):
    frame = leaderboard_frame(load_records(board))
    assert set(select(frame, model="pop")["model"]) == {"pop"}
    assert len(select(frame, model="mf,pop", protocol="loo|full")) == 6
    assert len(select(frame, sweep="s2")) == 1
    assert select(frame, dataset="ml-1m").empty
    asc = sort_rows(select(frame, model="mf", protocol="loo|full"), "ndcg@10", ascending=True)
    assert asc["ndcg@10"].tolist() == [0.1, 0.2, 0.3]
    best = best_per_model(frame)
    assert len(best) == 3  # mf and pop on loo, mf on ratio
    assert best[(best.model == "mf") & (best.protocol == "loo|full")]["ndcg@10"].item() == 0.3


def test_rebuild_writes_every_view_with_provenance_and_failures_apart(board: Path):
    rebuild(board)
    csv = pd.read_csv(board / "leaderboard.csv")
    for column in ("commit", "dirty", "config_hash", "dataset_fingerprint", "split_fingerprint",
                   "versions", "cpu", "threads", "data_s", "train_s", "eval_s", "epochs",
                   "n_parameters", "sweep"):
        assert column in csv, column
    assert csv["versions"].iloc[0] == "pl=2.6.6 torch=2.13.0"
    failed = pd.read_csv(board / "leaderboard.failed.csv")
    assert failed["model"].tolist() == ["lstm"] and "step 3" in failed["error"].item()
    md = (board / "leaderboard.md").read_text()
    assert "| mf | 3 | 0.2000 ± 0.2484 |" in md
    assert "## Failed runs" in md and "NonFiniteLoss" in md
    assert failures_frame(load_records(board))["phase"].tolist() == ["train"]


def test_cli_exports_the_filtered_view(board: Path, tmp_path: Path, capsys):
    out = tmp_path / "mf.csv"
    assert leaderboard.main([str(board), "--model", "mf", "--group", "--csv", str(out),
                             "--md", str(tmp_path / "mf.md")]) == 0
    grouped = pd.read_csv(out)
    assert grouped["model"].tolist() == ["mf", "mf"] and grouped["seeds"].tolist() == [3, 1]
    printed = capsys.readouterr().out
    assert "0.2000 ± 0.2484" in printed and "failed" not in printed  # lstm filtered out
    assert leaderboard.main([str(board), "--sort", "nope@3"]) == 2
    assert "nope@3" in capsys.readouterr().err


def test_html_report_is_well_formed_and_its_images_exist(board: Path, tmp_path: Path):
    page = tmp_path / "site" / "report.html"
    assert leaderboard.main([str(board), "--html", str(page)]) == 0
    root = ET.parse(page).getroot()  # well-formed XHTML or this raises
    images = [img.get("src") for img in root.iter(f"{XHTML}img")]
    assert len(images) == 4  # two protocols x (metric bars, validation curves)
    for src in images:
        data = (page.parent / src).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    text = ET.tostring(root, encoding="unicode")
    assert "0.2000 ± 0.2484" in text and "NonFiniteLoss" in text
    assert not list(page.parent.rglob("*.tmp"))
