"""Every membership attack: it finds members of an overfit model, not of one that generalises,
and each follows its paper's definition (checked against independent computations)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from mlwarden.attacks.membership import (
    MembershipContext,
    ReferenceSet,
    attack_names,
    get_attack,
)
from mlwarden.attacks.membership.label_only import spatial_axes, translate
from mlwarden.attacks.membership.metrics import evaluate
from mlwarden.attacks.membership.signals import confidence, logit_scaled_confidence
from mlwarden.errors import InputError, UsageError
from mlwarden.targets import target

from .conftest import Setup

ALL_ATTACKS = (
    "loss",
    "confidence",
    "entropy",
    "modified-entropy",
    "shadow",
    "lira-offline",
    "lira-online",
    "rmia",
    "label-only",
)
REFERENCE_ATTACKS = ("shadow", "lira-offline", "lira-online", "rmia")


def run(name: str, context: MembershipContext) -> np.ndarray:
    scores = get_attack(name).run(context)
    assert scores.shape == (len(context.x),)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all()
    return scores


def reference_for(setup: Setup, name: str) -> ReferenceSet | None:
    attack = get_attack(name)
    if attack.needs == "online-reference":
        return setup.online
    return setup.offline if attack.needs == "reference" else None


def measure(setup: Setup, name: str, reference: ReferenceSet | None = None, **params: Any):  # type: ignore[no-untyped-def]
    reference = reference if reference is not None else reference_for(setup, name)
    scores = run(name, setup.context(reference, **params))
    return evaluate(
        name,
        name,
        scores,
        setup.is_member,
        fpr_levels=(0.05, 0.01),
        confidence=0.95,
        delta=0.0,
        n_exposed=5,
    )


def test_every_builtin_attack_is_registered_under_its_name() -> None:
    assert set(ALL_ATTACKS) <= set(attack_names())
    for name in ALL_ATTACKS:
        attack = get_attack(name)
        assert attack.name == name and attack.title and attack.reference
    assert get_attack("label-only").scores_needed is False
    assert get_attack("lira-online").needs == "online-reference"


@pytest.mark.parametrize("name", ALL_ATTACKS)
def test_attack_finds_the_members_of_an_overfit_model(overfit: Setup, name: str) -> None:
    result = measure(overfit, name)
    assert result.auc > 0.6, f"{name}: AUC {result.auc:.3f}"


@pytest.mark.parametrize("name", ALL_ATTACKS)
def test_attack_is_near_chance_on_a_model_that_generalises(generalising: Setup, name: str) -> None:
    result = measure(generalising, name)
    assert 0.4 < result.auc < 0.6, f"{name}: AUC {result.auc:.3f}"
    assert result.epsilon.lower == 0.0


def test_lira_online_beats_offline_which_beats_the_loss_at_low_fpr(overfit: Setup) -> None:
    online = measure(overfit, "lira-online")
    offline = measure(overfit, "lira-offline")
    loss = measure(overfit, "loss")
    assert online.tpr_at_fpr[0.05] > offline.tpr_at_fpr[0.05] + 0.05
    assert offline.tpr_at_fpr[0.05] > loss.tpr_at_fpr[0.05] + 0.1
    assert online.tpr_at_fpr[0.01] >= offline.tpr_at_fpr[0.01]
    assert offline.tpr_at_fpr[0.01] > 2 * loss.tpr_at_fpr[0.01]
    assert online.auc > offline.auc > loss.auc


def test_reference_attacks_beat_the_loss_at_low_fpr(overfit: Setup) -> None:
    loss = measure(overfit, "loss").tpr_at_fpr[0.01]
    for name in ("rmia", "lira-offline", "lira-online"):
        assert measure(overfit, name).tpr_at_fpr[0.01] > 2 * loss, name


def test_rmia_works_with_a_single_reference_model(overfit: Setup) -> None:
    one = ReferenceSet(
        mode="offline",
        probs_candidates=overfit.offline.probs_candidates[:1],
        probs_population=overfit.offline.probs_population[:1],
        in_candidates=overfit.offline.in_candidates[:1],
        in_population=overfit.offline.in_population[:1],
    )
    result = measure(overfit, "rmia", one)
    assert result.auc > measure(overfit, "loss").auc
    assert result.tpr_at_fpr[0.01] > measure(overfit, "loss").tpr_at_fpr[0.01]


@pytest.mark.parametrize("reference", ["offline", "online"])
@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_rmia_score_is_the_papers_fraction_of_dominated_population_records(
    overfit: Setup, reference: str, gamma: float
) -> None:
    refs: ReferenceSet = getattr(overfit, reference)
    a = 0.3
    scores = run("rmia", overfit.context(refs, gamma=gamma, a=a))
    x_pop, y_pop = overfit.population
    # every population record is usable (OUT for half the offline models): all are the z

    def p_marginal(probs: np.ndarray, trained_on: np.ndarray, labels: np.ndarray) -> np.ndarray:
        p = confidence(probs, labels)
        if refs.mode == "online":
            return p.mean(axis=0)
        p_out = np.array([p[~trained_on[:, i], i].mean() for i in range(p.shape[1])])
        return ((1 + a) * p_out + (1 - a)) / 2

    ratio_x = confidence(overfit.probs, overfit.y) / p_marginal(
        refs.probs_candidates, refs.in_candidates, overfit.y
    )
    ratio_z = confidence(overfit.target().predict_proba(x_pop), y_pop) / p_marginal(
        refs.probs_population, refs.in_population, y_pop
    )
    fraction = ((ratio_x[:, None] / ratio_z[None, :]) > gamma).mean(axis=1)
    np.testing.assert_allclose(np.floor(scores * len(x_pop)) / len(x_pop), fraction, atol=1e-9)
    # within a tie of the fraction, the ratio itself orders the candidates
    assert np.all(np.diff(scores[np.argsort(ratio_x, kind="stable")]) >= 0)


def test_rmia_asks_the_target_once_per_population_record(overfit: Setup) -> None:
    fresh = overfit.target()
    run("rmia", overfit.context(overfit.offline, target_=fresh, n_population=100))
    assert fresh.queries == 100


# -- LiRA against scipy on a small hand-built reference set ------------------------------------

K, N_C = 8, 5


def phi_probs(phi: np.ndarray) -> np.ndarray:
    """Two-class probabilities whose logit-scaled confidence for class 0 is `phi`."""
    p = 1.0 / (1.0 + np.exp(-phi))
    return np.stack([p, 1.0 - p], axis=-1)


def lira_setup(
    in_candidates: np.ndarray, seed: int = 0
) -> tuple[MembershipContext, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    phi_ref = rng.normal(0.0, 1.0, (K, N_C)) + 3.0 * in_candidates + rng.normal(0, 2, N_C)
    observed = rng.normal(1.5, 2.0, N_C)
    reference = ReferenceSet(
        mode="online",
        probs_candidates=phi_probs(phi_ref),
        probs_population=np.zeros((K, 0, 2)),
        in_candidates=in_candidates,
        in_population=np.zeros((K, 0), bool),
    )
    probs = phi_probs(observed)
    context = MembershipContext(
        target=target(lambda x: np.tile([0.5, 0.5], (len(x), 1)), input_shape=(1,)),
        x=np.zeros((N_C, 1), np.float32),
        y=np.zeros(N_C, np.int64),
        population=(np.zeros((0, 1), np.float32), np.zeros(0, np.int64)),
        target_probs=probs,
        reference=reference,
    )
    return context, logit_scaled_confidence(reference.probs_candidates, context.y), observed


def half_in() -> np.ndarray:
    return np.tile(np.arange(K) < K // 2, (N_C, 1)).T[np.random.default_rng(1).permutation(K)]


def test_lira_online_with_per_example_variance_is_the_gaussian_likelihood_ratio() -> None:
    norm = pytest.importorskip("scipy.stats").norm
    context, phi, observed = lira_setup(half_in())
    context.params = {"fixed_variance": False}
    scores = run("lira-online", context)
    member_of = context.reference.in_candidates  # type: ignore[union-attr]
    expected = [
        norm.logpdf(
            observed[i], np.median(phi[member_of[:, i], i]), np.std(phi[member_of[:, i], i], ddof=1)
        )
        - norm.logpdf(
            observed[i],
            np.median(phi[~member_of[:, i], i]),
            np.std(phi[~member_of[:, i], i], ddof=1),
        )
        for i in range(N_C)
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-9)


def test_lira_with_fixed_variance_uses_one_variance_for_every_record_and_world() -> None:
    norm = pytest.importorskip("scipy.stats").norm
    context, phi, observed = lira_setup(half_in())
    member_of = context.reference.in_candidates  # type: ignore[union-attr]
    stds = [np.std(phi[w[:, i], i], ddof=1) for w in (member_of, ~member_of) for i in range(N_C)]
    shared = np.median(stds)
    mu_in = np.array([np.median(phi[member_of[:, i], i]) for i in range(N_C)])
    mu_out = np.array([np.median(phi[~member_of[:, i], i]) for i in range(N_C)])
    online = run("lira-online", context)  # 8 models < 64: fixed variance by default
    np.testing.assert_allclose(
        online,
        norm.logpdf(observed, mu_in, shared) - norm.logpdf(observed, mu_out, shared),
        rtol=1e-9,
    )
    offline = run("lira-offline", context)  # the OUT world only: offline has no IN models
    shared_out = np.median(stds[N_C:])
    np.testing.assert_allclose(offline, -norm.logsf(observed, mu_out, shared_out), rtol=1e-9)


def test_lira_offline_per_example_is_the_one_sided_test_against_the_out_gaussian() -> None:
    norm = pytest.importorskip("scipy.stats").norm
    context, phi, observed = lira_setup(half_in())
    context.params = {"fixed_variance": False}
    out = ~context.reference.in_candidates  # type: ignore[union-attr]
    expected = [
        -norm.logsf(observed[i], np.median(phi[out[:, i], i]), np.std(phi[out[:, i], i], ddof=1))
        for i in range(N_C)
    ]
    np.testing.assert_allclose(run("lira-offline", context), expected, rtol=1e-9)


def test_lira_scores_candidates_without_in_or_out_models_without_nan() -> None:
    in_candidates = half_in()
    in_candidates[:, 0] = True  # IN for every model: no OUT world
    in_candidates[:, 1] = False  # OUT for every model: no IN world
    context, _, _ = lira_setup(in_candidates)
    for variance in (True, False):
        context.params = {"fixed_variance": variance}
        run("lira-online", context)
        run("lira-offline", context)


def test_lira_online_refuses_reference_models_that_never_trained_on_the_candidates(
    overfit: Setup,
) -> None:
    with pytest.raises(UsageError, match="reference_mode='online'"):
        run("lira-online", overfit.context(overfit.offline))


def test_lira_offline_uses_the_out_models_of_an_online_reference_set(overfit: Setup) -> None:
    assert measure(overfit, "lira-offline", overfit.online).auc > 0.8


def test_lira_with_a_single_reference_model_still_scores() -> None:
    context, _, _ = lira_setup(np.zeros((K, N_C), bool))
    reference = context.reference
    assert reference is not None
    context.reference = ReferenceSet(
        mode="offline",
        probs_candidates=reference.probs_candidates[:1],
        probs_population=reference.probs_population[:1],
        in_candidates=reference.in_candidates[:1],
        in_population=reference.in_population[:1],
    )
    run("lira-offline", context)


# -- shadow -------------------------------------------------------------------------------------


def test_shadow_needs_reference_models_trained_on_part_of_the_population(overfit: Setup) -> None:
    with pytest.raises(UsageError, match="part of the population"):
        run("shadow", overfit.context(overfit.online))  # online models never saw the population


def test_shadow_respects_its_training_row_cap(
    overfit: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlwarden.attacks.membership import shadow

    rows: list[int] = []
    fit = shadow._fit_attack_model

    def counting(features: np.ndarray, was_in: np.ndarray, seed: int) -> Any:
        rows.append(len(features))
        return fit(features, was_in, seed)

    monkeypatch.setattr(shadow, "_fit_attack_model", counting)
    capped = measure(overfit, "shadow", max_records=300)
    assert rows == [300]
    assert capped.auc > 0.6
    measure(overfit, "shadow")
    assert rows[-1] == overfit.offline.in_population.size  # 4 models x 600 records, no cap


# -- label-only ---------------------------------------------------------------------------------


def labels_only(setup: Setup) -> MembershipContext:
    model = setup.model
    labels_target = target(model.predict, input_shape=(x_dim(setup),), n_classes=2, output="labels")
    context = setup.context(target_=labels_target)
    context.target_probs = None
    return context


def x_dim(setup: Setup) -> int:
    return int(setup.x.shape[1])


def test_label_only_works_on_a_target_that_returns_only_labels(overfit: Setup) -> None:
    context = labels_only(overfit)
    assert context.target.output == "labels"
    scores = run("label-only", context)
    result = evaluate(
        "label-only",
        "",
        scores,
        overfit.is_member,
        fpr_levels=(0.1,),
        confidence=0.95,
        delta=0.0,
        n_exposed=0,
    )
    assert result.auc > 0.6
    n_queries = 32
    assert context.target.queries == len(overfit.x) * (n_queries + 1)  # + the clean pass
    assert set(np.unique(scores * (n_queries + 1)).round(6)) <= set(range(n_queries + 2))


def test_label_only_reuses_the_audits_probabilities_for_the_clean_answer(overfit: Setup) -> None:
    fresh = overfit.target()
    run("label-only", overfit.context(target_=fresh, n_queries=4))
    assert fresh.queries == 4 * len(overfit.x)


def test_label_only_reports_progress_per_round_of_queries(overfit: Setup) -> None:
    calls: list[tuple[str, int, int]] = []
    context = overfit.context(n_queries=3)
    context.progress = lambda what, done, total: calls.append((what, done, total))
    run("label-only", context)
    assert [(done, total) for _, done, total in calls] == [(1, 3), (2, 3), (3, 3)]


def test_label_only_translates_images_and_stays_in_the_input_range() -> None:
    seen: list[np.ndarray] = []

    def record(x: np.ndarray) -> np.ndarray:
        seen.append(x.copy())
        return (x.reshape(len(x), -1).mean(axis=1) > 0.5).astype(np.int64)

    images = np.random.default_rng(0).random((6, 1, 5, 5)).astype(np.float32)
    image_target = target(record, input_shape=(1, 5, 5), n_classes=2, output="labels")
    context = MembershipContext(
        target=image_target,
        x=images,
        y=np.zeros(6, np.int64),
        population=(images[:0], np.zeros(0, np.int64)),
        target_probs=None,
        params={"n_queries": 12, "noise": 0.0},
    )
    run("label-only", context)
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    queried = seen[1:]  # after the clean pass
    assert len(queried) == 12
    for batch in queried:
        assert any(np.array_equal(batch, translate(images, s, (1, 2))) for s in shifts)
    assert any(not np.array_equal(batch, images) for batch in queried)
    context.params = {"n_queries": 3, "noise": 5.0}
    seen.clear()
    run("label-only", context)
    assert all(b.min() >= 0.0 and b.max() <= 1.0 for b in seen)


def test_translate_moves_content_and_repeats_the_edge() -> None:
    image = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    moved = translate(image, (1, -1), (0, 1))
    np.testing.assert_array_equal(moved[0], [[1, 2, 2], [1, 2, 2], [4, 5, 5]])
    assert spatial_axes((1, 8, 8)) == (1, 2)
    assert spatial_axes((32, 32, 3)) == (0, 1)
    assert spatial_axes((8, 8)) == (0, 1)
    assert spatial_axes((30,)) is None


# -- what every attack needs, and bad input -----------------------------------------------------


@pytest.mark.parametrize("name", REFERENCE_ATTACKS)
def test_reference_attacks_without_reference_models_say_how_to_get_them(
    overfit: Setup, name: str
) -> None:
    with pytest.raises(UsageError, match=r"needs reference models.*train_fn"):
        run(name, overfit.context(None))


def broken(refs: ReferenceSet, flaw: str) -> ReferenceSet:
    if flaw == "other candidates":
        return replace(
            refs,
            probs_candidates=refs.probs_candidates[:, :10],
            in_candidates=refs.in_candidates[:, :10],
        )
    if flaw == "integer masks":
        return replace(refs, in_candidates=refs.in_candidates.astype(int))
    probs = refs.probs_population.copy()
    probs[0, 0, 0] = np.nan
    return replace(refs, probs_population=probs)


@pytest.mark.parametrize("name", REFERENCE_ATTACKS)
@pytest.mark.parametrize(
    ("flaw", "message"),
    [
        ("other candidates", "probs_candidates has shape"),
        ("integer masks", "in_candidates must be booleans"),
        ("nan", "probs_population holds NaN"),
    ],
)
def test_a_malformed_reference_set_is_refused(
    overfit: Setup, name: str, flaw: str, message: str
) -> None:
    refs = overfit.online if name == "lira-online" else overfit.offline
    with pytest.raises(InputError, match=message):
        run(name, overfit.context(broken(refs, flaw)))


@pytest.mark.parametrize(
    "name", ["loss", "confidence", "entropy", "modified-entropy", "rmia", "shadow"]
)
def test_score_attacks_refuse_a_labels_only_target(overfit: Setup, name: str) -> None:
    context = labels_only(overfit)
    context.reference = reference_for(overfit, name)
    with pytest.raises(UsageError, match="labels only"):
        run(name, context)
    assert context.target.queries == 0  # refused before asking anything


@pytest.mark.parametrize(
    ("name", "params", "error", "message"),
    [
        ("loss", {"threshold": 0.5}, UsageError, "no parameter 'threshold'"),
        ("rmia", {"gamma": 0}, InputError, "gamma"),
        ("rmia", {"a": 1.5}, InputError, "a must be in"),
        ("rmia", {"n_population": 0}, InputError, "n_population"),
        ("rmia", {"n_population": 2.5}, InputError, "whole number"),
        ("lira-offline", {"fixed_variance": "yes"}, InputError, "true or false"),
        ("label-only", {"n_queries": 0}, InputError, "n_queries"),
        ("label-only", {"noise": -0.1}, InputError, "noise"),
        ("label-only", {"noise": float("nan")}, InputError, "noise"),
        ("shadow", {"max_records": True}, InputError, "max_records"),
    ],
)
def test_bad_parameters_give_a_clear_error(
    overfit: Setup, name: str, params: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        run(name, overfit.context(reference_for(overfit, name), **params))


def test_rmia_without_a_population_says_so(overfit: Setup) -> None:
    context = overfit.context(overfit.offline)
    context.population = (overfit.x[:0], overfit.y[:0])
    with pytest.raises(InputError, match="0 population records"):
        run("rmia", context)


@pytest.mark.parametrize("name", ["rmia", "shadow", "label-only", "lira-online"])
def test_attacks_are_deterministic_under_a_seed(overfit: Setup, name: str) -> None:
    reference = reference_for(overfit, name)
    params = {"n_population": 200} if name == "rmia" else {}
    if name == "label-only":
        params = {"n_queries": 4}
    first = run(name, overfit.context(reference, seed=3, **params))
    again = run(name, overfit.context(reference, seed=3, **params))
    np.testing.assert_array_equal(first, again)
