"""Reference models for membership inference: train them once, keep only what they answered.

`train_reference` trains ``k`` models like the target on halves of the records the auditor
controls, queries each for its probabilities on every candidate and population record, and
returns those outputs with the masks of who was in which training set (a `ReferenceSet`). The
models themselves are dropped. Halves are drawn per class in pairs (LiRA's paired sampling): in
``online`` mode every record of candidates + population is IN for exactly half of the models
(``floor`` or ``ceil`` of ``k / 2`` for odd ``k``), in ``offline`` mode the same holds for the
population and every candidate is OUT. Each model's outputs are cached on disk as one ``.npz``
(never pickle) keyed by what produced them, so an interrupted audit resumes instead of
retraining. Work runs in this process, in joblib processes (``n_jobs``) or on a Dask cluster.

How to train a model is the user's ``train_fn(x, y, seed) -> model``, a scikit-learn estimator
(cloned per model) or a `TorchTrainer`; `as_train_fn` turns any of them into the callable.
Not for: the attacks that use the outputs (one module each), DP-SGD itself (`mlwarden.defenses.dp`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import inspect
import os
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlwarden.attacks.membership.base import ReferenceMode, ReferenceSet
from mlwarden.errors import InputError, MlwardenError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from mlwarden.audit.runner import ProgressFn
    from mlwarden.defenses.dp import DPSettings

__all__ = [
    "MIN_TRAIN_RECORDS",
    "EstimatorTrainFn",
    "ReferenceCacheWarning",
    "TorchTrainer",
    "as_train_fn",
    "min_train_records",
    "paired_halves",
    "train_reference",
]

TrainFn = Callable[[np.ndarray, np.ndarray, int], Any]
"""``train_fn(x, y, seed) -> model``: a fitted classifier trained on ``(x, y)``."""

Data = tuple[np.ndarray, np.ndarray]

MIN_TRAIN_RECORDS = 20
"""Smallest training set of a reference model; with many classes it is ``2 * n_classes``."""
MIN_RECORDS_PER_CLASS = 2
"""Records of every class in the pool reference models draw from: halves are drawn per class
in pairs, so 2 put each class in every reference model's training set at least once."""
PROGRESS_LABEL = "training reference models"
CACHE_FORMAT = "mlwarden-reference-v1"
"""Part of every cache key: bump it when what a cache file holds changes."""
QUERY_BATCH_SIZE = 1024
"""Samples per prediction call when a reference model is queried."""
DASK_CONNECT_TIMEOUT_S = 10.0
"""How long to wait for a Dask scheduler given by address."""
PROBABILITY_TOLERANCE = 1e-3
"""How far from 1 a probability row may sum (float32 softmax, rounding)."""


def min_train_records(n_classes: int) -> int:
    """Smallest training set a reference model may have: ``max(20, 2 * n_classes)`` records."""
    return max(MIN_TRAIN_RECORDS, 2 * n_classes)


class ReferenceCacheWarning(UserWarning):
    """A cache file could not be used (unreadable, truncated, from other data) and is retrained."""


# -- how a reference model is trained --------------------------------------------------------


