"""HopSkipJump: decision-based minimum-norm search from predicted labels alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import get_attack, hopskipjump
from mlwarden.attacks.evasion.base import AttackState, ThreatModel
from mlwarden.attacks.evasion.hop_skip_jump import _CALL_VALUES, _MIN_CALL_ROWS, _Walk
from mlwarden.errors import InputError
from mlwarden.targets.base import Target
from mlwarden.targets.torch import TorchTarget

N = 32


class LabelsOnly(Target):
    """A decision-only target: it answers one-hot rows, never probabilities."""

    def __init__(self, model: Any, input_shape: tuple[int, ...], **options: Any) -> None:
        super().__init__(n_classes=10, input_shape=input_shape, output="labels", **options)
        self.model = model

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            labels = self.model(torch.from_numpy(x)).argmax(dim=1).numpy()
        return np.eye(10, dtype=np.float32)[labels]


class Linear(Target):
    """A linear two-class decision ``w . x > b`` on flat inputs, whose boundary normal is w."""

    def __init__(self, w: np.ndarray, b: float) -> None:
        super().__init__(n_classes=2, input_shape=(len(w),), output="labels")
        self.w, self.b = w, b
        self.calls: list[int] = []

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        return super().predict_proba(x)

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        rows: np.ndarray = np.eye(2, dtype=np.float32)[(x @ self.w > self.b).astype(np.int64)]
        return rows


def _walk(target: Target, x: np.ndarray, y: np.ndarray) -> _Walk:
    state = AttackState(
        x=x.astype(np.float32),
        y=y,
        y_target=None,
        threat=ThreatModel(norm="l2", eps=None, input_range=(0.0, 1.0)),
        clean_predictions=target.predict(x),
        seed=0,
    )
    return _Walk(state, target, max_queries=100_000, gamma=1.0)


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def _l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = (a - b).reshape(len(a), -1).astype(np.float64)
    return np.asarray(np.sqrt((diff**2).sum(axis=1)))


def test_hopskipjump_is_registered_as_minimum_norm_black_box() -> None:
    spec, fn = get_attack("hopskipjump")
    assert fn is hopskipjump
    assert not spec.white_box
    assert spec.minimum_norm


def test_hopskipjump_median_l2_shrinks_with_more_queries(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    medians = []
    for budget in (100, 600):
        target = LabelsOnly(digits_model.model, digits_model.input_shape)
        result = hopskipjump(target, x, y, max_queries=budget)
        assert result.success.all()
        # every success is real: the model itself misreads each returned input
        with torch.no_grad():
            labels = digits_model.model(torch.from_numpy(result.x_adv)).argmax(dim=1).numpy()
        assert (labels != y).all()
        medians.append(result.median_norm)
    assert medians[1] < 0.85 * medians[0]


def test_hopskipjump_never_exceeds_its_query_budget_per_sample(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = hopskipjump(digits_target, x, y, max_queries=150)
    assert 100 * len(x) < result.queries <= 150 * len(x)


def test_hopskipjump_norms_are_the_true_perturbation_sizes(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = hopskipjump(digits_target, x, y, max_queries=200)
    np.testing.assert_allclose(result.norms[result.success], _l2(result.x_adv, x)[result.success])
    assert result.threat.eps is None
    assert result.n_projected == 0


def test_hopskipjump_linf_gives_robust_accuracy_at_every_eps(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = hopskipjump(digits_target, x, y, norm="linf", max_queries=300)
    minimal = result.minimal_norms()
    assert np.isfinite(minimal).all()
    linf = np.abs(result.x_adv - x).reshape(len(x), -1).max(axis=1)
    np.testing.assert_allclose(
        minimal[result.success & (result.clean_predictions == y)],
        linf[result.success & (result.clean_predictions == y)],
    )
    assert result.robust_accuracy_at(float(minimal.max())) == 0.0
    assert result.robust_accuracy_at(0.0) == result.clean_accuracy


def test_hopskipjump_with_eps_stops_each_sample_once_inside(
    digits_target: TorchTarget, digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    bounded = hopskipjump(digits_target, x, y, eps=3.0, max_queries=600)
    assert bounded.success.all()
    assert bounded.norms.max() <= 3.0 * (1 + 1e-5)
    fresh = TorchTarget(digits_model.model, input_shape=(1, 8, 8))
    unbounded = hopskipjump(fresh, x, y, max_queries=600)
    assert bounded.queries < unbounded.queries / 3


def test_hopskipjump_targeted_starts_from_samples_of_the_target_class(
    digits_target: TorchTarget, digits_model: Any
) -> None:
    x, y = digits_model.x_test, digits_model.y_test
    keep = y != 0
    x, y = x[keep][:30], y[keep][:30]
    goal = np.zeros(len(y), dtype=np.int64)
    starts = digits_model.x_test[digits_model.y_test == 0][: len(y)]
    result = hopskipjump(digits_target, x, y, y_target=goal, x_init=starts, max_queries=300)
    assert result.success.all()
    assert (result.predictions == 0).all()
    # the walk pulled each point far closer than the starting image it came from
    assert np.median(result.norms) < 0.6 * np.median(_l2(starts, x))


def test_hopskipjump_starts_from_other_samples_of_the_batch(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = hopskipjump(digits_target, x, y, init_tries=0, max_queries=100)
    assert result.success.all()


def test_hopskipjump_reports_progress_in_iterations(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    seen: list[tuple[int, int]] = []
    x, y = digits
    hopskipjump(digits_target, x, y, steps=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_hopskipjump_fails_samples_it_cannot_start(
    digits_target: TorchTarget, digits_model: Any
) -> None:
    x, y = digits_model.x_test, digits_model.y_test
    keep = (y != 0) & (digits_target.predict(x) != 0)
    x, y = x[keep][:10], y[keep][:10]
    goal = np.zeros(len(y), dtype=np.int64)
    result = hopskipjump(digits_target, x, y, y_target=goal, init_tries=0, max_queries=100)
    assert not result.success.any()
    np.testing.assert_array_equal(result.x_adv, x)
    assert result.queries == 0


def test_hopskipjump_budget_interruption_returns_verified_partial_results(
    digits_model: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    target = LabelsOnly(digits_model.model, digits_model.input_shape, query_budget=60 * N)
    result = hopskipjump(target, x, y, max_queries=1000)
    assert result.interrupted
    assert result.success.all()
    assert (digits_target.predict(result.x_adv) != y).all()


def test_hopskipjump_is_deterministic_under_a_seed(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits[0][:8], digits[1][:8]
    first = hopskipjump(digits_target, x, y, max_queries=150, seed=1)
    again = hopskipjump(digits_target, x, y, max_queries=150, seed=1)
    other = hopskipjump(digits_target, x, y, max_queries=150, seed=2)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    assert not np.array_equal(first.x_adv, other.x_adv)


def test_hopskipjump_attacks_flat_inputs(cancer_model: Any, cancer_target: TorchTarget) -> None:
    x, y = cancer_model.x_test[:40], cancer_model.y_test[:40]
    result = hopskipjump(cancer_target, x, y, max_queries=300)
    assert result.success.all()
    assert result.median_norm < 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_queries": 0}, "max_queries"),
        ({"steps": 0}, "steps"),
        ({"init_evals": 1.5}, "init_evals"),
        ({"init_tries": -1}, "init_tries"),
        ({"gamma": 0.0}, "gamma"),
        ({"norm": "l0"}, "norms"),
        ({"eps": -1.0}, "eps"),
        ({"x_init": np.zeros((3, 1, 8, 8), np.float32)}, "x_init"),
        ({"x_init": np.full((N, 1, 8, 8), 2.0, np.float32)}, "x_init"),
    ],
)
def test_hopskipjump_rejects_nonsense_parameters(
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
    options: dict[str, Any],
    message: str,
) -> None:
    x, y = digits
    with pytest.raises(InputError, match=message):
        hopskipjump(digits_target, x, y, **options)


def test_hopskipjump_unit_probes_are_uniform_directions() -> None:
    dim = 64
    target = Linear(np.ones(dim, dtype=np.float32), 1e9)
    walk = _walk(target, np.full((1, dim), 0.5, np.float32), np.zeros(1, dtype=np.int64))
    probes = np.concatenate([walk._unit_probes(walk.call_rows).copy() for _ in range(4)])
    assert probes.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(probes, axis=1), 1.0, rtol=1e-5)
    # coordinates of uniform unit vectors, times sqrt(d), are close to standard normal
    values = probes.ravel().astype(np.float64) * np.sqrt(dim)
    assert abs(values.mean()) < 0.01
    assert abs(values.std() - 1.0) < 0.01
    assert abs(np.mean(values**4) - 3.0) < 0.1  # Gaussian kurtosis, not uniform's 1.8
    # no preferred direction: the mean of many unit probes is near zero in every coordinate
    assert np.abs(probes.mean(axis=0)).max() < 10 / np.sqrt(len(probes) * dim)


def test_hopskipjump_gradient_matches_the_direct_formula_across_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    dim = 12
    w = rng.standard_normal(dim).astype(np.float32)
    target = Linear(w, float(w @ np.full(dim, 0.5)))
    points = rng.uniform(0.0, 1.0, size=(3, dim)).astype(np.float32)
    walk = _walk(target, points, np.zeros(3, dtype=np.int64))
    walk.points = points.copy()
    evals = np.array([9, 5, 13])
    delta = np.array([0.3, 0.05, 0.8])
    fixed = rng.standard_normal((int(evals.sum()), dim)).astype(np.float32)
    fixed /= np.linalg.norm(fixed, axis=1, keepdims=True)
    drawn = iter(range(0, len(fixed), 4))
    walk.call_rows = 4  # every sample's probes straddle calls
    monkeypatch.setattr(walk, "_unit_probes", lambda rows: fixed[next(drawn) :][:rows].copy())
    got = walk.gradient(np.arange(3), evals, delta)
    # the direct computation: clipped probes, centred votes, one sample at a time
    start = 0
    for i in range(3):
        unit = fixed[start : start + evals[i]].astype(np.float64)
        start += evals[i]
        moved = np.clip(points[i] + delta[i] * unit, 0.0, 1.0)
        signs = np.where(moved @ w > target.b, 1.0, -1.0)
        centred = signs - signs.mean() if abs(signs.mean()) < 1 else signs
        expected = centred @ ((moved - points[i]) / delta[i])
        np.testing.assert_allclose(got[i], expected / np.linalg.norm(expected), atol=1e-5)
    assert max(target.calls) <= 4


def test_hopskipjump_gradient_finds_the_normal_of_a_linear_boundary() -> None:
    rng = np.random.default_rng(0)
    dim = 64
    w = rng.standard_normal(dim).astype(np.float32)
    target = Linear(w, float(w @ np.full(dim, 0.5)))
    on_boundary = np.full((2, dim), 0.5, np.float32)
    walk = _walk(target, on_boundary, np.zeros(2, dtype=np.int64))
    estimate = walk.gradient(np.arange(2), np.array([2000, 2000]), np.array([0.01, 0.01]))
    cosine = estimate @ (w / np.linalg.norm(w))
    assert (cosine > 0.8).all()


def test_hopskipjump_sends_probes_in_bounded_calls(
    digits_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = digits_model.x_test[:N], digits_model.y_test[:N]
    target = TorchTarget(digits_model.model, input_shape=(1, 8, 8), batch_size=4096)
    sizes: list[int] = []
    original = target.predict_proba

    def recording(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        return original(batch)

    monkeypatch.setattr(target, "predict_proba", recording)
    result = hopskipjump(target, x, y, steps=2, max_queries=400)
    assert result.success.all()
    # N samples * 100 probes would go in one call; calls stay near _CALL_VALUES input values
    assert max(sizes) <= max(_MIN_CALL_ROWS, _CALL_VALUES // 64)
