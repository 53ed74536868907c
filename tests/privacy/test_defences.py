"""Defences measured end to end: the same attacks against each defended model, the utility
cost computed from the accuracies, the attacker calibrated on the defence."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

import mlwarden.targets
from mlwarden.audit import AuditContext, run_audit
from mlwarden.defenses.output import harden
from mlwarden.errors import UsageError
from mlwarden.privacy.check import MEMBERSHIP_CHECK
from mlwarden.privacy.defences import (
    HardenedModel,
    HardenedTrainFn,
    RememberingTrainFn,
    compare_defences,
    dp_trainer,
)
from mlwarden.privacy.settings import PrivacySettings, parse_defence, parse_defences


def small_mlp() -> object:
    """A picklable model factory for the DP-SGD test."""
    from mlwarden.demo.models import TabularMLP

    return TabularMLP(8, 3, hidden=16)


def train(x: np.ndarray, y: np.ndarray, seed: int) -> MLPClassifier:
    return MLPClassifier(hidden_layer_sizes=(32,), alpha=0.0, max_iter=200, random_state=seed).fit(
        x, y
    )


@pytest.fixture(scope="module")
def toy() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    centres = rng.random((3, 8))
    y = rng.integers(0, 3, 240)
    x = np.clip(centres[y] + rng.normal(0, 0.3, (240, 8)), 0, 1).astype(np.float32)
    return {
        "members": (x[:60], y[:60]),
        "non_members": (x[60:120], y[60:120]),
        "population": (x[120:], y[120:]),
    }


@pytest.fixture(scope="module")
def model(toy):  # type: ignore[no-untyped-def]
    return train(*toy["members"], 0)


def settings(toy, **options):  # type: ignore[no-untyped-def]
    return PrivacySettings(
        members=toy["members"], non_members=toy["non_members"], inversion=None, **options
    )


def test_output_defences_keep_accuracy_so_their_utility_cost_is_zero(toy, model) -> None:  # type: ignore[no-untyped-def]
    target = mlwarden.targets.target(model, input_shape=(8,))
    chosen = settings(
        toy,
        attacks=("loss", "confidence"),
        defences=parse_defences(["top-k:1", "round:1", "label-only"]),
    )
    comparison = compare_defences(target, chosen)
    rows = {row.defence: row for row in comparison.all_rows()}
    assert list(rows) == ["none", "top-k:1", "round:1", "label-only"]
    deployed = rows["none"]
    truth = model.predict(toy["non_members"][0]) == toy["non_members"][1]
    assert deployed.non_member_accuracy == pytest.approx(truth.mean())
    for name in ("top-k:1", "round:1", "label-only"):
        assert rows[name].utility_cost == pytest.approx(0.0)
        assert rows[name].non_member_accuracy == deployed.non_member_accuracy
    assert rows["label-only"].attacks == ("label-only",)
    assert rows["top-k:1"].attacks == ("loss", "confidence")


def test_reference_models_answer_through_the_same_defence(toy) -> None:  # type: ignore[no-untyped-def]
    x, y = toy["population"]
    wrapped = HardenedTrainFn(train, parse_defence("round:1"), input_range=(0.0, 1.0))
    reference = wrapped(x, y, 0)
    assert isinstance(reference, HardenedModel)
    probs = reference.predict_proba(x[:20])
    raw = mlwarden.targets.target(reference.model, input_shape=(8,))
    assert np.allclose(probs, harden(raw, decimals=1).predict_proba(x[:20]))
    assert not np.allclose(probs, raw.predict_proba(x[:20]))
    labels = HardenedModel(train(x, y, 0), parse_defence("label-only"), input_range=(0.0, 1.0))
    assert set(np.unique(labels(x[:20]))) <= {0.0, 1.0}


def test_dp_needs_a_torch_trainer(toy, model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="needs train_fn to be a TorchTrainer"):
        dp_trainer(train, parse_defence("dp:epsilon=1"))
    target = mlwarden.targets.target(model, input_shape=(8,))
    with pytest.raises(UsageError, match="got no train_fn"):
        compare_defences(
            target,
            settings(toy, attacks=("loss",), defences=parse_defences(["dp:epsilon=1"])),
        )


def test_the_check_reports_the_defences_it_was_given(toy, model) -> None:  # type: ignore[no-untyped-def]
    target = mlwarden.targets.target(model, input_shape=(8,))
    context = AuditContext(
        target=target,
        privacy=settings(
            toy,
            population=toy["population"],
            train_fn=train,
            attacks=("loss", "lira-offline"),
            n_reference=2,
            defences=parse_defences(["top-k:1"]),
        ),
    )
    report = run_audit(context, only=[MEMBERSHIP_CHECK])
    assert report.checks_run == [MEMBERSHIP_CHECK], report.errors
    metrics = report.metrics[MEMBERSHIP_CHECK]
    assert [r["defence"] for r in metrics["defence_results"]] == ["none", "top-k:1"]
    assert set(metrics["by_attack"]) == {"loss", "lira-offline"}
    assert [f.id for f in report.figures][-1].startswith("privacy-defences")


def test_score_attacks_against_a_label_only_model_are_a_usage_error(toy, model) -> None:  # type: ignore[no-untyped-def]
    labels_only = mlwarden.targets.target(
        model.predict, input_shape=(8,), n_classes=3, output="labels"
    )
    context = AuditContext(target=labels_only, privacy=settings(toy, attacks=("loss",)))
    with pytest.raises(UsageError, match="label-only"):
        run_audit(context, only=[MEMBERSHIP_CHECK])
    auto = AuditContext(target=labels_only, privacy=settings(toy))
    report = run_audit(auto, only=[MEMBERSHIP_CHECK])
    assert set(report.metrics[MEMBERSHIP_CHECK]["by_attack"]) == {"label-only"}


def test_dp_sgd_retrains_the_model_and_costs_accuracy(toy) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("opacus")
    pytest.importorskip("torch")
    from mlwarden.attacks.membership.reference import TorchTrainer

    trainer = TorchTrainer(small_mlp, epochs=30, lr=0.01, batch_size=16)
    members = toy["members"]
    target = mlwarden.targets.target(trainer(*members, 0), input_shape=(8,))
    chosen = settings(
        toy,
        attacks=("loss",),
        train_fn=trainer,
        defences=parse_defences(["dp:epsilon=0.5,epochs=5"]),
    )
    comparison = compare_defences(target, chosen)
    [dp] = comparison.rows
    assert dp.defence == "dp:epsilon=0.5,delta=1e-05,epochs=5"
    assert dp.utility_cost == pytest.approx(
        comparison.baseline.non_member_accuracy - dp.non_member_accuracy  # type: ignore[operator]
    )
    assert dp.member_accuracy is not None


def test_logistic_regression_estimator_is_a_train_fn(toy) -> None:  # type: ignore[no-untyped-def]
    estimator = LogisticRegression(max_iter=200)
    wrapped = HardenedTrainFn(estimator, parse_defence("top-k:1"), input_range=(0.0, 1.0))
    probs = wrapped(*toy["population"], 3).predict_proba(toy["population"][0][:5])
    assert ((probs > 0).sum(axis=1) == 1).all()


class _Counting:
    """A train_fn that counts how often it trains (picklable, top-level)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: np.ndarray, y: np.ndarray, seed: int) -> MLPClassifier:
        self.calls += 1
        return train(x, y, seed)


