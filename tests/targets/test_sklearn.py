"""SklearnTarget: scikit-learn classifiers as black-box targets."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC, LinearSVC

import mlwarden.targets
from mlwarden.errors import InputError, QueryBudgetExceeded, TargetError, UsageError
from mlwarden.targets.sklearn import SklearnTarget

Iris = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def iris() -> Iris:
    x, y = load_iris(return_X_y=True)
    return MinMaxScaler().fit_transform(x).astype(np.float32), y


@pytest.fixture(scope="module")
def iris_model(iris: Iris) -> LogisticRegression:
    x, y = iris
    return LogisticRegression(max_iter=500).fit(x, y)


def test_target_picks_the_sklearn_adapter(iris_model: LogisticRegression) -> None:
    target = mlwarden.targets.target(iris_model)
    assert isinstance(target, SklearnTarget)
    assert target.n_classes == 3
    assert target.input_shape == (4,)
    assert target.name == "LogisticRegression"


def test_probabilities_match_predict_proba(iris: Iris, iris_model: LogisticRegression) -> None:
    x, _ = iris
    target = SklearnTarget(iris_model)
    probs = target.predict_proba(x[:20])
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, iris_model.predict_proba(x[:20]), rtol=1e-5)
    np.testing.assert_array_equal(target.predict(x[:20]), iris_model.predict(x[:20]))


def test_multiclass_decision_function_becomes_softmax(iris: Iris) -> None:
    x, y = iris
    svc = SVC().fit(x, y)
    target = SklearnTarget(svc)
    probs = target.predict_proba(x[:30])
    scores = svc.decision_function(x[:30])
    expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    np.testing.assert_array_equal(target.predict(x[:30]), svc.predict(x[:30]))


def test_binary_margin_becomes_sigmoid() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x = MinMaxScaler().fit_transform(x)
    svm = LinearSVC().fit(x, y)
    target = SklearnTarget(svm)
    probs = target.predict_proba(x[:25])
    margin = svm.decision_function(x[:25])
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-margin)), rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(target.predict(x[:25]), svm.predict(x[:25]))


def test_pipeline_is_a_classifier(iris: Iris) -> None:
    x, y = iris
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    target = mlwarden.targets.target(pipe)
    np.testing.assert_allclose(target.predict_proba(x[:5]), pipe.predict_proba(x[:5]), rtol=1e-5)


def test_image_shaped_inputs_are_flattened(iris: Iris, iris_model: LogisticRegression) -> None:
    x, _ = iris
    target = SklearnTarget(iris_model, input_shape=(2, 2))
    probs = target.predict_proba(x[:3].reshape(3, 2, 2))
    np.testing.assert_allclose(probs, iris_model.predict_proba(x[:3]), rtol=1e-5)


def test_input_shape_with_the_wrong_size_is_refused(iris_model: LogisticRegression) -> None:
    with pytest.raises(InputError, match="4 features"):
        SklearnTarget(iris_model, input_shape=(5,))


def test_label_indices_map_original_labels_to_positions_in_classes(iris: Iris) -> None:
    x, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=500).fit(x, names)
    target = SklearnTarget(model)
    np.testing.assert_array_equal(target.label_indices(names), y)
    np.testing.assert_array_equal(target.classes, ["setosa", "versicolor", "virginica"])


def test_unknown_labels_are_named(iris_model: LogisticRegression) -> None:
    target = SklearnTarget(iris_model)
    with pytest.raises(InputError, match=r"labels 7 are not classes.*classes_: 0, 1, 2"):
        target.label_indices(np.array([0, 7, 1]))
    with pytest.raises(InputError, match="one label per sample"):
        target.label_indices(np.zeros((2, 2)))


def test_a_regressor_is_refused(iris: Iris) -> None:
    x, y = iris
    with pytest.raises(InputError, match="LinearRegression is a regressor"):
        SklearnTarget(LinearRegression().fit(x, y))


def test_a_transformer_is_not_a_classifier(iris: Iris) -> None:
    x, _ = iris
    with pytest.raises(InputError, match="not a classifier"):
        SklearnTarget(StandardScaler().fit(x))


def test_an_unfitted_classifier_is_refused() -> None:
    with pytest.raises(InputError, match="not fitted"):
        SklearnTarget(LogisticRegression())


def test_n_classes_must_agree_with_classes(iris_model: LogisticRegression) -> None:
    with pytest.raises(InputError, match="n_classes=5"):
        SklearnTarget(iris_model, n_classes=5)


def test_estimator_failure_is_a_target_error(
    iris: Iris, iris_model: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = SklearnTarget(iris_model)

    def broken(rows: np.ndarray) -> np.ndarray:
        raise MemoryError("out of memory")

    monkeypatch.setattr(iris_model, "predict_proba", broken)
    with pytest.raises(TargetError, match="LogisticRegression raised MemoryError"):
        target.predict_proba(iris[0][:2])


def test_queries_are_counted_per_sample_and_budgeted(
    iris: Iris, iris_model: LogisticRegression
) -> None:
    x, _ = iris
    target = SklearnTarget(iris_model, query_budget=25, batch_size=7)
    target.predict_proba(x[:20])
    assert target.queries == 20
    with pytest.raises(QueryBudgetExceeded):
        target.predict_proba(x[:6])
    assert target.queries == 20


def test_missing_scikit_learn_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "mlwarden.targets.sklearn")
    monkeypatch.setitem(sys.modules, "sklearn.base", None)
    with pytest.raises(UsageError, match=r"pip install mlwarden\[sklearn\]"):
        import mlwarden.targets.sklearn  # noqa: F401
