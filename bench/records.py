"""Run records: one immutable, self-describing JSON file per finished (or failed) job.

A record is written to a temporary name and renamed, so a reader sees it whole or not at
all. Per-user metric vectors go to a sidecar `.npz` written before the record that names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

# Keys that do not change what a run computes: excluded from the config hash.
NON_SEMANTIC_KEYS = ("seed", "results_dir", "quiet", "logger", "threads", "resume", "hydra")
# Where a dataset's files lie is not what they hold (dataset_fingerprint covers that): the same
# data moved to another path keeps its config hash, so seeds still group and resume matches.
NON_SEMANTIC_DATASET_KEYS = ("root", "cache_dir")
PACKAGES = ("recbench", "torch", "pytorch-lightning", "hydra-core", "pandas", "numpy")


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)`, then rename onto `path` (atomic on one filesystem)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:  # on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def config_hash(config: dict) -> str:
    semantic = {k: v for k, v in config.items() if k not in NON_SEMANTIC_KEYS}
    if isinstance(semantic.get("dataset"), dict):
        semantic["dataset"] = {k: v for k, v in semantic["dataset"].items()
                               if k not in NON_SEMANTIC_DATASET_KEYS}
    blob = json.dumps(semantic, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def protocol_tag(protocol: dict) -> str:
    """A short, readable key: rows with different tags are never ranked against each other."""
    parts = [protocol["split"]]
    parts += [f"{k.split('.', 1)[1]}={v}" for k, v in sorted(protocol.items())
              if k.startswith("split.")]
    if not protocol.get("temporal", protocol["split"] == "temporal"):
        parts.append("non-temporal")  # per-user cuts: train can be later than others' tests
    flt = protocol.get("filter") or {}
    parts += [f"{k}={v}" for k, v in sorted(flt.items())
              if v not in (None, 0) and k != "implicit_threshold"]
    threshold = flt.get("implicit_threshold")
    parts.append("implicit=all" if threshold is None else f"implicit>={threshold}")
    parts.append(protocol.get("candidates", "full"))
    parts.append(f"mask={protocol.get('mask', 'seen')}")
    return "|".join(str(p) for p in parts)


def git_state(root: Path | None = None) -> dict:
    """The commit of the checkout and whether tracked files differ from it. Changes under
    `results/` do not count: a sweep rewrites the committed reference views there itself, and
    they are outputs, not the code that produced the record."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout
        return {"commit": commit or None, "dirty": bool(dirty.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict:
    import torch

    return {
        "machine": platform.machine(),
        "cpu": _cpu_model() or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
    }


def _cpu_model() -> str | None:
    """The CPU's marketing name on Linux (platform.processor() there is just the arch)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def records_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "records"


def write_record(results_dir: str | Path, record: dict,
                 per_user: tuple[np.ndarray, dict[str, np.ndarray]] | None = None) -> Path:
    folder = records_dir(results_dir)
    run_id = record["run_id"]
    if per_user is not None:
        users, vectors = per_user
        sidecar = folder / f"{run_id}.npz"
        atomic_write(sidecar, lambda tmp: _save_npz(tmp, users, vectors))
        record["per_user_file"] = sidecar.name
    path = folder / f"{run_id}.json"
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=str))
    return path


def _save_npz(tmp: Path, users: np.ndarray, vectors: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
        np.savez_compressed(fh, users=users, **{k.replace("@", "_at_"): v
                                                for k, v in vectors.items()})


def load_per_user(results_dir: str | Path, record: dict) -> tuple[np.ndarray, dict]:
    """Per-user vectors of a record, keyed by metric name, aligned with the raw user ids."""
    with np.load(records_dir(results_dir) / record["per_user_file"], allow_pickle=False) as z:
        users = z["users"]
        vectors = {k.replace("_at_", "@"): z[k] for k in z.files if k != "users"}
    return users, vectors


def load_records(results_dir: str | Path) -> list[dict]:
    """All complete records; temporary files of interrupted writers are never read."""
    out = []
    for path in sorted(records_dir(results_dir).glob("*.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue  # not one of ours: records are only ever renamed into place whole
    return out


# A writer finishes its temp file, or its sidecar-then-record pair, within seconds; leftovers
# older than this belong to a writer that was killed.
ORPHAN_AGE_S = 3600.0


def prune_orphans(results_dir: str | Path, older_than_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Delete what killed writers left in records/: temp files, and per-user sidecars whose
    record never landed, once older than `older_than_s`. Returns the deleted paths."""
    folder, cutoff = records_dir(results_dir), time.time() - older_than_s
    candidates = [*folder.glob(".*.tmp"),
                  *(p for p in folder.glob("*.npz") if not p.with_suffix(".json").exists())]
    deleted = []
    for path in candidates:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                deleted.append(path)
        except FileNotFoundError:
            continue  # renamed into place or removed meanwhile
    return deleted


def is_done(record: dict) -> bool:
    return record.get("status") == "finished"


def job_key(record: dict) -> tuple[str, int]:
    """What makes two records the same job: the semantic config and the seed."""
    return record["config_hash"], int(record["seed"])


def finished_record(results_dir: str | Path, chash: str, seed: int) -> dict | None:
    """The latest finished record of (config hash, seed), if any: what `resume` skips."""
    done = [r for r in load_records(results_dir)
            if is_done(r) and job_key(r) == (chash, int(seed))]
    return max(done, key=lambda r: r["run_id"]) if done else None


def unresolved_failures(records: list[dict]) -> list[dict]:
    """Failed records whose job has not finished since (a resumed rerun supersedes them)."""
    finished = {job_key(r) for r in records if is_done(r)}
    return [r for r in records if r.get("status") == "failed" and job_key(r) not in finished]
