"""Reference models: who trains on what, what is kept, the cache, the errors that name the fix."""

from __future__ import annotations

import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from threadpoolctl import threadpool_limits

from mlwarden.attacks.membership import reference as reference_module
from mlwarden.attacks.membership.reference import (
    EstimatorTrainFn,
    ReferenceCacheWarning,
    TorchTrainer,
    as_train_fn,
    min_train_records,
    paired_halves,
    train_reference,
)
from mlwarden.errors import InputError, UsageError

Data = tuple[np.ndarray, np.ndarray]


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():  # type: ignore[no-untyped-def]
    """Two BLAS threads per solver on two shared cores make scikit-learn fits 10-25x slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def tabular() -> dict[str, Data]:
    """3 classes, 8 features in [0, 1]: 60 candidates and 120 population records."""
    x, y = make_classification(
        n_samples=180, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    x = ((x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))).astype(np.float32)
    return {"candidates": (x[:60], y[:60]), "population": (x[60:], y[60:])}


def train(train_fn: Any, data: dict[str, Data], **options: Any) -> Any:
    settings: dict[str, Any] = {
        "n_reference": 4,
        "mode": "online",
        "n_classes": 3,
        "seed": 0,
        "cache_dir": None,
        "n_jobs": 1,
        "dask": None,
        "progress": None,
    }
    settings.update(options)
    return train_reference(
        train_fn, candidates=data["candidates"], population=data["population"], **settings
    )


LOGISTIC = LogisticRegression(max_iter=200)


def logistic(x: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    """A plain-function train_fn."""
    return LogisticRegression(max_iter=200).fit(x, y)


FLAKY: dict[str, Any] = {"calls": [], "fail_on_call": None, "error": RuntimeError}


def flaky(x: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    """A train_fn that fails on a chosen call, like a run that runs out of memory."""
    FLAKY["calls"].append(seed)
    if len(FLAKY["calls"]) == FLAKY["fail_on_call"]:
        raise FLAKY["error"]("out of memory")
    return LogisticRegression(max_iter=200).fit(x, y)


@pytest.fixture
def flaky_state():  # type: ignore[no-untyped-def]
    FLAKY.update(calls=[], fail_on_call=None, error=RuntimeError)
    yield FLAKY
    FLAKY.update(calls=[], fail_on_call=None, error=RuntimeError)


def always_fails(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    raise ValueError(f"no GPU for seed {seed}")


# -- who trains on what ----------------------------------------------------------------------


def test_online_puts_every_record_in_exactly_half_of_the_models(tabular) -> None:  # type: ignore[no-untyped-def]
    result = train(LOGISTIC, tabular, n_reference=6)
    assert result.mode == "online" and result.k == 6
    assert (result.in_candidates.sum(axis=0) == 3).all()
    assert (result.in_population.sum(axis=0) == 3).all()
    y = np.concatenate([tabular["candidates"][1], tabular["population"][1]])
    masks = np.concatenate([result.in_candidates, result.in_population], axis=1)
    for model in masks:
        per_class = np.bincount(y[model], minlength=3)
        assert (np.abs(per_class - np.bincount(y) / 2) <= 0.5).all()


def test_odd_number_of_online_models_is_as_close_to_half_as_possible(tabular) -> None:  # type: ignore[no-untyped-def]
    result = train(LOGISTIC, tabular, n_reference=5)
    counts = np.concatenate([result.in_candidates, result.in_population], axis=1).sum(axis=0)
    assert set(counts.tolist()) == {2, 3}


def test_offline_leaves_every_candidate_out(tabular) -> None:  # type: ignore[no-untyped-def]
    result = train(LOGISTIC, tabular, mode="offline", n_reference=2)
    assert result.mode == "offline" and not result.in_candidates.any()
    assert (result.in_population.sum(axis=0) == 1).all()
    assert result.probs_candidates.shape == (2, 60, 3)
    assert result.probs_population.shape == (2, 120, 3)


def test_split_is_deterministic_in_the_seed(tabular) -> None:  # type: ignore[no-untyped-def]
    first = train(LOGISTIC, tabular, seed=3)
    again = train(LOGISTIC, tabular, seed=3)
    other = train(LOGISTIC, tabular, seed=4)
    assert np.array_equal(first.in_candidates, again.in_candidates)
    assert np.array_equal(first.probs_candidates, again.probs_candidates)
    assert not np.array_equal(first.in_candidates, other.in_candidates)


def test_paired_halves_balances_every_class_in_every_model() -> None:
    labels = np.repeat([0, 1, 2], [7, 2, 11])
    keep = paired_halves(labels, 8, np.random.default_rng(0))
    assert (keep.sum(axis=0) == 4).all()
    for label, size in ((0, 7), (1, 2), (2, 11)):
        per_model = keep[:, labels == label].sum(axis=1)
        assert set(per_model.tolist()) <= {size // 2, size - size // 2}
        assert per_model.min() >= 1


def test_outputs_are_each_models_probabilities_on_every_record(tabular) -> None:  # type: ignore[no-untyped-def]
    result = train(logistic, tabular)
    x = np.concatenate([tabular["candidates"][0], tabular["population"][0]])
    y = np.concatenate([tabular["candidates"][1], tabular["population"][1]])
    chosen = np.concatenate([result.in_candidates[2], result.in_population[2]])
    expected = LogisticRegression(max_iter=200).fit(x[chosen], y[chosen]).predict_proba(x)
    assert result.probs_candidates.dtype == np.float32
    np.testing.assert_allclose(result.probs_candidates[2], expected[:60], atol=1e-5)
    np.testing.assert_allclose(result.probs_population[2], expected[60:], atol=1e-5)
    assert result.cached == 0 and result.train_seconds > 0


def test_progress_counts_models_as_they_finish(tabular) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[str, int, int]] = []
    train(LOGISTIC, tabular, progress=lambda *args: calls.append(args))
    assert calls == [("training reference models", i, 4) for i in range(5)]


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"n_reference": 0}, UsageError, "n_reference must be >= 1"),
        ({"n_reference": 3}, UsageError, "online reference models need n_reference >= 4"),
        ({"n_reference": 2.5}, UsageError, "whole number"),
        ({"mode": "sideways"}, UsageError, "online or offline"),
        ({"n_jobs": 0}, UsageError, "n_jobs"),
        ({"seed": -1}, UsageError, "seed"),
        ({"n_classes": 1}, InputError, "n_classes"),
        ({"n_classes": 2}, InputError, r"must lie in \[0, 1\]"),
    ],
)
def test_bad_settings_name_the_fix(tabular, options, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        train(LOGISTIC, tabular, **options)


def test_offline_with_a_single_model_is_allowed(tabular) -> None:  # type: ignore[no-untyped-def]
    assert train(LOGISTIC, tabular, mode="offline", n_reference=1).k == 1


def test_population_too_small_for_a_training_set_is_refused(tabular) -> None:  # type: ignore[no-untyped-def]
    x, y = tabular["population"]
    small = {"candidates": tabular["candidates"], "population": (x[:39], y[:39])}
    with pytest.raises(InputError, match="give at least 40 records"):
        train(LOGISTIC, small, mode="offline")
    assert min_train_records(3) == 20 and min_train_records(30) == 60
    enough = {"candidates": tabular["candidates"], "population": (x[:40], y[:40])}
    assert train(LOGISTIC, enough, mode="offline").probs_population.shape == (4, 40, 3)


def test_population_missing_a_class_is_refused(tabular) -> None:  # type: ignore[no-untyped-def]
    x, y = tabular["population"]
    keep = np.flatnonzero(y != 2)
    keep = np.concatenate([keep, np.flatnonzero(y == 2)[:1]])
    lacking = {"candidates": tabular["candidates"], "population": (x[keep], y[keep])}
    with pytest.raises(InputError, match=r"class 2 \(1\); add records of those classes"):
        train(LOGISTIC, lacking, mode="offline")
    # Online, the candidates count too: they hold plenty of class 2.
    assert train(LOGISTIC, lacking, mode="online").k == 4


@pytest.mark.parametrize(
    ("candidates", "message"),
    [
        ((np.zeros((5, 7), np.float32), np.zeros(5, int)), "same model"),
        ((np.zeros((5, 8), np.float32), np.zeros(4, int)), "expected \\(5,\\)"),
        ((np.full((5, 8), np.nan, np.float32), np.zeros(5, int)), "NaN"),
        ((np.zeros(5, np.float32), np.zeros(5, int)), "expected \\(n, \\*input_shape\\)"),
        ([np.zeros((5, 8)), np.zeros(5)], "pair"),
    ],
)
def test_malformed_records_are_input_errors(tabular, candidates, message) -> None:  # type: ignore[no-untyped-def]
    data = {"candidates": candidates, "population": tabular["population"]}
    with pytest.raises(InputError, match=message):
        train(LOGISTIC, data)


# -- train_fn in three forms -------------------------------------------------------------------


def test_estimators_are_cloned_and_seeded_per_model(tabular) -> None:  # type: ignore[no-untyped-def]
    forest = RandomForestClassifier(n_estimators=5, random_state=123)
    fn = as_train_fn(forest)
    assert isinstance(fn, EstimatorTrainFn)
    x, y = tabular["population"]
    a, b, a_again = fn(x, y, 1), fn(x, y, 2), fn(x, y, 1)
    assert a is not forest and not hasattr(forest, "classes_")
    assert a.random_state == 1
    assert np.array_equal(a.predict_proba(x), a_again.predict_proba(x))
    assert not np.array_equal(a.predict_proba(x), b.predict_proba(x))


@pytest.mark.parametrize(
    ("train_fn", "message"),
    [
        (LogisticRegression, "pass an instance such as LogisticRegression()"),
        (LinearRegression(), "not a classifier"),
        ("training:train", "is a name, not a function"),
        (42, "must be a function train_fn"),
    ],
)
def test_train_fn_of_the_wrong_kind_says_what_to_pass(train_fn, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=message):
        as_train_fn(train_fn)


def test_functions_and_trainers_are_used_as_they_are() -> None:
    trainer = TorchTrainer("torch.nn:Identity")
    assert as_train_fn(logistic) is logistic and as_train_fn(trainer) is trainer


# -- failures: named, chained, finished work kept --------------------------------------------


def test_a_train_fn_that_raises_names_the_model_and_seed(tabular) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=r"reference model 1 of 4 \(seed \d+\) failed") as caught:
        train(always_fails, tabular)
    message = str(caught.value)
    assert "train_fn raised ValueError: no GPU for seed" in message
    assert "pass cache_dir=" in message
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_run_resumes_with_the_models_it_did_not_finish(  # type: ignore[no-untyped-def]
    tabular, tmp_path, flaky_state, error
) -> None:
    flaky_state.update(fail_on_call=5, error=error)
    expected: type[BaseException] = UsageError if error is RuntimeError else KeyboardInterrupt
    with pytest.raises(expected) as caught:
        train(flaky, tabular, n_reference=8, cache_dir=tmp_path)
    if error is RuntimeError:
        assert "reference model 5 of 8" in str(caught.value)
        assert "4 of 8 models are cached" in str(caught.value)
    assert len(list(tmp_path.glob("reference-*.npz"))) == 4
    first_seeds = list(flaky_state["calls"][:4])
    flaky_state.update(calls=[], fail_on_call=None)
    resumed = train(flaky, tabular, n_reference=8, cache_dir=tmp_path)
    assert resumed.cached == 4 and len(flaky_state["calls"]) == 4
    assert not set(flaky_state["calls"]) & set(first_seeds)
    fresh = train(flaky, tabular, n_reference=8)
    np.testing.assert_allclose(resumed.probs_candidates, fresh.probs_candidates, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))


class Returns:
    """A train_fn returning a fixed object (picklable, so its cache key is stable)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        return self.model


