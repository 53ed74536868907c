"""CallableTarget: any Python function as a black-box target."""

from __future__ import annotations

import numpy as np
import pytest

import mlwarden.targets
from mlwarden.errors import InputError, QueryBudgetExceeded, TargetError
from mlwarden.targets.callable import CallableTarget

WEIGHTS = np.array([[2.0, -1.0, 0.5], [-1.0, 2.0, 0.0]], dtype=np.float32)
SAMPLES = np.random.default_rng(0).uniform(size=(9, 2)).astype(np.float32)


def model_probabilities(x: np.ndarray) -> np.ndarray:
    scores = x @ WEIGHTS
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def model_labels(x: np.ndarray) -> np.ndarray:
    return model_probabilities(x).argmax(axis=1)


def test_a_function_returning_probabilities_is_probed_for_n_classes() -> None:
    calls: list[int] = []

    def fn(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return model_probabilities(x)

    target = mlwarden.targets.target(fn, input_shape=(2,))
    assert isinstance(target, CallableTarget)
    assert (target.n_classes, target.output, target.name) == (3, "probabilities", "fn")
    assert calls == [1]
    assert target.queries == 0  # the probe is not a query
    np.testing.assert_allclose(target.predict_proba(SAMPLES), model_probabilities(SAMPLES))


def test_a_function_returning_labels_gives_one_hot_rows() -> None:
    target = CallableTarget(model_labels, input_shape=(2,), n_classes=3)
    assert target.output == "labels"
    probs = target.predict_proba(SAMPLES)
    np.testing.assert_array_equal(probs.argmax(axis=1), model_labels(SAMPLES))
    np.testing.assert_array_equal(probs.sum(axis=1), 1.0)
    assert set(np.unique(probs)) <= {0.0, 1.0}


def test_declaring_output_and_n_classes_skips_the_probe() -> None:
    calls: list[int] = []

    def fn(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return model_labels(x)

    target = CallableTarget(fn, input_shape=(2,), n_classes=3, output="labels")
    assert calls == []
    target.predict(SAMPLES)
    assert calls == [9]


def test_label_outputs_need_n_classes() -> None:
    with pytest.raises(InputError, match="returns labels; pass n_classes="):
        CallableTarget(model_labels, input_shape=(2,))
    with pytest.raises(InputError, match="needs n_classes="):
        CallableTarget(model_labels, input_shape=(2,), output="labels")


def test_input_shape_is_required() -> None:
    with pytest.raises(InputError, match="input_shape="):
        CallableTarget(model_probabilities)


def test_declared_output_must_match_what_the_function_returns() -> None:
    with pytest.raises(InputError, match="output='probabilities' but"):
        CallableTarget(model_labels, input_shape=(2,), output="probabilities")


def test_labels_out_of_range_are_a_target_error() -> None:
    target = CallableTarget(lambda x: np.full(len(x), 5), input_shape=(2,), n_classes=3)
    with pytest.raises(
        TargetError, match=r"labels from 5 to 5; expected class indices in \[0, 2\]"
    ):
        target.predict(SAMPLES)


def test_non_integer_labels_are_a_target_error() -> None:
    target = CallableTarget(lambda x: np.full(len(x), 0.5), input_shape=(2,), n_classes=3)
    with pytest.raises(TargetError, match="not class indices"):
        target.predict(SAMPLES)


def test_wrong_shapes_and_nan_are_target_errors() -> None:
    too_few = CallableTarget(lambda x: model_probabilities(x)[:1], input_shape=(2,), n_classes=3)
    with pytest.raises(TargetError, match="answered shape"):
        too_few.predict_proba(SAMPLES)
    nan = CallableTarget(
        lambda x: np.full((len(x), 3), np.nan),
        input_shape=(2,),
        n_classes=3,
        output="probabilities",
    )
    with pytest.raises(TargetError, match="NaN"):
        nan.predict_proba(SAMPLES)


def test_a_function_that_raises_is_a_target_error() -> None:
    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("backend down")

    with pytest.raises(TargetError, match="broken raised RuntimeError: backend down"):
        CallableTarget(broken, input_shape=(2,))
    target = CallableTarget(broken, input_shape=(2,), n_classes=2, output="probabilities")
    with pytest.raises(TargetError, match="backend down"):
        target.predict_proba(SAMPLES)


def test_a_probe_answer_of_the_wrong_shape_is_explained() -> None:
    with pytest.raises(InputError, match=r"returned shape \(2, 3\) for one sample"):
        CallableTarget(lambda x: np.zeros((2, 3)), input_shape=(2,))


def test_not_a_callable_is_refused() -> None:
    with pytest.raises(InputError, match="expected a callable"):
        CallableTarget(42, input_shape=(2,))  # type: ignore[arg-type]


def test_queries_are_counted_per_sample_and_budgeted() -> None:
    target = CallableTarget(model_probabilities, input_shape=(2,), query_budget=10, batch_size=4)
    target.predict_proba(SAMPLES)
    assert target.queries == 9
    with pytest.raises(QueryBudgetExceeded, match="query budget of 10"):
        target.predict_proba(SAMPLES[:2])
