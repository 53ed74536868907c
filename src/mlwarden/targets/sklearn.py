"""scikit-learn classifiers as black-box targets, via ``predict_proba`` or ``decision_function``.

Class indices everywhere in mlwarden (labels given to attacks, predictions in results) are
positions in the estimator's ``classes_``, not the original labels: a model trained on labels
``["cat", "dog"]`` or ``[3, 7]`` has classes 0 and 1. `SklearnTarget.label_indices` maps original
labels to those indices. Not for: regressors, clusterers or outlier detectors (they do not
classify), or loading estimators from files (`mlwarden.targets.loading`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlwarden.errors import InputError, TargetError, UsageError
from mlwarden.targets.base import DEFAULT_BATCH_SIZE, Target

try:
    from sklearn.base import is_classifier, is_regressor
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:
    raise UsageError(
        "scikit-learn models need scikit-learn: pip install mlwarden[sklearn]"
    ) from exc


class SklearnTarget(Target):
    """A fitted scikit-learn classifier (or a Pipeline ending in one), black-box.

    ``mlwarden.target(estimator)`` builds one. Probabilities come from ``predict_proba`` when
    the estimator has it, else from ``decision_function`` (sigmoid of the margin for two
    classes, softmax of the scores for more).
    """

    def __init__(
        self,
        estimator: Any,
        *,
        input_shape: Sequence[int] | None = None,
        n_classes: int | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        query_budget: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str | None = None,
    ) -> None:
        """Wrap a fitted classifier.

        Args:
            estimator: a fitted scikit-learn classifier or Pipeline ending in one.
            input_shape: shape of one sample; ``(n_features_in_,)`` by default. Another shape
                with as many elements is allowed (``(8, 8)`` for a model on 64 pixel features):
                samples are flattened before the estimator sees them.
            n_classes: optional check; must equal ``len(classes_)``.
            input_range: valid inputs in feature units, (0, 1) by default; tabular features
                rarely live there, so scale them or pass their real bounds.
            query_budget: maximum samples answered, None for unlimited.
            batch_size: samples per call to the estimator.
            name: shown in reports; the estimator's class name by default.
        """
        kind = type(estimator).__name__
        if is_regressor(estimator) or not is_classifier(estimator):
            what = "a regressor" if is_regressor(estimator) else "not a classifier"
            raise InputError(
                f"{kind} is {what}; evasion attacks need a classifier with classes_ and "
                "predict_proba or decision_function"
            )
        try:
            check_is_fitted(estimator)
        except NotFittedError:
            raise InputError(f"{kind} is not fitted; call fit() before attacking it") from None
        classes = getattr(estimator, "classes_", None)
        if classes is None or np.asarray(classes).ndim != 1:
            raise InputError(
                f"{kind} has no single classes_ array (multi-output classifiers are not "
                "supported); attack one output at a time"
            )
        self.classes = np.asarray(classes)
        """The estimator's ``classes_``: class index ``i`` means label ``classes[i]``."""
        if n_classes is not None and n_classes != len(self.classes):
            raise InputError(
                f"n_classes={n_classes} but {kind} has {len(self.classes)} classes_; "
                "leave n_classes out"
            )
        self._method = _scoring_method(estimator, kind)
        self.estimator = estimator
        super().__init__(
            n_classes=len(self.classes),
            input_shape=_input_shape(estimator, input_shape, kind),
            input_range=input_range,
            query_budget=query_budget,
            batch_size=batch_size,
            name=name or kind,
        )

    def label_indices(self, y: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Original labels (values of ``classes_``) as int64 class indices, as attacks want."""
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise InputError(f"labels have shape {labels.shape}; expected one label per sample")
        index = {label: i for i, label in enumerate(self.classes.tolist())}
        values = labels.tolist()
        positions = [index.get(label, -1) for label in values]
        unknown = sorted({repr(label) for label in values if label not in index})
        if unknown:
            known = ", ".join(map(repr, self.classes[:10].tolist()))
            raise InputError(
                f"labels {', '.join(unknown[:5])} are not classes of {self.name} "
                f"(classes_: {known}); give labels the model was trained on"
            )
        return np.asarray(positions, dtype=np.int64)

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        rows = x.reshape(len(x), -1)
        try:
            with warnings.catch_warnings():
                # Fitted on a DataFrame, asked with arrays: the columns are in the same order.
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                scores = np.asarray(getattr(self.estimator, self._method)(rows), dtype=np.float64)
        except Exception as exc:  # the user's estimator raising is a target failure
            raise TargetError(f"{self.name} raised {type(exc).__name__}: {exc}") from exc
        if self._method == "predict_proba":
            return scores
        return _scores_to_probabilities(scores)


def _scoring_method(estimator: Any, kind: str) -> str:
    for method in ("predict_proba", "decision_function"):
        # hasattr is False when scikit-learn disables the method (SVC(probability=False)).
        if hasattr(estimator, method):
            return method
    raise InputError(
        f"{kind} has neither predict_proba nor decision_function; attack it as a decision-only "
        "model: mlwarden.target(fn, output='labels', ...) with fn returning class indices"
    )


def _input_shape(estimator: Any, given: Sequence[int] | None, kind: str) -> tuple[int, ...]:
    n_features = getattr(estimator, "n_features_in_", None)
    if given is None:
        if n_features is None:
            raise InputError(f"{kind} does not record n_features_in_; pass input_shape=")
        return (int(n_features),)
    shape = tuple(int(d) for d in given)
    if n_features is not None and int(np.prod(shape)) != int(n_features):
        raise InputError(
            f"input_shape {shape} has {int(np.prod(shape))} values per sample but {kind} "
            f"was fitted on {n_features} features"
        )
    return shape


def _scores_to_probabilities(scores: np.ndarray) -> np.ndarray:
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim == 1:
        # Binary margin: positive favours classes_[1]. tanh form is overflow-free.
        positive = 0.5 * (1.0 + np.tanh(0.5 * scores))
        return np.stack([1.0 - positive, positive], axis=1)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))
