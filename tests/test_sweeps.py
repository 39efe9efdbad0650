"""Sweeps on existing engines: the joblib launcher in parallel, the SLURM preset validated
without a cluster, trainer presets, and a search space per model."""

import os
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import OmegaConf

from bench.records import load_records
from bench.schema import register
from tests.conftest import CONF_DIR, TINY, compose, run_bench


def compose_with_hydra(*overrides: str):
    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides),
                             return_hydra_config=True)


@pytest.mark.slow
def test_joblib_sweep_of_four_jobs_on_two_workers_lands_each_record_once(results_dir):
    overrides = [o for o in TINY if o != "threads=1"]  # the launcher decides the threads
    proc = run_bench("model=pop,mf", "seed=0,1", "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=2", "-m", *overrides, results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = load_records(results_dir)
    assert sorted((r["model"], r["seed"]) for r in records) == [
        ("mf", 0), ("mf", 1), ("pop", 0), ("pop", 1)]
    assert all(r["status"] == "finished" for r in records)
    assert len({r["run_id"] for r in records}) == 4
    assert len(list((results_dir / "records").glob("*.npz"))) == 4
    # Two jobs at once, each with an equal share of the cores: never oversubscribed.
    share = max(1, (os.cpu_count() or 1) // 2)
    assert {r["hardware"]["torch_threads"] for r in records} == {share}
    assert len({r["sweep"] for r in records}) == 1


def test_slurm_preset_composes_and_validates_without_a_cluster():
    cfg = compose_with_hydra("hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                             "hydra.launcher.gpus_per_node=2", "hydra.launcher.timeout_min=30",
                             "hydra.launcher.array_parallelism=4", "trainer=ddp")
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min,
            launcher.array_parallelism) == ("gpu", 2, 30, 4)
    assert "export OMP_NUM_THREADS=4" in OmegaConf.to_container(launcher, resolve=True)["setup"]
    with pytest.raises(ConfigCompositionException, match="timeout_min"):
        compose_with_hydra("hydra/launcher=slurm", "hydra.launcher.timeout_min=soon")


def test_trainer_presets():
    default = compose().trainer
    assert (default.accelerator, default.devices, default.precision) == ("auto", 1, "32-true")
    assert compose("trainer=cpu").trainer.accelerator == "cpu"
    gpu = compose("trainer=gpu").trainer
    assert gpu.accelerator == "gpu" and gpu.devices == 1
    import torch

    if not torch.cuda.is_available():  # mixed precision only where a GPU can run it
        assert gpu.precision == "32-true"
    else:
        assert gpu.precision in ("bf16-mixed", "16-mixed")
    ddp = compose("trainer=ddp", "trainer.num_nodes=2").trainer
    assert (ddp.strategy, ddp.devices, ddp.num_nodes) == ("ddp", -1, 2)


def test_every_search_space_names_keys_its_model_has():
    spaces = sorted((CONF_DIR / "search").glob("*.yaml"))
    assert {p.stem for p in spaces} >= {"mf", "lstm", "sasrec"}
    for path in spaces:
        assert (CONF_DIR / "model" / path.name).exists(), path.name
        model = compose(f"model={path.stem}")
        space = OmegaConf.load(path)
        assert space, path.name
        for key in space:
            assert OmegaConf.select(model, str(key)) is not None, f"{path.name}: {key}"


def test_search_preset_sets_optuna_maximizing_with_the_space():
    cfg = compose_with_hydra("experiment=search", "model=lstm", "+search=lstm",
                             "hydra.sweeper.n_trials=7")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize" and sweeper.n_trials == 7
    assert set(sweeper.params) == set(OmegaConf.load(Path(CONF_DIR, "search", "lstm.yaml")))


def test_gpu_preset_without_a_gpu_is_bad_input_not_a_failed_run(results_dir, tmp_path):
    import torch

    from bench.errors import BenchError
    from bench.run import run_job

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cfg = compose("trainer=gpu", *TINY, f"results_dir={results_dir}")
    with pytest.raises(BenchError, match="accelerator=gpu"):
        run_job(cfg, tmp_path / "run")
    assert not (results_dir / "records").exists()
