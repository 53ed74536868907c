"""Gradient-masking sanity checks: each fires on a model built to mask, quiet otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import pgd
from mlwarden.evaluate import robustness
from mlwarden.evaluate.masking import (
    SANITY_CHECKS,
    black_box_beats_white_box,
    largest_budget,
    more_iterations_help,
    randomised_outputs,
    subsample,
    unbounded_not_zero,
    zero_gradients,
)
from mlwarden.evaluate.suites import SuiteRequest, plan_attacks

EVERY_CHECK = [check.check for check in SANITY_CHECKS]
WHITE_LINF = SuiteRequest(norm="linf", white_box=True, scores=True, constrained=False)
SUITE = [("pgd", {"steps": 20}), ("square", {"queries": 200})]


def correct_only(target, x, y):  # type: ignore[no-untyped-def]
    keep = target.predict(x) == y
    return x[keep], y[keep]


# -- randomised outputs -----------------------------------------------------------------------


def test_randomised_outputs_fires_on_noise_at_inference(noisy_target, digits_sample):  # type: ignore[no-untyped-def]
    x, _ = digits_sample
    flag = randomised_outputs(noisy_target, x)
    assert flag is not None and flag.check == "randomised-outputs"
    assert flag.evidence["changed"] > 0.5 * len(x)


def test_randomised_outputs_is_quiet_on_a_deterministic_model(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, _ = digits_sample
    assert randomised_outputs(digits_target, x) is None
    assert digits_target.queries == 0


# -- zero gradients ---------------------------------------------------------------------------


@pytest.mark.parametrize("masked", ["quantised_target", "saturated_target"])
def test_zero_gradients_fires_on_rounding_and_saturated_softmax(masked, digits_sample, request):  # type: ignore[no-untyped-def]
    target = request.getfixturevalue(masked)
    x, y = correct_only(target, *digits_sample)
    flag = zero_gradients(target, x, y)
    assert flag is not None and flag.check == "zero-gradients"
    assert flag.evidence["fraction"] > 0.9


def test_zero_gradients_is_quiet_on_a_plain_cnn(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = correct_only(digits_target, *digits_sample)
    assert zero_gradients(digits_target, x, y) is None


# -- unbounded attack -------------------------------------------------------------------------


def test_unbounded_not_zero_fires_when_gradients_lead_nowhere(saturated_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = correct_only(saturated_target, *digits_sample)
    flag = unbounded_not_zero(saturated_target, x[:24], y[:24], "linf")
    assert flag is not None and flag.check == "unbounded-not-zero"
    assert flag.evidence["eps"] == 1.0
    assert flag.evidence["robust_accuracy"] > 0.5


def test_unbounded_not_zero_is_quiet_when_pgd_reaches_every_sample(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = correct_only(digits_target, *digits_sample)
    assert unbounded_not_zero(digits_target, x[:24], y[:24], "linf") is None
    assert unbounded_not_zero(digits_target, x[:24], y[:24], "l2") is None


def test_largest_budget_reaches_every_input(digits_target) -> None:  # type: ignore[no-untyped-def]
    assert largest_budget("linf", digits_target) == 1.0
    assert largest_budget("l2", digits_target) == pytest.approx(8.0)
    assert largest_budget("l1", digits_target) == 64.0
    assert largest_budget("l0", digits_target) == 64.0


# -- more iterations --------------------------------------------------------------------------


def _robust_under(target, x, y, params, eps):  # type: ignore[no-untyped-def]
    result = pgd(target, x, y, eps=eps, **params)
    keep = result.predictions == y
    return x[keep], y[keep], float(keep.mean())


def test_more_iterations_help_fires_when_the_attack_has_not_converged(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    weak = {"steps": 1, "step_size": 0.02, "random_start": False}
    attack = plan_attacks([("pgd", weak)], WHITE_LINF).attacks[0]
    x, y, share = _robust_under(digits_target, *digits_sample, weak, 0.2)
    flag = more_iterations_help(digits_target, x, y, attack, "linf", 0.2, robust_share=share)
    assert flag is not None and flag.check == "more-iterations-help"
    assert flag.evidence["steps"] == 4
    assert flag.evidence["robust_accuracy_drop"] > 0.03


def test_more_iterations_help_is_quiet_when_the_attack_has_converged(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    converged = {"steps": 20}
    attack = plan_attacks([("pgd", converged)], WHITE_LINF).attacks[0]
    x, y, share = _robust_under(digits_target, *digits_sample, converged, 0.1)
    assert (
        more_iterations_help(digits_target, x, y, attack, "linf", 0.1, robust_share=share) is None
    )


# -- black box beats white box ----------------------------------------------------------------


def _fooled(rows: list[list[bool]]) -> np.ndarray:
    return np.array(rows, dtype=bool)


def test_black_box_beats_white_box_counts_samples_every_white_box_attack_missed() -> None:
    n = 100
    pgd_fooled = np.zeros((n, 2), dtype=bool)
    apgd_fooled = np.zeros((n, 2), dtype=bool)
    square_fooled = np.zeros((n, 2), dtype=bool)
    pgd_fooled[:10] = True
    apgd_fooled[10:20] = True
    square_fooled[:20] = True  # only samples the white-box attacks fooled already
    square_fooled[20:23, 1] = True  # three more, at the second eps only
    fooled_by = {"pgd": pgd_fooled, "apgd": apgd_fooled, "square": square_fooled}
    flag = black_box_beats_white_box(fooled_by, ("pgd", "apgd"), ("square",), [0.1, 0.2])
    assert flag is not None and flag.check == "black-box-beats-white-box"
    assert flag.evidence == {"eps": 0.2, "count": 3, "fraction": 0.03}


def test_black_box_beats_white_box_tolerates_a_stray_sample() -> None:
    white = np.zeros((100, 1), dtype=bool)
    black = np.zeros((100, 1), dtype=bool)
    black[0] = True
    fooled_by = {"pgd": white, "square": black}
    assert black_box_beats_white_box(fooled_by, ("pgd",), ("square",), [0.1]) is None
    assert black_box_beats_white_box(fooled_by, ("pgd",), (), [0.1]) is None


def test_subsample_is_deterministic_sorted_and_bounded() -> None:
    index = np.arange(500)
    chosen = subsample(index, 64, seed=1)
    assert len(chosen) == 64 and np.all(np.diff(chosen) > 0)
    assert np.array_equal(chosen, subsample(index, 64, seed=1))
    assert np.array_equal(subsample(index[:10], 64, seed=1), index[:10])


# -- inside an evaluation ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_plain_model_raises_no_flag(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(digits_target, x, y, eps=[0.1, 0.2], attacks=SUITE)
    assert result.flags == []
    assert result.checks_run == EVERY_CHECK


@pytest.mark.slow
def test_input_rounding_raises_the_masking_flags(quantised_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(quantised_target, x, y, eps=[0.1, 0.2], attacks=SUITE)
    raised = {flag.check for flag in result.flags}
    assert {"zero-gradients", "black-box-beats-white-box", "unbounded-not-zero"} <= raised
    assert "randomised-outputs" not in raised
    # the black-box attack is what tells the truth about this model
    assert result.robust_accuracy[0.2] < result.per_attack["pgd"][0.2]


def test_randomness_is_flagged_inside_an_evaluation(noisy_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(noisy_target, x[:16], y[:16], eps=0.1, attacks=[("fgsm", {})])
    assert "randomised-outputs" in {flag.check for flag in result.flags}


def test_sanity_checks_can_be_turned_off(quantised_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(quantised_target, x, y, eps=0.1, attacks=["fgsm"], sanity_checks=False)
    assert result.flags == [] and result.checks_run == []


def test_black_box_targets_only_run_the_checks_that_need_no_gradients(
    black_box_digits, digits_sample
):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(
        black_box_digits, x[:8], y[:8], eps=0.3, attacks=[("square", {"queries": 50})]
    )
    assert result.checks_run == ["randomised-outputs"]


def test_sanity_check_queries_are_not_charged(digits_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = digits_sample
    result = robustness(digits_target, x[:16], y[:16], eps=0.1, attacks=[("pgd", {"steps": 5})])
    assert "unbounded-not-zero" in result.checks_run
    assert digits_target.queries == result.queries


class _CtrlCOnGradients(torch.nn.Module):
    """Answers plain predictions, but a gradient pass is 'interrupted' by the user."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            raise KeyboardInterrupt
        out: torch.Tensor = self.inner(x)
        return out


@pytest.fixture
def interrupted_target(digits_model):  # type: ignore[no-untyped-def]
    import mlwarden.targets

    module = _CtrlCOnGradients(digits_model.model)
    return mlwarden.targets.target(module, input_shape=digits_model.input_shape)


def test_a_check_never_judges_an_interrupted_attack(interrupted_target, digits_sample):  # type: ignore[no-untyped-def]
    x, y = correct_only(interrupted_target, *digits_sample)
    with pytest.raises(KeyboardInterrupt):
        unbounded_not_zero(interrupted_target, x, y, "linf")


def test_ctrl_c_during_the_checks_keeps_the_suite_and_the_checks_done(  # type: ignore[no-untyped-def]
    interrupted_target, digits_sample
):
    x, y = digits_sample
    result = robustness(
        interrupted_target, x[:8], y[:8], eps=0.3, attacks=[("square", {"queries": 50})]
    )
    assert result.interrupted
    assert result.checks_run == ["randomised-outputs"]
    assert result.runs and result.robust_accuracy[0.3] <= result.clean_accuracy
