"""`robustness`: worst case per sample over a suite, honest bookkeeping, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.attacks.evasion import get_attack, pgd
from mlwarden.errors import InputError, UsageError
from mlwarden.evaluate import RobustnessResult, robustness
from mlwarden.evaluate.robustness import DEFAULT_EPS

EPS = [0.1, 0.2, 0.3]
FAST = [("pgd", {"steps": 10}), ("fgsm", {})]
"""Two cheap attacks: PGD first, FGSM then only sees what PGD missed."""


def evaluate(target, x, y, **options) -> RobustnessResult:  # type: ignore[no-untyped-def]
    options.setdefault("eps", EPS)
    options.setdefault("attacks", FAST)
    options.setdefault("sanity_checks", False)
    return robustness(target, x, y, **options)


def test_robust_accuracy_is_the_worst_case_over_every_attack(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y)
    for k, eps in enumerate(result.eps):
        assert result.robust_accuracy[eps] == pytest.approx(result.robust[:, k].mean())
        assert result.robust_accuracy[eps] <= min(
            by_eps[eps] for by_eps in result.per_attack.values()
        )
    assert result.robust_accuracy[0.1] < result.clean_accuracy


def test_later_attacks_only_run_on_the_samples_earlier_ones_missed(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y)
    first = next(run for run in result.runs if run.attack == "pgd" and run.eps == 0.1)
    second = [run for run in result.runs if run.attack == "fgsm" and run.eps == 0.1]
    robust_after_pgd = round(first.n_samples * first.robust_accuracy)
    assert first.n_samples == round(result.clean_accuracy * len(x))
    assert (second[0].n_samples if second else 0) == robust_after_pgd


def test_a_sample_fooled_at_a_small_eps_is_not_attacked_again(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y)
    runs = {(run.attack, run.eps): run for run in result.runs}
    robust_at_01 = round(result.robust_accuracy[0.1] * len(x))
    assert runs["pgd", 0.2].n_samples == robust_at_01
    assert np.all(result.robust[:, 1:] <= result.robust[:, :-1])


def test_per_attack_counts_only_that_attacks_successes(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y)
    alone = pgd(digits_target, x, y, eps=0.1, steps=10)
    assert result.per_attack["pgd"][0.1] == pytest.approx(alone.robust_accuracy)
    # fgsm only saw the survivors of pgd: its number is an upper bound, never below the suite's
    assert result.per_attack["fgsm"][0.1] >= result.robust_accuracy[0.1]


def test_minimum_norm_attacks_run_once_and_give_every_eps(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y, attacks=["deepfool", ("pgd", {"steps": 10})])
    deepfool_runs = [run for run in result.runs if run.attack == "deepfool"]
    assert len(deepfool_runs) == 1 and deepfool_runs[0].eps is None
    deepfool = get_attack("deepfool")[1]
    alone = deepfool(digits_target, x, y, norm="linf")
    for eps in EPS:
        assert result.per_attack["deepfool"][eps] == pytest.approx(alone.robust_accuracy_at(eps))
    assert np.all(result.minimal_norms <= np.where(alone.success, alone.norms, np.inf) + 1e-6)


def test_minimal_norms_agree_with_robustness_at_every_eps(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y)
    for k, eps in enumerate(result.eps):
        assert np.all(result.minimal_norms[~result.robust[:, k]] <= eps)
        assert np.all(result.minimal_norms[result.robust[:, k]] > eps)


def test_misclassified_samples_have_minimal_norm_zero_and_are_never_robust(
    digits_target, digits_model
):  # type: ignore[no-untyped-def]
    x, y = digits_model.x_test[:32], digits_model.y_test[:32].copy()
    y[:4] = (y[:4] + 1) % 10
    result = evaluate(digits_target, x, y, eps=0.05)
    assert np.all(result.minimal_norms[:4] == 0)
    assert not result.robust[:4].any()
    assert result.clean_accuracy <= 28 / 32


def test_examples_show_successes_first_most_confident_first(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y, n_examples=5)
    for eps in EPS:
        shown = [e for e in result.examples if e.eps == eps]
        assert len(shown) == 5
        flags = [e.success for e in shown]
        assert flags == sorted(flags, reverse=True)
        fooled = [e for e in shown if e.success]
        confidences = [e.adversarial_confidence for e in fooled]
        assert confidences == sorted(confidences, reverse=True)
        for example in fooled:
            assert example.adversarial_prediction != example.label == example.clean_prediction
            assert np.abs(example.x_adv - example.x).max() <= eps + 1e-6
            assert example.attack in ("pgd", "fgsm")
            assert example.perturbation_norm == pytest.approx(
                np.abs(example.x_adv - example.x).max(), abs=1e-6
            )


def test_failed_examples_keep_the_clean_input(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y, eps=0.02, attacks=["fgsm"], n_examples=len(x))
    failed = [e for e in result.examples if not e.success]
    assert failed
    for example in failed:
        assert example.attack == ""
        assert np.array_equal(example.x_adv, example.x)


def test_eps_is_sorted_and_deduplicated_and_one_number_works(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    assert evaluate(digits_target, x, y, eps=[0.3, 0.1, 0.1]).eps == [0.1, 0.3]
    assert evaluate(digits_target, x, y, eps=0.2).eps == [0.2]
    assert evaluate(digits_target, x, y, eps=np.array([0.2, 0.1])).eps == [0.1, 0.2]


def test_default_eps_follow_the_norm(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(digits_target, x, y, eps=None, attacks=["fgsm"], sanity_checks=False)
    assert result.eps == pytest.approx(list(DEFAULT_EPS["linf"]))


def test_eps_zero_gives_the_clean_accuracy(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y, eps=[0.0, 0.2])
    assert result.robust_accuracy[0.0] == result.clean_accuracy
    assert all(run.eps != 0.0 for run in result.runs)


def test_the_result_is_deterministic_under_a_seed(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    first = evaluate(digits_target, x, y, seed=3)
    second = evaluate(digits_target, x, y, seed=3)
    assert first.robust_accuracy == second.robust_accuracy
    assert np.array_equal(first.minimal_norms, second.minimal_norms)


def test_runs_record_every_attack_call_with_its_queries(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    before = digits_target.queries
    result = evaluate(digits_target, x, y)
    assert result.queries == sum(run.queries for run in result.runs) > 0
    assert digits_target.queries - before == result.queries
    assert all(run.params == {"steps": 10} for run in result.runs if run.attack == "pgd")
    assert result.elapsed_s > 0 and not result.interrupted


def test_a_model_and_target_options_are_enough(digits_model, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(
        digits_model.model, x, y, target_options={"input_shape": digits_model.input_shape}
    )
    assert result.target_name == "DigitsCNN"
    assert result.clean_accuracy > 0.9


def test_the_query_budget_stops_the_evaluation_and_keeps_what_it_found(
    digits_target, digits_sample
):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y, query_budget=300, sanity_checks=True)
    assert result.interrupted
    assert result.queries <= 300
    assert result.runs[-1].interrupted
    assert result.checks_run == []
    assert digits_target.query_budget is None


def test_ctrl_c_returns_what_was_measured(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample

    def progress(description: str, done: int, total: int) -> None:
        if description.startswith("fgsm"):
            raise KeyboardInterrupt

    result = evaluate(digits_target, x, y, progress=progress)
    assert result.interrupted
    assert [run.attack for run in result.runs] == ["pgd"]
    assert result.robust_accuracy[0.1] == pytest.approx(result.per_attack["pgd"][0.1])
    assert "fgsm" not in result.per_attack


def test_progress_reports_each_attack_with_done_and_total(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    seen: list[tuple[str, int, int]] = []
    evaluate(digits_target, x, y, eps=0.1, progress=lambda d, n, t: seen.append((d, n, t)))
    descriptions = {d for d, _, _ in seen}
    assert "pgd at eps 0.1 [1/2]" in descriptions
    assert any(total > 0 and done == total for _, done, total in seen)


def test_skipped_attacks_are_reported_and_the_rest_run(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = evaluate(digits_target, x, y, norm="l1", eps=[2.0], attacks=["pgd", "square"])
    assert result.attacks == ["pgd"]
    assert "square" in result.skipped
    assert result.suite == "custom"


def test_no_applicable_attack_is_an_input_error(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    with pytest.raises(InputError, match=r"no attack of the given list applies.*square supports"):
        evaluate(digits_target, x, y, norm="l1", eps=[2.0], attacks=["square"])


def test_black_box_targets_are_evaluated_with_black_box_attacks(black_box_digits, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(
        black_box_digits,
        x[:16],
        y[:16],
        eps=[0.3],
        attacks=[("pgd", {}), ("square", {"queries": 100})],
    )
    assert result.attacks == ["square"]
    assert result.skipped == {"pgd": "needs gradients and the target is black-box"}
    assert result.robust_accuracy[0.3] < result.clean_accuracy
    assert "zero-gradients" not in result.checks_run


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"eps": -0.1}, "eps must be a finite number >= 0"),
        ({"eps": 2.0}, "exceeds the largest possible perturbation"),
        ({"eps": []}, "eps is empty"),
        ({"eps": "0.1"}, "eps must be a number or a list"),
        ({"eps": [0.1, float("nan")]}, "eps must be a finite number"),
        ({"norm": "l3"}, "unknown norm 'l3'"),
        ({"n_examples": -1}, "n_examples must be a whole number >= 0"),
        ({"query_budget": 0}, "query_budget must be a whole number >= 1"),
    ],
)
def test_bad_parameters_are_input_errors(digits_target, digits_sample, options, message):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    with pytest.raises(InputError, match=message):
        evaluate(digits_target, x, y, **options)


def test_unknown_suite_is_a_usage_error(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    with pytest.raises(UsageError, match="unknown suite 'hard'"):
        robustness(digits_target, x, y, eps=0.1, suite="hard")


@pytest.mark.parametrize(
    ("x_change", "y_change", "message"),
    [
        (lambda x: x[:0], lambda y: y[:0], "empty"),
        (lambda x: np.where(x == x.max(), np.nan, x), lambda y: y, "NaN"),
        (lambda x: x.reshape(len(x), -1), lambda y: y, "expects"),
        (lambda x: x * 3, lambda y: y, "outside the target's input_range"),
        (lambda x: x, lambda y: y + 10, r"labels must lie in \[0, 9\]"),
        (lambda x: x, lambda y: y[:-1], "labels have shape"),
    ],
)
def test_bad_data_is_an_input_error(digits_target, digits_sample, x_change, y_change, message):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    with pytest.raises(InputError, match=message):
        evaluate(digits_target, x_change(x), y_change(y))


def test_options_cannot_be_applied_to_a_built_target(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    with pytest.raises(InputError, match="options cannot be applied"):
        evaluate(digits_target, x, y, target_options={"input_shape": (1, 8, 8)})


@pytest.mark.slow
def test_standard_suite_is_at_least_as_strong_as_pgd(digits_target, digits_model):  # type: ignore[no-untyped-def]
    x, y = digits_model.x_test[:64], digits_model.y_test[:64]
    result = robustness(digits_target, x, y, eps=[0.1, 0.2], suite="standard", sanity_checks=False)
    assert result.attacks == ["apgd", "apgd_t", "deepfool", "square"]
    for eps in result.eps:
        alone = pgd(digits_target, x, y, eps=eps, steps=100, restarts=1)
        assert result.robust_accuracy[eps] <= alone.robust_accuracy
    assert result.flags == []


def test_feature_names_must_name_every_feature(cancer_target, cancer_model):  # type: ignore[no-untyped-def]
    x, y = cancer_model.x_test[:16], cancer_model.y_test[:16]
    with pytest.raises(InputError, match="3 feature names for inputs of 30 features"):
        evaluate(cancer_target, x, y, eps=0.1, feature_names=("a", "b", "c"))
    result = evaluate(cancer_target, x, y, eps=0.1, feature_names=cancer_model.feature_names)
    assert result.feature_names == tuple(cancer_model.feature_names)


def test_l0_evaluation_turns_eps_into_changed_pixels(black_box_digits, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(
        black_box_digits,
        x[:12],
        y[:12],
        norm="l0",
        eps=[1, 4],
        attacks=[("pixel", {"population": 10, "generations": 3})],
    )
    assert [run.eps for run in result.runs][:1] == [1.0]
    assert result.robust_accuracy[4.0] <= result.robust_accuracy[1.0]
    for example in result.examples:
        if example.success:
            assert np.count_nonzero(example.x_adv != example.x) <= example.eps


def test_a_single_norm_minimum_norm_attack_runs_under_its_norm(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    cw = ("cw", {"steps": 20, "binary_search_steps": 3})
    result = evaluate(digits_target, x[:16], y[:16], norm="l2", eps=[0.5, 1.5], attacks=[cw])
    assert [(run.attack, run.eps) for run in result.runs] == [("cw", None)]
    assert result.robust_accuracy[1.5] <= result.robust_accuracy[0.5] < result.clean_accuracy
    fooled = np.isfinite(result.minimal_norms) & (result.minimal_norms > 0)
    assert fooled.any()
