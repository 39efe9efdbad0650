"""Performance benchmark: `python -m bench.perf [--models ...] [--datasets ...]`.

Per dataset x model it measures, with a fixed number of torch threads:
  - seconds per training epoch under Lightning (the harness's RecModule + Trainer) and in a
    plain PyTorch loop over the same model, batches and optimizer (epochs interleaved, so
    background load hits both alike), their ratio, and training throughput (interactions/s);
  - full-ranking evaluation seconds for every test user (history encoding included);
  - peak resident memory of the measuring process;
  - job startup: a real `python -m bench` job, process start to its first training step.
Each measurement runs in a fresh process. Results print as a table and are written with the
command, hardware and load average to results/perf/perf.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ML100K_ROOT = Path(os.environ.get("RECBENCH_ML100K", ROOT.parent / "shared" / "data" / "ml-100k"))
MODELS = ("pop", "mf", "lstm", "sasrec")
DATASETS = ("ml100k", "synthetic_ml1m")
COLUMNS = ("dataset", "model", "n_train", "lightning_epoch_s", "lightning_epoch_cpu_s",
           "plain_epoch_s", "plain_epoch_cpu_s", "overhead", "overhead_min", "train_per_s",
           "eval_users", "eval_s", "eval_cpu_s", "peak_rss_mb", "startup_s")


def dataset_overrides(name: str) -> list[str] | None:
    """Overrides that select a dataset here, or None when it is not available offline."""
    if name == "ml100k":
        if not (ML100K_ROOT / "u.data").exists():
            return None
        return ["dataset=ml100k", f"dataset.root={ML100K_ROOT}"]
    return [f"dataset={name}"]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from bench.schema import register

    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def worker(overrides: list[str], epochs: int, threads: int) -> dict:
    import pytorch_lightning as pl
    import torch

    from bench.evaluation import evaluate
    from bench.recommender import train_batches
    from bench.run import build_model, keep_freed_memory, prepare_data
    from bench.training import RecModule

    class EpochTimer(pl.Callback):
        def __init__(self):
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer, module):
            self.started = (time.perf_counter(), time.process_time())

        def on_train_epoch_end(self, trainer, module):
            self.seconds.append((time.perf_counter() - self.started[0],
                                 time.process_time() - self.started[1]))

    torch.set_num_threads(threads)
    keep_freed_memory()  # as every job does
    cfg = _compose(overrides)
    pl.seed_everything(0, verbose=False)
    split, prep = prepare_data(cfg)
    train_cfg = cfg.model.get("train") or {}
    ks = sorted(set(cfg.eval.ks))
    popularity = prep.model_args()["item_popularity"]
    out = {"n_train": int(len(prep.train_items)), "n_users": prep.n_users,
           "n_items": prep.n_items, "threads": torch.get_num_threads()}

    lightning_model, plain_model = build_model(cfg.model, prep), build_model(cfg.model, prep)
    plain_model.load_state_dict(lightning_model.state_dict())
    batches = train_batches(lightning_model.batch_kind, prep, train_cfg.get("batch_size", 256),
                            train_cfg.get("n_negatives", 1))
    trainable = batches is not None and any(p.requires_grad for p in lightning_model.parameters())
    if trainable:
        lr = train_cfg.get("lr", 1e-3)
        module = RecModule(lightning_model, prep.n_items, ks, lr=lr,
                           weight_decay=train_cfg.get("weight_decay", 0.0))
        optimizer = torch.optim.Adam(plain_model.parameters(), lr=lr,
                                     weight_decay=train_cfg.get("weight_decay", 0.0))
        lightning_s, plain_s = [], []
        for _ in range(epochs):  # interleaved: background load hits both loops alike
            timer = EpochTimer()
            trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                                 callbacks=[timer], enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False,
                                 limit_val_batches=0, num_sanity_val_steps=0)
            trainer.fit(module, train_dataloaders=batches)
            lightning_s.append(timer.seconds[0])
            started = (time.perf_counter(), time.process_time())
            plain_model.train()
            for batch in batches:
                optimizer.zero_grad(set_to_none=True)
                loss = plain_model.loss(batch)
                loss.backward()
                optimizer.step()
            plain_s.append((time.perf_counter() - started[0], time.process_time() - started[1]))
        out["lightning_epochs_s"], out["plain_epochs_s"] = lightning_s, plain_s
        # The first epoch carries one-off warm-up; report the median of the rest. CPU seconds
        # (process time) are what the epoch costs when other processes share the cores.
        steady = slice(1, None) if epochs > 1 else slice(None)
        for name, runs in (("lightning", lightning_s), ("plain", plain_s)):
            out[f"{name}_epoch_s"] = statistics.median(wall for wall, _ in runs[steady])
            out[f"{name}_epoch_cpu_s"] = statistics.median(cpu for _, cpu in runs[steady])
        out["overhead"] = out["lightning_epoch_s"] / out["plain_epoch_s"]
        # Best-of-N CPU seconds: other processes only ever add time (cache misses, preemption),
        # so the minimum is the least disturbed estimate of each loop's own cost (as timeit).
        out["overhead_min"] = (min(cpu for _, cpu in lightning_s[steady])
                               / min(cpu for _, cpu in plain_s[steady]))
        out["train_per_s"] = out["n_train"] / out["lightning_epoch_s"]

    test = prep.stages["test"]
    runs = []
    for _ in range(3):
        started = (time.perf_counter(), time.process_time())
        evaluate(lightning_model, test, ks, prep.n_items, popularity,
                 cfg.eval.get("item_chunk"))
        runs.append((time.perf_counter() - started[0], time.process_time() - started[1]))
    out["eval_users"] = len(test.users)
    out["eval_s"] = statistics.median(wall for wall, _ in runs)
    out["eval_cpu_s"] = statistics.median(cpu for _, cpu in runs)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def startup(overrides: list[str], threads: int) -> float | None:
    """A real job with one training batch: seconds from process start to the first step."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "bench", *overrides, "trainer.max_epochs=1",
               "trainer.limit_train_batches=1", f"threads={threads}", "quiet=true",
               "logger=none", f"results_dir={tmp}"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env(threads))
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return None
        records = sorted(Path(tmp, "records").glob("*.json"))
        return json.loads(records[-1].read_text())["times"].get("startup_s")