def uniform_scores(x: np.ndarray) -> np.ndarray:
    return np.full((len(x), 3), 0.5, dtype=np.float32)


def four_classes(x: np.ndarray) -> np.ndarray:
    return np.full((len(x), 4), 0.25, dtype=np.float32)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (None, "train_fn returned None; train_fn must return a fitted classifier"),
        (LinearRegression().fit(np.eye(8), np.arange(8)), "LinearRegression that mlwarden cannot"),
        ("model.onnx", "returned 'model.onnx'"),
        (uniform_scores, "not probabilities"),
        (four_classes, "with 4 classes, the target has 3"),
    ],
)
def test_a_train_fn_returning_no_usable_classifier_says_what_to_return(  # type: ignore[no-untyped-def]
    tabular, returned, message
) -> None:
    with pytest.raises(UsageError, match=message):
        train(Returns(returned), tabular, mode="offline", n_reference=1)


def test_a_factory_that_fails_is_named_once(tabular) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    trainer = TorchTrainer(f"{__name__}:broken_factory", epochs=1)
    with pytest.raises(UsageError) as caught:
        train(trainer, tabular, mode="offline", n_reference=1)
    message = str(caught.value)
    assert message.startswith("reference model 1 of 1 (seed ")
    assert (
        f") failed: TorchTrainer factory {__name__}:broken_factory raised RuntimeError" in message
    )
    assert "train_fn raised UsageError" not in message