def test_output_defences_reuse_the_deployed_audits_reference_models(toy, model) -> None:  # type: ignore[no-untyped-def]
    counting = _Counting()
    target = mlwarden.targets.target(model, input_shape=(8,))
    context = AuditContext(
        target=target,
        privacy=settings(
            toy,
            population=toy["population"],
            train_fn=counting,
            attacks=("lira-offline",),
            n_reference=2,
            defences=parse_defences(["top-k:1", "round:1", "temperature:2"]),
        ),
    )
    report = run_audit(context, only=[MEMBERSHIP_CHECK])
    assert report.checks_run == [MEMBERSHIP_CHECK]
    assert counting.calls == 2  # two reference models, trained once for all four audits
    rows = report.metrics[MEMBERSHIP_CHECK]["defence_results"]
    assert [r["defence"] for r in rows] == ["none", "top-k:1", "round:1", "temperature:2"]


def test_remembering_train_fn_trains_once_per_records_and_seed(toy) -> None:  # type: ignore[no-untyped-def]
    counting = _Counting()
    remembering = RememberingTrainFn(counting)
    x, y = toy["population"]
    first = remembering(x, y, 0)
    assert remembering(x.copy(), y.copy(), 0) is first
    assert remembering(x, y, 1) is not first
    assert remembering(x[:-1], y[:-1], 0) is not first
    assert counting.calls == 3
    copy = pickle.loads(pickle.dumps(remembering))
    assert copy._models == {}  # type: ignore[attr-defined]  # models never travel
    assert dataclasses.fields(remembering)[0].name == "train_fn"
