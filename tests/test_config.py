"""Every conf/model x conf/dataset composes, and every model instantiates from its config."""

import pytest

from bench.data import prepare, prepare_split
from bench.recommender import Recommender
from bench.run import build_dataset, build_model
from tests.conftest import CONF_DIR, compose

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml"))


@pytest.fixture(scope="module")
def tiny_prepared():
    cfg = compose("dataset.n_users=40", "dataset.n_items=30", "dataset.mean_length=8")
    raw = build_dataset(cfg.dataset).load()
    split = prepare_split(raw, dict(cfg.dataset.filter), dict(cfg.split))
    return prepare(split, max_len=cfg.max_len)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_and_dataset_compose(model, dataset):
    cfg = compose(f"model={model}", f"dataset={dataset}")
    assert cfg.model._target_ and cfg.dataset._target_ and cfg.dataset.name
    assert cfg.model.description, f"conf/model/{model}.yaml needs a one-line description"
    build_dataset(cfg.dataset)  # constructing must not read files or download


@pytest.mark.parametrize("model", MODELS)
def test_every_model_instantiates_and_scores_the_catalog(model, tiny_prepared):
    cfg = compose(f"model={model}")
    net = build_model(cfg.model, tiny_prepared)
    assert isinstance(net, Recommender)
    batch = tiny_prepared.stages["test"].batches[0]
    scores = net.eval().score_all(batch)
    assert scores.shape == (len(batch["users"]), tiny_prepared.n_items)


def test_quiet_silences_the_download_progress_bar():
    cfg = compose("dataset=ml100k")
    assert build_dataset(cfg.dataset).progress is True
    assert build_dataset(cfg.dataset, quiet=True).progress is False
