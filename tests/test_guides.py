"""The guides' code is real: their example model and dataset, written as plugins into a copy
of the project, run in a sweep; the no-code `table` path runs on the same log as a CSV."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.help import groups_text
from bench.records import load_records
from tests.conftest import ROOT

DOCS = ROOT / "docs"
# A file the guide asks you to create: an HTML comment naming it, then one fenced block.
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\s*```\w*\n(.*?)```", re.S)
BUDGET = ["trainer.max_epochs=2", "quiet=true", "threads=1", "logger=none"]


def guide_files(name: str) -> dict[str, str]:
    return dict(FILE_BLOCK.findall((DOCS / name).read_text(encoding="utf-8")))


def test_readme_links_every_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for guide in ("add-a-model", "add-a-dataset", "reading-a-leaderboard", "scaling-out"):
        assert (DOCS / f"{guide}.md").is_file()
        assert f"(docs/{guide}.md)" in readme, guide


def _plays(rng: np.random.Generator) -> pd.DataFrame:
    """80 listeners x 8-20 plays of 40 tracks; about a fifth are skips (< 30 s)."""
    rows, start = [], pd.Timestamp("2024-05-01T00:00:00Z")
    for u in range(80):
        when = start + pd.Timedelta(hours=int(rng.integers(0, 500)))
        for t in rng.choice(40, int(rng.integers(8, 21)), replace=False):
            when += pd.Timedelta(minutes=int(rng.integers(1, 300)))
            rows.append({"listener": f"u{u}", "track": f"t{t}", "title": f"song {t}",
                         "genre": f"g{t % 5}", "played_at": when.isoformat(),
                         "seconds": int(rng.choice([10, 200, 240, 180, 95]))})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project with the guides' plugins installed, and a listening log."""
    root = tmp_path_factory.mktemp("project")
    for folder in ("bench", "conf", "models", "datasets"):
        shutil.copytree(ROOT / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for guide in ("add-a-model.md", "add-a-dataset.md"):
        for path, text in guide_files(guide).items():
            assert not (ROOT / path).exists(), f"{path} is an example: it must not ship"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text, encoding="utf-8")
    plays = _plays(np.random.default_rng(0))
    plays.to_json(root / "listens.jsonl", orient="records", lines=True)
    plays.to_csv(root / "plays.csv", index=False)
    return root


def _bench(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(project), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline"}
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.run([sys.executable, "-m", "bench", *overrides, *flags], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)


def test_guides_name_their_example_files():
    assert sorted(guide_files("add-a-model.md")) == ["conf/model/recentmean.yaml",
                                                    "models/recentmean.py"]
    assert sorted(guide_files("add-a-dataset.md")) == ["conf/dataset/listens.yaml",
                                                      "datasets/listens.py"]


def test_example_model_and_dataset_run_in_a_sweep(project):
    listing = groups_text(project / "conf")  # what `--help` prints there (test_help runs it)
    assert re.search(r"\n +recentmean +mean embedding of the last few items", listing)
    assert re.search(r"\n +listens +a listening log in JSON lines", listing)

    results = project / "results"
    proc = _bench(project, "model=recentmean,pop", "dataset=listens",
                  f"dataset.path={project / 'listens.jsonl'}", *BUDGET,
                  f"results_dir={results}", "-m")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["model"]: r for r in load_records(results)}
    assert sorted(records) == ["pop", "recentmean"]
    assert all(r["status"] == "finished" and r["dataset"] == "listens" for r in records.values())

    # Skips (< 30 s) are dropped by the plugin, then users with < 3 plays by the shared filter.
    plays = _plays(np.random.default_rng(0))
    kept = plays[plays["seconds"] >= 30]
    kept = kept[kept.groupby("listener")["listener"].transform("size") >= 3]
    for record in records.values():
        assert record["data"]["n_interactions"] == len(kept)
        assert record["n_eval_users"]["test"] == kept["listener"].nunique()
        assert 0 <= record["metrics"]["test"]["ndcg@10"] <= 1
    model = records["recentmean"]
    assert model["checkpoint"] and model["epochs"] >= 1
    assert model["config"]["model"]["_target_"] == "bench.models.recentmean.RecentMean"


def test_no_code_table_dataset_and_a_saved_mapping(project):
    if not (project / "datasets" / "table.py").exists():
        pytest.skip("the table dataset plugin is not in this tree")
    guide = (DOCS / "add-a-dataset.md").read_text(encoding="utf-8")
    saved = re.search(r"```yaml\n# conf/dataset/plays.yaml\n(.*?)```", guide, re.S).group(1)
    (project / "conf" / "dataset" / "plays.yaml").write_text(saved, encoding="utf-8")
    results = project / "results_table"
    csv = project / "plays.csv"
    # The guide's command, then the saved mapping (two runs: Hydra composes a sweep's shared
    # overrides against the default dataset first, which has no `interactions` key).
    proc = _bench(project, "dataset=table", f"dataset.interactions={csv}",
                  "dataset.columns.user=listener", "dataset.columns.item=track",
                  "dataset.columns.timestamp=played_at", "model=pop", *BUDGET,
                  f"results_dir={results}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _bench(project, "dataset=plays", f"dataset.interactions={csv}", "model=pop", *BUDGET,
                  f"results_dir={results}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["dataset"]: r for r in load_records(results)}
    assert sorted(records) == ["plays", "table"]
    n_plays = len(pd.read_csv(csv))  # no skip filter here: every row is an interaction
    for record in records.values():
        assert record["status"] == "finished"
        assert record["data"]["n_interactions"] == n_plays
    assert records["plays"]["dataset_fingerprint"] == records["table"]["dataset_fingerprint"]
    assert json.loads(json.dumps(records["plays"]["config"]))["dataset"]["name"] == "plays"
