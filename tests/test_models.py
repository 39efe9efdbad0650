"""The one contract suite, run over every conf/model/*.yaml: a new model needs no test code.

Each model is built from its config by the harness's own path (`build_model`), trained for a
few epochs on small synthetic data by the optimizer the harness uses, and must: lower its loss,
score the whole catalog with finite [B, n_items] scores, be reproducible from its seed, survive
a state_dict round trip exactly, and rank better than random on held-out items.
"""

from __future__ import annotations

import pytest
import torch

from bench.data import prepare, prepare_split
from bench.evaluation import evaluate
from bench.recommender import train_batches
from bench.run import build_dataset, build_model
from bench.training import RecModule
from tests.conftest import CONF_DIR, compose

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
DATA = ("dataset.n_users=200", "dataset.n_items=150", "dataset.mean_length=20", "max_len=20")
STEPS = 60
SEED = 7

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def prep():
    cfg = compose(*DATA)
    split = prepare_split(build_dataset(cfg.dataset).load(), dict(cfg.dataset.filter),
                          dict(cfg.split))
    return prepare(split, max_len=cfg.max_len)


def model_config(name: str):
    return compose(f"model={name}", *DATA).model


def build(name: str, prep, seed: int = SEED):
    torch.manual_seed(seed)
    return build_model(model_config(name), prep)


def fit(model, name: str, prep, steps: int = STEPS, seed: int = SEED) -> list[float]:
    """Train like the harness (its optimizer, L1 and batch builder) for `steps` steps, cycling
    through epochs; returns per-step losses."""
    train = model_config(name).get("train") or {}
    torch.manual_seed(seed)
    batches = train_batches(model.batch_kind, prep, train.get("batch_size", 256),
                            train.get("n_negatives", 1))
    if batches is None:
        return []
    module = RecModule(model, prep.n_items, [10], lr=train.get("lr", 1e-3),
                       weight_decay=train.get("weight_decay", 0.0), l1=train.get("l1", 0.0))
    optimizer = module.configure_optimizers()
    model.train()
    losses = []
    while len(losses) < steps:
        for batch in batches:
            if len(losses) == steps:
                break
            loss = model.loss(batch)
            if module.l1:
                loss = loss + module.l1 * sum(p.abs().sum() for p in model.parameters())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def scores(model, prep) -> torch.Tensor:
    model.eval()
    return model.score_all(prep.stages["valid"].batches[0])


def fixed_loss(model, batch: dict) -> float:
    """The loss of one fixed batch with dropout off and sampling seeded, so it is comparable."""
    was_training = model.training
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        value = model.loss(batch).item()
    model.train(was_training)
    return value


_trained: dict[str, tuple] = {}


def trained(name: str, prep):
    """(model, loss of a fixed batch before training, after training), trained once per model."""
    if name not in _trained:
        model = build(name, prep)
        train = model_config(name).get("train") or {}
        torch.manual_seed(123)
        batches = train_batches(model.batch_kind, prep, train.get("batch_size", 256),
                                train.get("n_negatives", 1))
        probe = next(iter(batches)) if batches is not None else None
        before = fixed_loss(model, probe) if probe is not None else None
        fit(model, name, prep)
        after = fixed_loss(model, probe) if probe is not None else None
        _trained[name] = (model, before, after)
    return _trained[name]


@pytest.mark.parametrize("name", MODELS)
def test_instantiates_and_scores_the_catalog(name, prep):
    model, _, _ = trained(name, prep)
    out = scores(model, prep)
    n_users = len(prep.stages["valid"].batches[0]["users"])
    assert out.shape == (n_users, prep.n_items)
    assert torch.isfinite(out).all()
    assert model_config(name).description


@pytest.mark.parametrize("name", MODELS)
def test_training_lowers_the_loss(name, prep):
    model, before, after = trained(name, prep)
    if model.batch_kind == "none":
        pytest.skip(f"{name} has nothing to train")
    assert after < 0.99 * before, f"{name}: loss {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_gives_same_scores(name, prep):
    first, second = build(name, prep), build(name, prep)
    fit(first, name, prep, steps=3)
    fit(second, name, prep, steps=3)
    assert torch.equal(scores(first, prep), scores(second, prep))


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip_gives_identical_scores(name, prep, tmp_path):
    model, _, _ = trained(name, prep)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    restored = build(name, prep, seed=SEED + 1)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(scores(restored, prep), scores(model, prep))


