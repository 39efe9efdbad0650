"""Tuned baselines with equal budgets: `python -m bench.tune --models mf lstm --trials 20`.

For each model: one Optuna study of exactly `--trials` trials over conf/search/<model>.yaml,
maximizing validation NDCG@10 (experiment=search; trial records land apart, under
<results_dir>/tuning, so they never enter the leaderboard); then the best trial's config is
re-run over `--seeds` and each re-run's record carries its budget:
`tuning: {sweeper, trials, best_value, objective, study}`.
Extra arguments after `--` are Hydra overrides for both stages (dataset, split, launcher...).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import yaml

from bench.errors import BenchError

SEARCH_DIR = Path(__file__).resolve().parent.parent / "conf" / "search"
OBJECTIVE = "valid/ndcg@10"


def bench_command(*overrides: str, multirun: bool = True) -> list[str]:
    return [sys.executable, "-m", "bench", *overrides, *(["-m"] if multirun else [])]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` exited with {proc.returncode}")


def study(model: str, trials: int, overrides: list[str], results_dir: Path) -> dict:
    """Run one Optuna study; returns its optimization_results (best_params, best_value)."""
    if not (SEARCH_DIR / f"{model}.yaml").exists():
        known = sorted(p.stem for p in SEARCH_DIR.glob("*.yaml"))
        raise BenchError(f"conf/search/{model}.yaml does not exist; models with a search "
                         f"space: {', '.join(known)}")
    study_dir = results_dir / "tuning" / model / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run(bench_command("experiment=search", f"model={model}", f"+search={model}",
                      f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.study_name={model}",
                      f"hydra.sweep.dir={study_dir}",
                      *overrides, f"results_dir={results_dir / 'tuning'}"))
    found = yaml.safe_load((study_dir / "optimization_results.yaml").read_text())
    return {**found, "study": str(study_dir)}


def rerun(model: str, best: dict, trials: int, seeds: list[int], overrides: list[str],
          results_dir: Path) -> None:
    """The best trial's config over several seeds, each record tagged with the budget."""
    tuning = (f"tuning={{sweeper:optuna,trials:{trials},best_value:{best['best_value']},"
              f"objective:'{OBJECTIVE}',study:'{best['study']}'}}")
    params = [f"{key}={value}" for key, value in best["best_params"].items()]
    run(bench_command(f"model={model}", *params, f"seed={','.join(map(str, seeds))}", tuning,
                      *overrides, f"results_dir={results_dir}"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--trials", type=int, default=20, help="trials per model (all equal)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds for the re-runs of each model's best config")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    overrides = [o for o in args.overrides if not o.startswith("results_dir=")]
    given = [o.split("=", 1)[1] for o in args.overrides if o.startswith("results_dir=")]
    results_dir = Path(given[-1] if given else "results")
    try:
        for model in args.models:
            best = study(model, args.trials, overrides, results_dir)
            print(f"{model}: best {OBJECTIVE} {best['best_value']:.4f} after {args.trials} "
                  f"trials with {best['best_params']}", flush=True)
            rerun(model, best, args.trials, args.seeds, overrides, results_dir)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
