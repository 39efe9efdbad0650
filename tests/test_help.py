"""The first ten minutes: `--help` lists what exists, misspelled options get a suggestion."""

import re
import subprocess
import sys

import yaml

from bench.help import swept_model_key_message, unknown_option_message
from bench.records import load_records
from tests.conftest import CONF_DIR, ROOT, TINY, run_bench

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def _help_lines(results_dir) -> list[str]:
    proc = run_bench("--help", results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


def test_help_names_every_model_and_dataset_with_its_description(results_dir):
    lines = _help_lines(results_dir)
    for group in ("model", "dataset"):
        files = sorted((CONF_DIR / group).glob("*.yaml"))
        assert files
        for path in files:
            description = " ".join(yaml.safe_load(path.read_text())["description"].split())
            assert description, f"{path} has an empty description"
            assert any(line.split()[-len(description.split()):] == description.split()
                       and path.stem in line.split()[:2] for line in lines), \
                f"--help lacks '{path.stem}  {description}'"
    assert not (results_dir / "records").exists()  # help runs nothing


def test_help_describes_every_split_trainer_and_logger_option(results_dir):
    text = "\n".join(_help_lines(results_dir))
    for engine in ("slurm", "joblib", "optuna"):  # conf/hydra presets and installed plugins
        assert re.search(rf"\n +{engine} +\S", text), engine
    for group in ("split", "trainer", "logger"):
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            comment = next(line for line in path.read_text().splitlines()
                           if line.startswith("#"))
            assert f"{path.stem}" in text and comment.lstrip("# ").strip() in text


def test_misspelled_model_gets_a_suggestion_and_no_run(results_dir):
    proc = run_bench("model=lstn", *TINY, results_dir=results_dir)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: unknown model 'lstn'; did you mean 'lstm'? "
                                   f"available: {', '.join(MODELS)}")
    assert not results_dir.exists()
    proc = run_bench("model=pop,mff", "-m", *TINY, results_dir=results_dir)
    assert proc.returncode == 2 and "unknown model 'mff'; did you mean 'mf'?" in proc.stderr
    assert not results_dir.exists()


def test_did_you_mean_reads_hydra_override_syntax():
    assert unknown_option_message(["split=lo"]).startswith("unknown split 'lo'; did you mean")
    assert unknown_option_message(["+model@x=zzzzzz"]) == \
        f"unknown model 'zzzzzz'; available: {', '.join(MODELS)}"
    assert "'mfx'" in unknown_option_message(["-m", "model=choice(pop,mfx)"])
    assert unknown_option_message(["modle=lstm"]) == "unknown key 'modle'; did you mean 'model'?"
    assert unknown_option_message(["sed=3"]) == "unknown key 'sed'; did you mean 'seed'?"
    for fine in (["resume=true"], ["max_len=20"], ["+anything=1"], ["zzz=1"],
                 ["model=pop,mf,lstm"], ["model=${oc.env:M}"], ["experiment=null"],
                 ["model.embedding_dim=3"], ["--cfg", "job"], ["seed=1,2"]):
        assert unknown_option_message(fine) is None, fine


def test_a_model_key_that_a_swept_model_lacks_is_named_before_hydra_fails():
    """Hydra composes the sweep's config with the default model (lstm) and each job with its
    own: a model-specific key fails there with "not in struct"; say which models and the fix."""
    ctx = "model.context_fields=[last_item]"
    assert "write ++model.context_fields=[last_item]" in \
        swept_model_key_message(["model=fm,deepfm", ctx, "-m"])
    assert swept_model_key_message(["model=fm,lstm,pop", ctx, "-m"]) == (
        "model.context_fields is not a key of model 'lstm', 'pop'; sweep the models that have "
        "it separately, or add it to their yaml")
    for fine in (["model=fm,deepfm", "++" + ctx, "-m"], ["model=fm", ctx, "-m"],
                 ["model=lstm,sasrec", "model.train.lr=0.01", "-m"], ["model=fm,deepfm", ctx]):
        assert swept_model_key_message(fine) is None, fine


def test_cfg_job_prints_the_composed_config_and_runs_nothing(results_dir):
    # The README's spelling, `--cfg job` before the overrides, as Hydra users type it.
    cmd = [sys.executable, "-m", "bench", "--cfg", "job", "model=lstm",
           f"results_dir={results_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["model"]["_target_"] == "bench.models.lstm.LSTMRecommender"
    assert cfg["results_dir"] == str(results_dir) and "hydra" not in cfg
    assert not results_dir.exists()


def _run_on_terminal(args: list[str]) -> tuple[int, str]:
    """`python -m bench args` with stdout/stderr on a pseudo-terminal, as a user sees it."""
    import os
    import pty

    master, child = pty.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env,
                            stdout=child, stderr=child)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_epoch_and_sweep_progress_on_a_terminal_and_silent_when_piped(results_dir):
    args = ["model=pop,lstm", *TINY, "trainer.max_epochs=1", "quiet=false"]
    rc, shown = _run_on_terminal([*args, f"results_dir={results_dir}", "-m"])
    assert rc == 0, shown[-2000:]
    assert "Epoch 0/0" in shown and "━━━━" in shown  # Lightning's RichProgressBar
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line).strip() for line in shown.splitlines()]
    board = {r["model"]: r["metrics"]["test"]["ndcg@10"] for r in load_records(results_dir)}
    assert f"[1/2] pop seed=0: test ndcg@10 {board['pop']:.4f} | leaders: pop " \
        f"{board['pop']:.4f}" in lines
    leaders = ", ".join(f"{m} {v:.4f}" for m, v in sorted(board.items(), key=lambda x: -x[1]))
    assert f"[2/2] lstm seed=0: test ndcg@10 {board['lstm']:.4f} | leaders: {leaders}" in lines

    proc = run_bench(*args, "-m", results_dir=results_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Epoch" not in proc.stdout + proc.stderr and "[1/2]" not in proc.stdout
    assert "lstm" in proc.stdout  # the leaderboard at the end of the sweep is still printed