def random_ndcg(prep, draws: int = 20) -> float:
    """Mean NDCG@10 of uniformly random scores (what 'no signal' reaches on this data)."""
    generator = torch.Generator().manual_seed(0)

    class Random(torch.nn.Module):
        def score_all(self, batch):
            return torch.rand(len(batch["users"]), prep.n_items, generator=generator)

    stage = prep.stages["valid"].batches
    return sum(evaluate(Random(), stage, [10], prep.n_items).summary()["ndcg@10"]
               for _ in range(draws)) / draws


@pytest.mark.parametrize("name", MODELS)
def test_beats_random_on_held_out_items(name, prep):
    model, _, _ = trained(name, prep)
    ndcg = evaluate(model, prep.stages["valid"].batches, [10], prep.n_items).summary()["ndcg@10"]
    floor = random_ndcg(prep)
    assert ndcg > 1.5 * floor, f"{name}: NDCG@10 {ndcg:.4f} vs random {floor:.4f}"


@pytest.mark.parametrize("name", MODELS)
def test_catalog_scores_match_pointwise_rows(name, prep):
    """Models scored two ways (training rows, decomposed/chunked catalog) compute one function."""
    model, _, _ = trained(name, prep)
    if not hasattr(model, "row_logits"):
        pytest.skip(f"{name} scores only the catalog")
    assert_rows_match_catalog(model, prep)


def assert_rows_match_catalog(model, prep, n_users: int = 5):
    batch = prep.stages["valid"].batches[0]
    users = batch["users"][:n_users]
    rows = {"users": users.repeat_interleave(prep.n_items),
            "items": torch.arange(prep.n_items).repeat(len(users)),
            "history": batch["history"][:n_users].repeat_interleave(prep.n_items, 0)}
    rows.update({f"user.{k}": v[rows["users"]] for k, v in prep.user_features.items()})
    rows.update({f"item.{k}": v[rows["items"]] for k, v in prep.item_features.items()})
    model.eval()
    with torch.no_grad():
        pointwise = model.row_logits(rows).view(len(users), prep.n_items)
    assert torch.allclose(scores(model, prep)[: len(users)], pointwise, atol=1e-5)


FEATURE_MODELS = [n for n in MODELS if "context_fields" in model_config(n)]


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_context_fields_train_and_change_scores_with_the_last_item(name, prep):
    """With the request context on (last item id and its genres), training rows and catalog
    scoring agree, and the same user gets different scores after a different last item."""
    torch.manual_seed(SEED)
    cfg = compose(f"model={name}", *DATA, "model.context_fields=[last_item,last_item.genres]")
    model = build_model(cfg.model, prep)
    batches = train_batches(model.batch_kind, prep, 256, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for batch in batches:
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    assert_rows_match_catalog(model, prep)
    batch = dict(prep.stages["valid"].batches[0])
    with torch.no_grad():
        before = model.score_all(batch)
        batch["history"] = batch["history"].roll(1, dims=1)  # another most recent item
        after = model.score_all(batch)
    changed = (batch["history"][:, -1] != prep.stages["valid"].batches[0]["history"][:, -1])
    assert changed.any()
    assert not torch.allclose(before[changed], after[changed])


@pytest.mark.parametrize("overrides", [("model.loss=sampled_softmax", "model.n_negatives=20"),
                                       ("model.loss=bpr",), ("model.tied=false",),
                                       ("model.item_features=[genres]",)])
def test_lstm_options_train_and_score(overrides, prep):
    """The LSTM's non-default options (losses, untied output, side features) train too."""
    torch.manual_seed(SEED)
    model = build_model(compose("model=lstm", *DATA, *overrides).model, prep)
    batches = train_batches("sequence", prep, 64)
    probe = next(iter(batches))
    before = fixed_loss(model, probe)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        for batch in batches:
            optimizer.zero_grad()
            model.loss(batch).backward()
            optimizer.step()
    assert fixed_loss(model, probe) < 0.99 * before
    out = scores(model, prep)
    assert out.shape[1] == prep.n_items and torch.isfinite(out).all()