def test_a_torch_model_with_the_wrong_number_of_classes_is_refused(tabular) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    trainer = TorchTrainer(f"{__name__}:four_class_mlp", epochs=1)
    with pytest.raises(UsageError, match="with 4 classes, the target has 3"):
        train(trainer, tabular, mode="offline", n_reference=1)


# -- parallel work -----------------------------------------------------------------------------


class HoldsALock:
    """Cannot be pickled: its lock cannot cross to another process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        return LogisticRegression(max_iter=200).fit(x, y)


def test_an_unpicklable_train_fn_with_n_jobs_suggests_n_jobs_1(tabular) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=r"must be picklable there .* or use n_jobs=1"):
        train(HoldsALock(), tabular, n_jobs=2)
    assert train(HoldsALock(), tabular, n_jobs=1).k == 4


@pytest.mark.slow  # starting two worker processes takes seconds on a shared machine
def test_joblib_processes_give_the_same_models_and_name_failures(tabular) -> None:  # type: ignore[no-untyped-def]
    here = train(LOGISTIC, tabular)
    there = train(LOGISTIC, tabular, n_jobs=2)
    np.testing.assert_allclose(here.probs_candidates, there.probs_candidates, atol=1e-6)
    assert np.array_equal(here.in_population, there.in_population)
    with pytest.raises(UsageError, match=r"reference model \d of 4 \(seed \d+\) failed.*no GPU"):
        train(always_fails, tabular, n_jobs=2)


# -- the cache ---------------------------------------------------------------------------------


def test_a_second_call_reads_every_model_from_the_cache(tabular, tmp_path, flaky_state) -> None:  # type: ignore[no-untyped-def]
    first = train(flaky, tabular, cache_dir=tmp_path)
    assert first.cached == 0 and len(flaky_state["calls"]) == 4
    second = train(flaky, tabular, cache_dir=tmp_path)
    assert second.cached == 4 and second.train_seconds == 0.0
    assert len(flaky_state["calls"]) == 4
    assert np.array_equal(first.probs_population, second.probs_population)


@pytest.mark.parametrize(
    "changed",
    [
        {"seed": 1},
        {"mode": "offline"},
        {"n_reference": 6},
        {"train_fn": LogisticRegression(C=0.1, max_iter=200)},
    ],
)
def test_the_cache_is_not_reused_for_other_settings(tabular, tmp_path, changed) -> None:  # type: ignore[no-untyped-def]
    train(LogisticRegression(max_iter=200), tabular, cache_dir=tmp_path)
    options = dict(changed)
    train_fn = options.pop("train_fn", LogisticRegression(max_iter=200))
    assert train(train_fn, tabular, cache_dir=tmp_path, **options).cached == 0


def test_the_cache_is_not_reused_for_other_data(tabular, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train(LOGISTIC, tabular, cache_dir=tmp_path)
    x, y = tabular["population"]
    changed = {"candidates": tabular["candidates"], "population": (x * 0.5, y)}
    assert train(LOGISTIC, changed, cache_dir=tmp_path).cached == 0


class WritesMarker:
    """Writes a file when unpickled: a cache read with pickle would run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "unpickled"))


