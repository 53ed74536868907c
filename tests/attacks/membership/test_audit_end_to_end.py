"""The whole path through `mlwarden.attacks.membership.audit`: data in, every metric out."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from mlwarden.attacks.membership import audit

from .conftest import Setup

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlwarden.attacks.membership.reference") is None,
    reason="reference models (mlwarden.attacks.membership.reference) are not built yet",
)


def test_audit_measures_every_attack_on_an_overfit_model(overfit: Setup) -> None:
    result = audit(
        overfit.model,
        members=overfit.members,
        non_members=overfit.non_members,
        population=overfit.population,
        train_fn=overfit.estimator,
        attacks=["loss", "modified-entropy", "shadow", "lira-offline", "rmia", "label-only"],
        n_reference=2,
        params={"label-only": {"n_queries": 4}, "rmia": {"n_population": 300}},
        fpr_levels=(0.01, 0.001),
        n_exposed=5,
        seed=0,
    )
    assert set(result.outcomes) == {
        "loss",
        "modified-entropy",
        "shadow",
        "lira-offline",
        "rmia",
        "label-only",
    }
    assert result.n_reference == 2 and result.reference_mode == "offline"
    n = len(overfit.x)
    for name, outcome in result.outcomes.items():
        assert outcome.auc > 0.6, name
        assert set(outcome.tpr_at_fpr) == {0.01, 0.001}
        assert outcome.scores.shape == (n,)
        assert np.array_equal(outcome.is_member, overfit.is_member)
        assert math.isfinite(outcome.epsilon.value) and outcome.epsilon.lower >= 0
        assert [r.rank for r in outcome.exposed] == [1, 2, 3, 4, 5]
        assert all(0 <= r.index < len(overfit.members[0]) for r in outcome.exposed)
        json.dumps([outcome.auc, outcome.advantage, outcome.epsilon.value, outcome.tpr_at_fpr])
    assert result.outcomes["rmia"].queries == 300  # the population sample, once
    assert result.outcomes["label-only"].queries == 4 * n
    assert result.outcomes["loss"].queries == 0  # the audit's one pass is shared
    best = result.best(fpr=0.01)
    assert best.attack in ("rmia", "lira-offline", "shadow")
    assert best.tpr_at_fpr[0.01] > result.outcomes["loss"].tpr_at_fpr[0.01]


def test_audit_runs_lira_online_with_online_reference_models(overfit: Setup) -> None:
    result = audit(
        overfit.model,
        members=overfit.members,
        non_members=overfit.non_members,
        population=(overfit.population[0][:100], overfit.population[1][:100]),
        train_fn=overfit.estimator,
        attacks=["lira-online"],
        n_reference=4,
        seed=1,
    )
    assert result.reference_mode == "online"
    assert result.outcomes["lira-online"].auc > 0.7


def test_audit_without_reference_models_explains_what_to_pass(overfit: Setup) -> None:
    from mlwarden.errors import UsageError

    with pytest.raises(UsageError, match="need reference models: pass train_fn"):
        audit(
            overfit.model,
            members=overfit.members,
            non_members=overfit.non_members,
            attacks=["rmia"],
        )
