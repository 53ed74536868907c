"""Suites resolve to the right attacks for the threat, and explicit attack lists are checked."""

from __future__ import annotations

import itertools

import pytest

from mlwarden.attacks.evasion import attack_names
from mlwarden.errors import UsageError
from mlwarden.evaluate import suite_names
from mlwarden.evaluate import suites as suites_module
from mlwarden.evaluate.suites import SuiteRequest, plan_attacks, plan_suite, register_suite

WHITE_LINF = SuiteRequest(norm="linf", white_box=True, scores=True, constrained=False)


def names(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [attack.name for attack in plan.attacks]


def test_suite_names_are_quick_standard_strong() -> None:
    assert suite_names()[:3] == ["quick", "standard", "strong"]


def test_unknown_suite_is_a_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown suite 'fast'.*quick, standard, strong"):
        plan_suite("fast", WHITE_LINF)


def test_unknown_attack_is_a_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown attack 'pdg'.*fgsm, pgd"):
        plan_attacks(["pdg"], WHITE_LINF)


def test_unknown_attack_parameter_is_a_usage_error_listing_its_parameters() -> None:
    with pytest.raises(UsageError, match=r"pgd has no parameter stepz; its parameters are steps"):
        plan_attacks([("pgd", {"stepz": 3})], WHITE_LINF)


def test_parameters_the_evaluation_sets_cannot_be_given_per_attack() -> None:
    with pytest.raises(UsageError, match="eps is set by the evaluation"):
        plan_attacks([("pgd", {"eps": 0.3})], WHITE_LINF)


def test_an_attack_listed_twice_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="pgd is listed twice"):
        plan_attacks(["pgd", ("pgd", {"steps": 5})], WHITE_LINF)


@pytest.mark.parametrize("bad", ["pgd", [("pgd",)], [3], [("pgd", ["steps", 5])], []])
def test_malformed_attack_lists_are_usage_errors(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="attack"):
        plan_attacks(bad, WHITE_LINF)


def test_attacks_may_be_names_pairs_or_a_mapping_with_parameters() -> None:
    from_list = plan_attacks(["fgsm", ("pgd", {"steps": 5})], WHITE_LINF)
    from_mapping = plan_attacks({"fgsm": {}, "pgd": {"steps": 5}}, WHITE_LINF)
    for plan in (from_list, from_mapping):
        assert names(plan) == ["fgsm", "pgd"]
        assert dict(plan.attacks[1].params) == {"steps": 5}


def test_white_box_attacks_run_before_black_box_ones_fixed_budget_first() -> None:
    plan = plan_attacks(["hopskipjump", "square", "deepfool", "pgd", "fgsm"], WHITE_LINF)
    assert names(plan) == ["pgd", "fgsm", "deepfool", "square", "hopskipjump"]


def test_attacks_that_do_not_apply_are_skipped_with_the_reason() -> None:
    black_l1 = SuiteRequest(norm="l1", white_box=False, scores=True, constrained=False)
    plan = plan_attacks(["pgd", "square", "hopskipjump"], black_l1)
    assert plan.attacks == []
    assert plan.skipped["pgd"] == "needs gradients and the target is black-box"
    assert "supports the linf, l2 norms, not l1" in plan.skipped["square"]
    assert "not l1" in plan.skipped["hopskipjump"]


def test_constrained_inputs_skip_attacks_that_ignore_constraints() -> None:
    constrained = SuiteRequest(norm="linf", white_box=True, scores=True, constrained=True)
    plan = plan_attacks(["pgd", "tabular_pgd"], constrained)
    assert names(plan) == ["tabular_pgd"]
    assert plan.skipped["pgd"] == "cannot respect feature constraints"


def test_standard_white_box_suite_is_autoattack_plus_deepfool() -> None:
    plan = plan_suite("standard", WHITE_LINF)
    assert names(plan) == ["apgd", "apgd_t", "deepfool", "square"]


def test_quick_suite_is_one_short_apgd() -> None:
    plan = plan_suite("quick", WHITE_LINF)
    assert names(plan) == ["apgd"]
    assert (
        plan.attacks[0].params["steps"]
        < plan_suite("standard", WHITE_LINF).attacks[0].params["steps"]
    )


def test_strong_suite_adds_restarts_pgd_and_cw_under_l2() -> None:
    l2 = SuiteRequest(norm="l2", white_box=True, scores=True, constrained=False)
    plan = plan_suite("strong", l2)
    assert {"cw", "deepfool", "apgd", "apgd_t", "pgd", "square"} <= set(names(plan))
    assert plan.attacks[names(plan).index("pgd")].params["restarts"] > 1
    assert "cw" not in names(plan_suite("strong", WHITE_LINF))


def test_black_box_targets_get_square_and_hopskipjump() -> None:
    black = SuiteRequest(norm="linf", white_box=False, scores=True, constrained=False)
    assert names(plan_suite("standard", black)) == ["square", "hopskipjump"]


def test_label_only_targets_get_the_decision_based_attack() -> None:
    labels = SuiteRequest(norm="l2", white_box=False, scores=False, constrained=False)
    assert names(plan_suite("standard", labels)) == ["hopskipjump"]


def test_l0_suites_use_the_pixel_attack() -> None:
    l0 = SuiteRequest(norm="l0", white_box=False, scores=True, constrained=False)
    assert names(plan_suite("standard", l0)) == ["pixel"]


def test_constrained_suites_use_tabular_pgd() -> None:
    constrained = SuiteRequest(norm="linf", white_box=True, scores=True, constrained=True)
    assert names(plan_suite("standard", constrained)) == ["tabular_pgd"]


@pytest.mark.parametrize(
    ("suite", "norm", "white_box", "scores", "constrained"),
    list(
        itertools.product(
            ["quick", "standard", "strong"],
            ["linf", "l2", "l1", "l0"],
            [True, False],
            [True, False],
            [True, False],
        )
    ),
)
def test_every_suite_names_real_attacks_with_real_parameters(  # type: ignore[no-untyped-def]
    suite, norm, white_box, scores, constrained
) -> None:
    plan = plan_suite(suite, SuiteRequest(norm, white_box, scores, constrained))
    for attack in plan.attacks:
        assert attack.name in attack_names()
        assert norm in attack.spec.norms
        assert white_box or not attack.spec.white_box


def test_register_suite_adds_a_suite_by_name(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(suites_module, "_SUITES", dict(suites_module._SUITES))

    @register_suite("fgsm-only", "one FGSM step")
    def _fgsm_only(request: SuiteRequest) -> list[tuple[str, dict[str, object]]]:
        return [("fgsm", {})]

    assert "fgsm-only" in suite_names()
    assert names(plan_suite("fgsm-only", WHITE_LINF)) == ["fgsm"]


def test_l1_white_box_suites_fall_back_to_pgd() -> None:
    l1 = SuiteRequest(norm="l1", white_box=True, scores=True, constrained=False)
    for suite in ("quick", "standard", "strong"):
        assert names(plan_suite(suite, l1)) == ["pgd"]


def test_the_pixel_budget_comes_from_eps_not_from_parameters() -> None:
    l0 = SuiteRequest(norm="l0", white_box=False, scores=True, constrained=False)
    with pytest.raises(UsageError, match="pixels is set by the evaluation"):
        plan_attacks([("pixel", {"pixels": 3})], l0)


def test_attacks_with_their_own_threat_model_are_skipped() -> None:
    l0 = SuiteRequest(norm="l0", white_box=True, scores=True, constrained=False)
    plan = plan_attacks(["patch", "pixel"], l0)
    assert names(plan) == ["pixel"]
    assert "own threat model" in plan.skipped["patch"]