def test_corrupt_cache_files_are_ignored_with_a_warning_and_retrained(tabular, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clean = train(LOGISTIC, tabular, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("reference-*.npz"))
    marker = tmp_path / "marker"
    files[0].write_bytes(b"PK\x03\x04 truncated")
    np.savez(files[1], key=np.array([WritesMarker(marker)], dtype=object), probs=np.zeros(3))
    np.savez(files[2], key=np.array("another key"), probs=np.zeros((180, 3), np.float32))
    np.savez(
        files[3], key=np.array(files[3].stem.removeprefix("reference-")), probs=np.ones((180, 3))
    )
    with pytest.warns(ReferenceCacheWarning) as warned:
        again = train(LOGISTIC, tabular, cache_dir=tmp_path)
    reasons = " | ".join(str(w.message) for w in warned)
    assert "unreadable" in reasons and "other inputs" in reasons and "float64" in reasons
    assert again.cached == 0 and not marker.exists()
    np.testing.assert_allclose(again.probs_candidates, clean.probs_candidates, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train(LOGISTIC, tabular, cache_dir=tmp_path).cached == 4


def test_a_cache_dir_that_is_a_file_is_a_usage_error(tabular, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cache"
    path.write_text("not a folder")
    with pytest.raises(UsageError, match="is a file; give a folder"):
        train(LOGISTIC, tabular, cache_dir=path)


def test_cache_keys_follow_what_the_train_fn_is() -> None:
    identity = reference_module._identity
    assert identity(LogisticRegression(C=1.0)) == identity(LogisticRegression(C=1.0))
    assert identity(LogisticRegression(C=1.0)) != identity(LogisticRegression(C=2.0))
    assert identity(TorchTrainer("a:b", epochs=2)) != identity(TorchTrainer("a:b", epochs=3))
    assert identity(logistic) == identity(logistic) != identity(flaky)

    def make(scale: float) -> Any:
        return lambda x, y, seed: scale

    assert identity(make(1.0)) == identity(make(1.0)) != identity(make(2.0))
    assert "0x" not in identity(EstimatorTrainFn(LOGISTIC))


# -- TorchTrainer ----------------------------------------------------------------------------


def four_class_mlp() -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(8, 4))


def broken_factory() -> Any:
    raise RuntimeError("no such layer")


def digits_mlp() -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits() -> Data:
    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target


def test_torch_trainer_is_seeded_picklable_and_learns(digits) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    x, y = digits
    trainer = TorchTrainer(digits_mlp, epochs=5, lr=0.01, batch_size=64)
    state = torch.random.get_rng_state()
    model = trainer(x[:1000], y[:1000], 7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not model.training
    again = pickle.loads(pickle.dumps(trainer))(x[:1000], y[:1000], 7)
    other = trainer(x[:1000], y[:1000], 8)
    first = [p.detach() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(first, again.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other.parameters(), strict=True))
    with torch.no_grad():
        predicted = model(torch.from_numpy(x[1000:])).argmax(dim=1).numpy()
    assert (predicted == y[1000:]).mean() > 0.85


def test_torch_trainer_reference_models_predict_the_population(digits) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    x, y = digits
    trainer = TorchTrainer(
        f"{__name__}:digits_mlp", epochs=3, lr=0.1, optimizer="sgd", momentum=0.9, batch_size=32
    )
    result = train_reference(
        trainer,
        candidates=(x[:100], y[:100]),
        population=(x[100:500], y[100:500]),
        n_reference=4,
        mode="online",
        n_classes=10,
        seed=0,
        cache_dir=None,
        n_jobs=1,
        dask=None,
        progress=None,
    )
    np.testing.assert_allclose(result.probs_population.sum(axis=2), 1.0, atol=1e-5)
    accuracy = (result.probs_population.argmax(axis=2) == y[100:500]).mean()
    assert accuracy > 0.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"factory": "no_colon"}, "package.module:function"),
        ({"factory": 3}, "pass the class itself"),
        ({"epochs": 0}, "epochs must be a whole number"),
        ({"batch_size": 1.5}, "batch_size must be a whole number"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"optimizer": "rmsprop"}, "adam or sgd"),
        ({"momentum": 1.0}, "momentum"),
    ],
)
def test_torch_trainer_refuses_bad_settings(options, message) -> None:  # type: ignore[no-untyped-def]
    settings: dict[str, Any] = {"factory": digits_mlp, **options}
    with pytest.raises(UsageError, match=message):
        TorchTrainer(**settings)


def test_torch_trainer_says_when_the_model_does_not_fit_the_data(digits) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    x, y = digits
    with pytest.raises(UsageError, match=r"shape \(n, 64\) and return logits .* n_classes > 9"):
        TorchTrainer(four_class_mlp)(x[:50], y[:50], 0)


def test_torch_trainer_factory_must_build_a_module(digits) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    x, y = digits
    with pytest.raises(UsageError, match=r"must return a torch\.nn\.Module"):
        TorchTrainer(dict)(x[:10], y[:10], 0)
    with pytest.raises(UsageError, match="has no nothing_here"):
        TorchTrainer(f"{__name__}:nothing_here")(x[:10], y[:10], 0)