def default_job_seconds(threads: int) -> float | None:
    """`python -m bench` as a new user first runs it (default config), end to end."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bench", "quiet=true", f"results_dir={tmp}"],
                              cwd=tmp, capture_output=True, text=True, env=_env(threads))
        return round(time.perf_counter() - started, 2) if proc.returncode == 0 else None


def evaluator_scale(sizes: list[str], threads: int) -> list[dict]:
    """The evaluator alone on synthetic embeddings (bench.eval_bench), one process per size
    USERSxITEMS[:ITEM_CHUNK], so each peak RSS is its own."""
    rows = []
    for size in sizes:
        shape, _, chunk = size.partition(":")
        users, items = shape.lower().split("x")
        cmd = [sys.executable, "-m", "bench.eval_bench", "--users", users, "--items", items,
               "--threads", str(threads), *(["--item-chunk", chunk] if chunk else [])]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env(threads))
        if proc.returncode != 0:
            print(f"eval_bench {size} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return rows


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE",
            "WANDB_MODE": "disabled"}


def hardware(threads: int) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads,
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def table(rows: list[dict]) -> str:
    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop")
    parser.add_argument("--threads", type=int, default=1, help="torch threads everywhere")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "perf")
    parser.add_argument("--no-startup", action="store_true", help="skip the real-job timings")
    parser.add_argument("--eval-sizes", nargs="*",
                        default=["943x1682", "6040x3706", "100000x50000:8192"],
                        help="evaluator-only sizes USERSxITEMS[:ITEM_CHUNK] (none: skip)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # JSON list of overrides
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker), args.epochs, args.threads)))
        return

    command = "python -m bench.perf " + " ".join(argv if argv is not None else sys.argv[1:])
    started_load = os.getloadavg()
    rows = []
    for dataset in args.datasets:
        selected = dataset_overrides(dataset)
        if selected is None:
            print(f"skip {dataset}: not available here (set RECBENCH_ML100K)", file=sys.stderr)
            continue
        for model in args.models:
            overrides = [*selected, f"model={model}"]
            cmd = [sys.executable, "-m", "bench.perf", "--worker", json.dumps(overrides),
                   "--epochs", str(args.epochs), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                  env=_env(args.threads))
            if proc.returncode != 0:
                print(f"{dataset}/{model} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            row = {"dataset": dataset, "model": model,
                   **json.loads(proc.stdout.strip().splitlines()[-1])}
            if not args.no_startup:
                row["startup_s"] = startup(overrides, args.threads)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    scale = evaluator_scale(args.eval_sizes, args.threads)
    default_s = None if args.no_startup else default_job_seconds(args.threads)
    report = {"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware(args.threads), "epochs": args.epochs,
              "loadavg_start": started_load, "loadavg_end": os.getloadavg(),
              "default_job_s": default_s, "rows": rows, "evaluator_scale": scale}
    text = "\n".join([
        "# recbench performance", "",
        f"Command: `{command}`  ", f"Date: {report['date']}  ",
        f"Hardware: {report['hardware']}  ",
        f"Load average (1/5/15 min) at start {started_load}, at end {report['loadavg_end']} "
        "(other processes share these cores: compare columns within a row, not across runs).",
        "",
        "Epoch seconds are the median of epochs 2..N of N interleaved Lightning/plain epochs, "
        "wall clock and CPU (process time: what the work costs when the cores are shared); "
        "overhead = Lightning / plain (median wall seconds); overhead_min = the same ratio of "
        "the fastest CPU epochs (best of N, as timeit: background load only adds time); "
        "train_per_s = train interactions per Lightning second; "
        "eval_s = full-ranking evaluation of every test user (median of 3); peak_rss_mb = the "
        "measuring process; startup_s = real `python -m bench` job, process start to first "
        "training step (cold data cache).", "",
        table(rows), "",
        "Evaluator alone (bench.eval_bench: 64-dim synthetic embeddings, 20 seen items masked "
        "per user, one process per size):", "",
        "| users | items | item_chunk | eval_s | users_per_s | peak_rss_mb |",
        "|---|---|---|---|---|---|",
        *(f"| {r['n_users']:,} | {r['n_items']:,} | {r['item_chunk'] or 'all'} | {r['eval_s']} "
          f"| {r['users_per_s']:,} | {r['peak_rss_mb']:,} |" for r in scale), "",
        f"`python -m bench` default job end to end: {default_s} s", ""])
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "perf.md").write_text(text, encoding="utf-8")
    (args.out / "perf.json").write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