@dataclass(frozen=True)
class EstimatorTrainFn:
    """A scikit-learn estimator as a ``train_fn``: cloned and fitted per reference model.

    Every ``random_state`` parameter (also nested ones, ``clf__random_state`` in a Pipeline) is
    set to the model's seed, so reference models differ as models retrained by the user would.
    Inputs are flattened to ``(n, features)``.
    """

    estimator: Any

    def __call__(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        """Fit a clone of the estimator on ``(x, y)`` with `seed`; returns the fitted clone."""
        from sklearn.base import clone

        model = clone(self.estimator)
        seeds = {
            name: int(seed)
            for name in model.get_params(deep=True)
            if name == "random_state" or name.endswith("__random_state")
        }
        if seeds:
            model.set_params(**seeds)
        model.fit(np.asarray(x).reshape(len(x), -1), y)
        return model


@dataclass(frozen=True)
class TorchTrainer:
    """A PyTorch training recipe as a picklable ``train_fn``: ``trainer(x, y, seed) -> module``.

    `factory` builds an untrained ``nn.Module`` mapping ``(n, *input_shape)`` float32 to logits
    ``(n, n_classes)``: a top-level function or class, or its ``"package.module:function"``
    name (lambdas and local functions work in this process but not with ``n_jobs > 1`` or Dask
    unless cloudpickle can carry them). Training runs on the CPU with cross-entropy, shuffled
    mini-batches and torch seeded from `seed` (the caller's global torch RNG is left as it was);
    with `dp` it runs DP-SGD through Opacus (`mlwarden.defenses.dp.train_dp`). The module comes
    back in eval mode.
    """

    factory: Callable[[], nn.Module] | str
    _: dataclasses.KW_ONLY
    epochs: int = 20
    """Passes over the training set, >= 1."""
    lr: float = 1e-3
    """Learning rate, > 0."""
    batch_size: int = 64
    """Records per step, >= 1 (the expected batch size under DP-SGD's Poisson sampling)."""
    weight_decay: float = 0.0
    """L2 penalty, >= 0."""
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.0
    """SGD momentum in [0, 1); ignored by Adam."""
    dp: DPSettings | None = None
    """Train with DP-SGD at these settings; None for ordinary training."""

    def __post_init__(self) -> None:
        if isinstance(self.factory, str):
            module_name, _, attribute = self.factory.partition(":")
            if not module_name or not attribute:
                raise UsageError(
                    f"TorchTrainer factory {self.factory!r} must look like package.module:function"
                )
        elif not callable(self.factory):
            raise UsageError(
                f"TorchTrainer factory must build the model: a function or class, got a "
                f"{type(self.factory).__name__} (pass the class itself, not an instance)"
            )
        _check_positive_int("epochs", self.epochs)
        _check_positive_int("batch_size", self.batch_size)
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"TorchTrainer lr must be > 0, got {self.lr}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UsageError(f"TorchTrainer weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.momentum < 1.0:
            raise UsageError(f"TorchTrainer momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer not in ("adam", "sgd"):
            raise UsageError(f"TorchTrainer optimizer must be adam or sgd, got {self.optimizer!r}")

    def build(self) -> nn.Module:
        """A fresh, untrained module from `factory`."""
        from torch import nn

        factory = _resolve_factory(self.factory)
        try:
            model = factory()
        except Exception as exc:  # the user's model code failing is named, not a traceback
            raise UsageError(
                f"TorchTrainer factory {_name_of(factory)} raised {type(exc).__name__}: {exc}; "
                "it is called with no arguments and must return an untrained torch.nn.Module"
            ) from exc
        if not isinstance(model, nn.Module):
            raise UsageError(
                f"TorchTrainer factory {_name_of(factory)} returned a {type(model).__name__}; "
                "it must return a torch.nn.Module"
            )
        return model

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer these settings name, over `model`'s parameters."""
        import torch

        if self.optimizer == "sgd":
            return torch.optim.SGD(
                model.parameters(),
                lr=self.lr,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
            )
        return torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def __call__(self, x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
        """Train a new model on ``(x, y)`` (inputs ``(n, *input_shape)``, class indices)."""
        if self.dp is not None:
            from mlwarden.defenses.dp import train_dp

            return train_dp(
                self.build,
                x,
                y,
                settings=self.dp,
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                seed=seed,
                optimizer=self.optimizer,
                weight_decay=self.weight_decay,
                momentum=self.momentum,
            ).module
        import torch
        from torch.nn import functional

        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        labels = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
        generator = torch.Generator().manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = self.build()
            optimizer = self.make_optimizer(model)
            model.train()
            try:
                for _ in range(self.epochs):
                    order = torch.randperm(len(inputs), generator=generator)
                    for start in range(0, len(inputs), self.batch_size):
                        batch = order[start : start + self.batch_size]
                        optimizer.zero_grad(set_to_none=True)
                        logits = model(inputs[batch])
                        loss = functional.cross_entropy(logits, labels[batch])
                        loss.backward()  # type: ignore[no-untyped-call]
                        optimizer.step()
            except Exception as exc:  # a model that does not fit the data, named
                raise UsageError(
                    _training_failed(_name_of(_resolve_factory(self.factory)), exc, inputs, labels)
                ) from exc
        return model.eval()


def _training_failed(name: str, exc: BaseException, inputs: Any, labels: Any) -> str:
    """What to say when training the model `name` built raised `exc` on these tensors."""
    shape = ", ".join(str(d) for d in tuple(inputs.shape)[1:])
    top = int(labels.max()) if len(labels) else 0
    return (
        f"training the model from {name} raised {type(exc).__name__}: {exc}; it must take "
        f"inputs of shape (n, {shape}) and return logits (n, n_classes) with n_classes > {top}"
    )


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"TorchTrainer {name} must be a whole number >= 1, got {value!r}")


def _resolve_factory(factory: Callable[[], nn.Module] | str) -> Callable[[], nn.Module]:
    if not isinstance(factory, str):
        return factory
    module_name, _, attribute = factory.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name} for TorchTrainer factory: {exc}") from exc
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise UsageError(f"{module_name} has no {attribute} (TorchTrainer factory {factory})")
        found = getattr(found, part)
    if not callable(found):
        raise UsageError(f"TorchTrainer factory {factory} is a {type(found).__name__}")
    resolved: Callable[[], nn.Module] = found
    return resolved


def _name_of(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{name}"


def _is_estimator(obj: Any) -> bool:
    return hasattr(obj, "fit") and hasattr(obj, "get_params")


def as_train_fn(obj: Any) -> TrainFn:
    """`obj` as ``train_fn(x, y, seed) -> model``: a `TorchTrainer` or a function is returned
    as it is, an unfitted or fitted scikit-learn estimator becomes an `EstimatorTrainFn`."""
    if isinstance(obj, type) and _is_estimator(obj):
        raise UsageError(
            f"train_fn is the class {obj.__name__}; pass an instance such as {obj.__name__}() "
            "(it is cloned for every reference model)"
        )
    if isinstance(obj, (TorchTrainer, EstimatorTrainFn)):
        return obj
    if _is_estimator(obj) and not isinstance(obj, type):
        from sklearn.base import is_classifier

        if not is_classifier(obj):
            raise UsageError(
                f"train_fn is a {type(obj).__name__}, which is not a classifier; reference "
                "models must be classifiers like the target (predict_proba or decision_function)"
            )
        return EstimatorTrainFn(obj)
    if isinstance(obj, (str, bytes, os.PathLike)):
        raise UsageError(
            f"train_fn {obj!r} is a name, not a function; import it and pass the object "
            "(the CLI's --train-fn takes package.module:function)"
        )
    if callable(obj):
        train_fn: TrainFn = obj
        return train_fn
    raise UsageError(
        f"train_fn must be a function train_fn(x, y, seed) -> model, a scikit-learn estimator "
        f"or a TorchTrainer; got a {type(obj).__name__}"
    )


# -- who trains on what ----------------------------------------------------------------------


def paired_halves(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Which of `k` models train on each record: ``(k, n)`` bool, drawn per class.

    Within a class, records are shuffled and paired; each pair's first record goes to a random
    half of the models (a random permutation of the models per record) and its second record to
    the other half. So every record is IN for ``k // 2`` or ``k - k // 2`` models (exactly half
    for even ``k``), and every model gets ``floor`` or ``ceil`` of half of every class.
    """
    keep = np.zeros((k, len(labels)), dtype=bool)
    half = k // 2
    for label in np.unique(labels):
        order = rng.permutation(np.flatnonzero(labels == label))
        pairs = len(order) // 2
        extra = rng.integers(0, 2, size=pairs) if k % 2 else np.zeros(pairs, dtype=np.int64)
        ranks = rng.random((pairs, k)).argsort(axis=1)
        first = ranks < (half + extra)[:, None]
        keep[:, order[0 : 2 * pairs : 2]] = first.T
        keep[:, order[1 : 2 * pairs : 2]] = ~first.T
        if len(order) % 2:
            size = half + (int(rng.integers(0, 2)) if k % 2 else 0)
            keep[rng.permutation(k)[:size], order[-1]] = True
    return keep


@dataclass(frozen=True)
class _Job:
    """One reference model to train: its position, seed, training rows and cache key."""

    index: int
    seed: int
    train_rows: np.ndarray
    """Row positions into candidates + population (candidates first), int64."""
    key: str


@dataclass(frozen=True)
class _Trained:
    index: int
    probs: np.ndarray
    """``(n_c + n_p, n_classes)`` float32, candidates first."""


class _ModelFailed(Exception):
    """One reference model could not be trained or queried; `what` says why (picklable)."""

    def __init__(self, index: int, what: str) -> None:
        super().__init__(index, what)
        self.index = index
        self.what = what

    def __str__(self) -> str:
        return self.what


def _train_one(
    job: _Job,
    train_fn: TrainFn,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    input_range: tuple[float, float],
) -> _Trained:
    """Train job's model on its rows of ``(x, y)`` and return its probabilities on every row.

    Runs where the work is sent (this process, a joblib worker, a Dask worker); the model
    never leaves it.
    """
    try:
        model = train_fn(x[job.train_rows], y[job.train_rows], job.seed)
    except MlwardenError as exc:  # already says what went wrong (a named train_fn, a factory)
        raise _ModelFailed(job.index, str(exc)) from exc
    except Exception as exc:  # the user's training code failing is reported, not a crash
        raise _ModelFailed(job.index, f"train_fn raised {type(exc).__name__}: {exc}") from exc
    return _Trained(job.index, _query(model, x, n_classes, input_range, job.index))


def _query(
    model: Any, x: np.ndarray, n_classes: int, input_range: tuple[float, float], index: int
) -> np.ndarray:
    from mlwarden.targets import target as as_target

    expected = (
        "train_fn must return a fitted classifier: a scikit-learn estimator with predict_proba "
        "or decision_function, a torch.nn.Module returning logits, or a function mapping inputs "
        "to probabilities"
    )
    what = type(model).__name__
    if model is None or isinstance(model, (str, bytes, os.PathLike)):
        raise _ModelFailed(index, f"train_fn returned {model!r}; {expected}")
    try:
        wrapped = as_target(
            model,
            input_shape=tuple(x.shape[1:]),
            input_range=input_range,
            batch_size=QUERY_BATCH_SIZE,
            name=f"reference model {index + 1}",
        )
    except Exception as exc:  # whatever the returned object does wrong, the fix is the same
        raise _ModelFailed(
            index, f"train_fn returned a {what} that mlwarden cannot query ({exc}); {expected}"
        ) from exc
    if wrapped.n_classes != n_classes:
        raise _ModelFailed(
            index,
            f"train_fn returned a {what} with {wrapped.n_classes} classes, the target has "
            f"{n_classes}; the reference model must output one score per target class "
            "(for scikit-learn: every class must be in its training data)",
        )
    try:
        probs = wrapped.predict_proba(x)
    except Exception as exc:  # the model failing on the records is the user's model failing
        raise _ModelFailed(
            index, f"the {what} train_fn returned failed on the records ({exc}); {expected}"
        ) from exc
    rows = probs.sum(axis=1)
    if probs.min(initial=0.0) < 0 or not np.allclose(rows, 1.0, atol=PROBABILITY_TOLERANCE):
        raise _ModelFailed(
            index,
            f"train_fn returned a {what} whose scores are not probabilities (rows must be >= 0 "
            "and sum to 1); return a classifier with predict_proba, a module returning logits, "
            "or normalise the function's output",
        )
    return np.asarray(probs, dtype=np.float32)


# -- the entry point -------------------------------------------------------------------------


def train_reference(
    train_fn: Any,
    *,
    candidates: Data,
    population: Data,
    n_reference: int,
    mode: ReferenceMode,
    n_classes: int,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    dask: Any = None,
    progress: ProgressFn | None = None,
) -> ReferenceSet:
    """Train `n_reference` models like the target and return what they answered.

    `train_fn`: anything `as_train_fn` accepts. `candidates`, `population`: ``(x, y)`` with x
    ``(n, *input_shape)`` in the target's input units and y class indices in
    ``[0, n_classes)``. `mode`: ``online`` (halves of candidates + population; >= 4 models)
    or ``offline`` (halves of the population). The pool drawn from must hold every class at
    least twice and ``2 * max(20, 2 * n_classes)`` records, so each model trains on at least
    ``max(20, 2 * n_classes)`` records with every class. `seed`: the split and every model's
    seed. `cache_dir`: one ``.npz`` per finished model; reused on the next call. `n_jobs`:
    joblib processes (1 = this process, -1 = every core); `dask`: a ``distributed.Client`` or
    a scheduler address (``tcp://host:8786``) to train on instead. `progress`: called as
    ``progress("training reference models", done, total)``.
    """
    _check_settings(n_reference, mode, seed, n_jobs)
    fn = as_train_fn(train_fn)
    x, y, n_candidates = _joined(candidates, population, n_classes)
    k = int(n_reference)
    in_all = _split(y, n_candidates, mode, k, int(seed), n_classes)
    jobs = _jobs(fn, x, y, in_all, n_candidates, n_classes, mode, int(seed))
    cache = _Cache(cache_dir, len(x), n_classes)
    probs = np.zeros((k, len(x), n_classes), dtype=np.float32)
    todo = []
    for job in jobs:
        found = cache.load(job.key)
        if found is None:
            todo.append(job)
        else:
            probs[job.index] = found
    cached = k - len(todo)
    started = time.perf_counter()
    if progress is not None:
        progress(PROGRESS_LABEL, cached, k)
    if todo:
        runner = _Runner(fn, x, y, n_classes, _input_range(x), cache, k, len(todo))
        for trained in runner.run(todo, n_jobs=int(n_jobs), dask=dask):
            probs[trained.index] = trained.probs
            cache.save(jobs[trained.index].key, trained.probs)
            runner.done += 1
            if progress is not None:
                progress(PROGRESS_LABEL, runner.done, k)
    return ReferenceSet(
        mode=mode,
        probs_candidates=probs[:, :n_candidates],
        probs_population=probs[:, n_candidates:],
        in_candidates=in_all[:, :n_candidates],
        in_population=in_all[:, n_candidates:],
        train_seconds=time.perf_counter() - started if todo else 0.0,
        cached=cached,
    )


def _check_settings(n_reference: Any, mode: Any, seed: Any, n_jobs: Any) -> None:
    if mode not in ("online", "offline"):
        raise UsageError(f"reference mode must be online or offline, got {mode!r}")
    if not _is_whole(n_reference):
        raise UsageError(f"n_reference must be a whole number, got {n_reference!r}")
    if n_reference < 1:
        raise UsageError(f"n_reference must be >= 1, got {n_reference}")
    if mode == "online" and n_reference < 4:
        raise UsageError(
            f"online reference models need n_reference >= 4 (got {n_reference}): LiRA online "
            "fits a Gaussian to models trained with each record and one to models without it; "
            "use n_reference=4 or more (16+ is better), or reference_mode='offline'"
        )
    if not _is_whole(seed) or seed < 0:
        raise UsageError(f"seed must be a whole number >= 0, got {seed!r}")
    if not _is_whole(n_jobs) or n_jobs == 0:
        raise UsageError(f"n_jobs must be a non-zero whole number (-1 = every core), got {n_jobs}")


def _is_whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _split(
    y: np.ndarray, n_candidates: int, mode: ReferenceMode, k: int, seed: int, n_classes: int
) -> np.ndarray:
    """``(k, n_c + n_p)`` bool: who each model trains on (`paired_halves` of the pool)."""
    pool = np.arange(len(y)) if mode == "online" else np.arange(n_candidates, len(y))
    _check_pool(y[pool], n_classes, mode, k)
    in_all = np.zeros((k, len(y)), dtype=bool)
    rng = np.random.default_rng([seed, 0 if mode == "online" else 1])
    in_all[:, pool] = paired_halves(y[pool], k, rng)
    return in_all


def _jobs(
    train_fn: TrainFn,
    x: np.ndarray,
    y: np.ndarray,
    in_all: np.ndarray,
    n_candidates: int,
    n_classes: int,
    mode: ReferenceMode,
    seed: int,
) -> list[_Job]:
    """One job per model: its seed (drawn from `seed`), training rows and cache key."""
    seeds = np.random.SeedSequence([seed, 2]).generate_state(len(in_all), dtype=np.uint32)
    base = _base_key(train_fn, x, y, n_candidates, n_classes, mode)
    return [
        _Job(i, int(s), np.flatnonzero(rows), _job_key(base, i, int(s), rows))
        for i, (s, rows) in enumerate(zip(seeds, in_all, strict=True))
    ]


def _joined(
    candidates: Data, population: Data, n_classes: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Candidates and population as one float32 ``x`` and int64 ``y``, candidates first."""
    from mlwarden.targets.base import validate_labels

    if not _is_whole(n_classes) or n_classes < 2:
        raise InputError(f"n_classes must be a whole number >= 2, got {n_classes!r}")
    parts = []
    for name, data in (("candidates", candidates), ("population", population)):
        if not (isinstance(data, tuple) and len(data) == 2):
            raise InputError(f"{name} must be a pair (x, y)")
        try:
            x = np.asarray(data[0], dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name} inputs must be a numeric array: {exc}") from None
        if x.ndim < 2:
            raise InputError(f"{name} inputs have shape {x.shape}; expected (n, *input_shape)")
        if not np.isfinite(x).all():
            raise InputError(f"{name} inputs contain NaN or infinite values; clean them first")
        parts.append((x, validate_labels(np.asarray(data[1]), len(x), n_classes, f"{name} labels")))
    (x_c, y_c), (x_p, y_p) = parts
    if x_c.shape[1:] != x_p.shape[1:]:
        raise InputError(
            f"candidates have samples of shape {x_c.shape[1:]}, population {x_p.shape[1:]}; "
            "both must be records for the same model"
        )
    return np.concatenate([x_c, x_p]), np.concatenate([y_c, y_p]), len(x_c)


def _check_pool(labels: np.ndarray, n_classes: int, mode: ReferenceMode, k: int) -> None:
    """The population-size rule: every model gets >= min_train_records(n_classes) records and
    every class (a class needs 2 records in the pool to be in every model's half)."""
    pool = "candidates + population" if mode == "online" else "the population"
    need = min_train_records(n_classes)
    if len(labels) // 2 < need:
        raise InputError(
            f"population too small for {k} reference models: each trains on half of {pool} "
            f"({len(labels)} records, so {len(labels) // 2} each) and needs at least {need} "
            f"(max(20, 2 x {n_classes} classes)); give at least {2 * need} records"
        )
    counts = np.bincount(labels, minlength=n_classes)
    short = [int(c) for c in np.flatnonzero(counts < MIN_RECORDS_PER_CLASS)]
    if short:
        shown = ", ".join(f"class {c} ({counts[c]})" for c in short[:10])
        raise InputError(
            f"population too small for {k} reference models: {pool} must hold every class at "
            f"least {MIN_RECORDS_PER_CLASS} times so that each reference model trains on it, "
            f"but has {shown}; add records of those classes"
        )


def _input_range(x: np.ndarray) -> tuple[float, float]:
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
    return (low, high) if high > low else (low, low + 1.0)


# -- running the work ------------------------------------------------------------------------


class _Runner:
    """Sends the jobs to this process, joblib or Dask and yields models as they finish."""

    def __init__(
        self,
        train_fn: TrainFn,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        input_range: tuple[float, float],
        cache: _Cache,
        k: int,
        n_todo: int,
    ) -> None:
        self.train_fn = train_fn
        self.x = x
        self.y = y
        self.n_classes = n_classes
        self.input_range = input_range
        self.cache = cache
        self.k = k
        self.done = k - n_todo
        """Models whose outputs are kept (cached before, or finished in this call)."""

    def run(self, jobs: Sequence[_Job], *, n_jobs: int, dask: Any) -> Iterator[_Trained]:
        """Every job's `_Trained`, in the order they finish; `UsageError` naming a failed one."""
        try:
            if dask is not None:
                self._check_picklable("dask")
                yield from self._on_dask(jobs, dask)
            elif n_jobs != 1 and len(jobs) > 1:
                self._check_picklable(f"n_jobs={n_jobs}")
                yield from self._on_joblib(jobs, n_jobs)
            else:
                for job in jobs:
                    yield self._one(job)
        except _ModelFailed as failure:
            job = next(j for j in jobs if j.index == failure.index)
            raise UsageError(
                f"reference model {job.index + 1} of {self.k} (seed {job.seed}) failed: "
                f"{failure.what}{self._kept()}"
            ) from (failure.__cause__ or failure)

    def _one(self, job: _Job) -> _Trained:
        return _train_one(job, self.train_fn, self.x, self.y, self.n_classes, self.input_range)

    def _kept(self) -> str:
        if self.cache.folder is None:
            return "; pass cache_dir= to keep finished models when a run stops"
        return (
            f"; {self.done} of {self.k} models are cached in {self.cache.folder} and the next "
            "run with the same inputs trains only the rest"
        )

    def _check_picklable(self, where: str) -> None:
        try:  # what joblib's loky and Dask use to send functions
            import cloudpickle  # type: ignore[import-untyped, unused-ignore]

            dumps: Callable[[Any], bytes] = cloudpickle.dumps
        except ImportError:
            import pickle

            dumps = pickle.dumps
        try:
            dumps(self.train_fn)
        except Exception as exc:  # any pickling failure means the same thing to the user
            raise UsageError(
                f"train_fn cannot be sent to worker processes ({where}): "
                f"{type(exc).__name__}: {exc}; it must be picklable there (a top-level "
                "function, a scikit-learn estimator or a TorchTrainer whose factory is "
                "importable), or use n_jobs=1 and no dask"
            ) from exc

    def _on_joblib(self, jobs: Sequence[_Job], n_jobs: int) -> Iterator[_Trained]:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
        work = (
            delayed(_train_one)(
                job, self.train_fn, self.x, self.y, self.n_classes, self.input_range
            )
            for job in jobs
        )
        yield from parallel(work)

    def _on_dask(self, jobs: Sequence[_Job], dask: Any) -> Iterator[_Trained]:
        with _dask_client(dask) as client:
            from distributed import as_completed

            # keys of our own: with the default content hash, a run on the same data as the
            # last one shares its keys, and the last run releasing them can drop the data
            # under this run's tasks (they fail with 'lost dependencies')
            x, y = client.scatter([self.x, self.y], hash=False)
            token = uuid.uuid4().hex
            futures = [
                client.submit(
                    _train_one,
                    job,
                    self.train_fn,
                    x,
                    y,
                    self.n_classes,
                    self.input_range,
                    key=f"mlwarden-reference-{job.index}-{token}",
                    pure=False,
                )
                for job in jobs
            ]
            try:
                for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
                    yield future.result()
            finally:
                client.cancel(futures)


@contextlib.contextmanager
def _dask_client(dask: Any) -> Iterator[Any]:
    """`dask` as a connected ``distributed.Client``; one opened from an address is closed after."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise UsageError(
            "training on Dask needs dask.distributed: pip install mlwarden[dask]"
        ) from exc
    if isinstance(dask, Client):
        yield dask
        return
    if not isinstance(dask, str):
        raise UsageError(
            f"dask must be a distributed.Client or a scheduler address such as "
            f"tcp://127.0.0.1:8786, got a {type(dask).__name__}"
        )
    try:
        client = Client(  # type: ignore[no-untyped-call]
            dask, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(
            f"cannot reach the Dask scheduler at {dask} ({type(exc).__name__}: {exc}); start "
            "one (dask scheduler) and its workers, or train here without --dask"
        ) from None
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


# -- the cache ---------------------------------------------------------------------------------


def _base_key(
    train_fn: TrainFn, x: np.ndarray, y: np.ndarray, n_candidates: int, n_classes: int, mode: str
) -> str:
    digest = hashlib.sha256()
    for part in (
        CACHE_FORMAT,
        _identity(train_fn),
        str(x.shape),
        hashlib.sha256(x.tobytes()).hexdigest(),
        hashlib.sha256(y.tobytes()).hexdigest(),
        str(n_candidates),
        str(n_classes),
        mode,
    ):
        digest.update(part.encode("utf-8", "backslashreplace") + b"\0")
    return digest.hexdigest()


def _job_key(base: str, index: int, seed: int, in_rows: np.ndarray) -> str:
    digest = hashlib.sha256(f"{base}\0{index}\0{seed}\0".encode())
    digest.update(np.packbits(in_rows).tobytes())
    return digest.hexdigest()


MAX_IDENTITY_DEPTH = 6


def _identity(obj: Any, depth: int = 0) -> str:
    """A stable text naming what `obj` is and does, for cache keys: names, parameters, source
    and captured values; never a memory address (objects whose only description is one make
    a key that never matches again, which is safe)."""
    if depth > MAX_IDENTITY_DEPTH:
        return type(obj).__qualname__
    inner = functools.partial(_identity, depth=depth + 1)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return repr(obj)
    if isinstance(obj, np.generic):
        return repr(obj.item())
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj).tobytes() if obj.dtype != object else repr(obj).encode()
        return f"ndarray({obj.dtype},{obj.shape},{hashlib.sha256(data).hexdigest()})"
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(map(inner, obj)) if isinstance(obj, (set, frozenset)) else map(inner, obj)
        return f"{type(obj).__name__}[{','.join(items)}]"
    if isinstance(obj, dict):
        return (
            "{" + ",".join(f"{inner(k)}:{inner(v)}" for k, v in sorted(obj.items(), key=str)) + "}"
        )
    if isinstance(obj, functools.partial):
        return f"partial({inner(obj.func)},{inner(obj.args)},{inner(obj.keywords)})"
    if inspect.ismethod(obj):
        return f"method({inner(obj.__self__)}.{obj.__name__})"
    if inspect.isfunction(obj):
        captured = _captured(obj)
        return (
            f"function({_name_of(obj)},{_source_digest(obj)},"
            f"{inner(obj.__defaults__)},{inner(obj.__kwdefaults__)},{inner(captured)})"
        )
    if isinstance(obj, type) or inspect.isroutine(obj):
        return f"{type(obj).__name__}({_name_of(obj)},{_source_digest(obj)})"
    cls: Any = type(obj)
    kind = f"{_name_of(cls)}#{_source_digest(cls)}"
    if _is_estimator(obj):
        try:
            params = obj.get_params(deep=False)
        except Exception:  # a broken get_params only costs cache reuse
            return f"{kind}(?)"
        return f"{kind}({inner(params)})"
    if dataclasses.is_dataclass(obj):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return f"{kind}({inner(fields)})"
    if hasattr(obj, "__dict__"):
        return f"{kind}({inner(vars(obj))})"
    return f"{kind}({obj!r})"


def _captured(function: Any) -> list[Any]:
    """The values a closure captured (cells not yet set are left out)."""
    values = []
    for cell in function.__closure__ or ():
        with contextlib.suppress(ValueError):
            values.append(cell.cell_contents)
    return values


@functools.lru_cache(maxsize=1024)
def _source_digest(obj: Any) -> str:
    """A digest of the code of a function, or of the methods a class defines itself (looking a
    class up as a whole parses its entire module: too slow). Remembered per object: a module
    edited and reloaded makes new objects."""
    if isinstance(obj, type):
        methods = sorted(
            (name, _source_digest(value))
            for name, value in vars(obj).items()
            if inspect.isfunction(value)
        )
        return hashlib.sha256(repr(methods).encode()).hexdigest()[:16]
    code = getattr(obj, "__code__", None)
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        if code is None:
            return "-"
        return hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16]
    return hashlib.sha256(source.encode()).hexdigest()[:16]


class _Cache:
    """One ``.npz`` per finished reference model under `folder`; None keeps nothing."""

    def __init__(self, given: str | os.PathLike[str] | None, n_rows: int, n_classes: int) -> None:
        folder = None if given is None else Path(given)
        if folder is not None:
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"cache_dir {folder} is a file; give a folder")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create cache_dir {folder}: {exc}") from None
        self.folder = folder
        self.shape = (n_rows, n_classes)

    def path(self, key: str) -> Path:
        """Where the outputs of the model with cache key `key` live."""
        assert self.folder is not None
        return self.folder / f"reference-{key}.npz"

    def load(self, key: str) -> np.ndarray | None:
        """The cached probabilities for `key`, or None (missing, or unusable: warned)."""
        if self.folder is None:
            return None
        path = self.path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                stored_key = str(stored["key"])
                probs = np.asarray(stored["probs"])
        except Exception as exc:  # a corrupt file can fail in many ways; all mean "retrain"
            problem: str | None = f"unreadable: {type(exc).__name__}: {exc}"
        else:
            problem = self._problem(key, stored_key, probs)
        if problem is None:
            return probs
        warnings.warn(
            f"ignoring reference-model cache file {path} ({problem}); retraining that model",
            ReferenceCacheWarning,
            stacklevel=3,
        )
        return None

    def _problem(self, key: str, stored_key: str, probs: np.ndarray) -> str | None:
        """Why a cache file's contents cannot be trusted, or None."""
        if stored_key != key:
            return "written for other inputs"
        if probs.dtype != np.float32 or probs.shape != self.shape:
            return f"holds {probs.dtype} {probs.shape}, expected float32 {self.shape}"
        if not np.isfinite(probs).all() or probs.min(initial=0.0) < 0:
            return "holds values that are not probabilities"
        if not np.allclose(probs.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE):
            return "holds rows that do not sum to 1"
        return None

    def save(self, key: str, probs: np.ndarray) -> None:
        """Write `probs` for `key` atomically (a temporary file, then rename)."""
        if self.folder is None:
            return
        try:
            handle, temporary = tempfile.mkstemp(
                dir=self.folder, prefix=".reference-", suffix=".tmp"
            )
        except OSError as exc:
            raise UsageError(f"cannot write to cache_dir {self.folder}: {exc}") from None
        try:
            # No fsync: a file torn by a crash fails its zip checksum or the checks in `load`
            # and is retrained, and syncing would cost more than training a small model.
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, key=np.array(key), probs=np.asarray(probs, dtype=np.float32))
            os.replace(temporary, self.path(key))
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(exc, OSError):
                raise UsageError(f"cannot write to cache_dir {self.folder}: {exc}") from None
            raise
