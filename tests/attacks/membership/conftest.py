"""Membership inference test setups: a deliberately overfit model and one that generalises.

Each setup holds the target, its members (its training set), non-members and a disjoint
population, all in [0, 1], and two reference sets trained here with scikit-learn (so these
tests do not depend on `reference.py`): ``offline`` (models on paired halves of the
population, every candidate OUT) and ``online`` (models on paired halves of the candidates,
each candidate IN for exactly half of them, the same training-set size as the target's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from mlwarden.attacks.membership import MembershipContext, ReferenceSet
from mlwarden.targets import Target, target

pytest.importorskip("sklearn")

N_MEMBERS = 300
"""Members, non-members: this many each; population: twice as many."""
OFFLINE_MODELS = 4
ONLINE_MODELS = 8


@dataclass
class Setup:
    """A target with known members and the reference sets of its attacks."""

    estimator: Any
    """Unfitted estimator like the target (what reference models are cloned from)."""
    model: Any
    members: tuple[np.ndarray, np.ndarray]
    non_members: tuple[np.ndarray, np.ndarray]
    population: tuple[np.ndarray, np.ndarray]
    offline: ReferenceSet
    online: ReferenceSet
    probs: np.ndarray = field(repr=False)
    """The target's probabilities on the candidates (members first)."""

    @property
    def x(self) -> np.ndarray:
        return np.concatenate([self.members[0], self.non_members[0]])

    @property
    def y(self) -> np.ndarray:
        return np.concatenate([self.members[1], self.non_members[1]])

    @property
    def is_member(self) -> np.ndarray:
        n_m, n_n = len(self.members[0]), len(self.non_members[0])
        return np.r_[np.ones(n_m, bool), np.zeros(n_n, bool)]

    def target(self) -> Target:
        """A fresh target over the model (query counter at zero)."""
        return target(self.model)

    def context(
        self,
        reference: ReferenceSet | None = None,
        *,
        target_: Target | None = None,
        seed: int = 0,
        **params: Any,
    ) -> MembershipContext:
        """What the audit would hand an attack."""
        return MembershipContext(
            target=target_ if target_ is not None else self.target(),
            x=self.x,
            y=self.y,
            population=self.population,
            target_probs=self.probs,
            reference=reference,
            seed=seed,
            params=params,
        )


def paired_halves(n_records: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``(k, n)`` bool: every record IN for exactly ``k // 2`` of the ``k`` models."""
    order = rng.permuted(np.tile(np.arange(k), (n_records, 1)), axis=1)
    return np.asarray((order < k // 2).T)


def train_reference_set(
    estimator: Any,
    candidates: tuple[np.ndarray, np.ndarray],
    population: tuple[np.ndarray, np.ndarray],
    *,
    k: int,
    mode: str,
    seed: int = 0,
) -> ReferenceSet:
    """Reference models trained directly with scikit-learn (offline: halves of the population;
    online: halves of the candidates)."""
    from sklearn.base import clone

    rng = np.random.default_rng(seed)
    x_c, y_c = candidates
    x_p, y_p = population
    online = mode == "online"
    in_c = paired_halves(len(x_c), k, rng) if online else np.zeros((k, len(x_c)), bool)
    in_p = np.zeros((k, len(x_p)), bool) if online else paired_halves(len(x_p), k, rng)
    probs_c, probs_p = [], []
    for i in range(k):
        model = clone(estimator)
        if "random_state" in model.get_params():
            model.set_params(random_state=seed * 100 + i + 1)
        model.fit(np.concatenate([x_c[in_c[i]], x_p[in_p[i]]]), np.r_[y_c[in_c[i]], y_p[in_p[i]]])
        probs_c.append(model.predict_proba(x_c))
        probs_p.append(model.predict_proba(x_p))
    return ReferenceSet(
        mode="online" if online else "offline",
        probs_candidates=np.asarray(probs_c, dtype=np.float32),
        probs_population=np.asarray(probs_p, dtype=np.float32),
        in_candidates=in_c,
        in_population=in_p,
    )


def build_setup(estimator: Any, x: np.ndarray, y: np.ndarray) -> Setup:
    """Split ``(x, y)`` into members, non-members and population; train the target on the
    members and both reference sets."""
    from sklearn.base import clone

    n = N_MEMBERS
    x = ((x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))).astype(np.float32)
    y = y.astype(np.int64)
    members, non_members = (x[:n], y[:n]), (x[n : 2 * n], y[n : 2 * n])
    population = (x[2 * n : 4 * n], y[2 * n : 4 * n])
    model = clone(estimator).fit(*members)
    candidates = (np.concatenate([members[0], non_members[0]]), np.r_[members[1], non_members[1]])
    return Setup(
        estimator=estimator,
        model=model,
        members=members,
        non_members=non_members,
        population=population,
        offline=train_reference_set(
            estimator, candidates, population, k=OFFLINE_MODELS, mode="offline"
        ),
        online=train_reference_set(
            estimator, candidates, population, k=ONLINE_MODELS, mode="online"
        ),
        probs=target(model).predict_proba(candidates[0]),
    )


@pytest.fixture(scope="session")
def overfit() -> Setup:
    """A random forest of fully grown trees on noisy labels: 100% on its members, ~73% on
    non-members, so membership leaks."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(
        n_samples=4 * N_MEMBERS,
        n_features=20,
        n_informative=10,
        n_redundant=0,
        flip_y=0.1,
        random_state=0,
    )
    return build_setup(RandomForestClassifier(n_estimators=30, n_jobs=1, random_state=0), x, y)


@pytest.fixture(scope="session")
def generalising() -> Setup:
    """A logistic regression on 5 features: as good on non-members as on members."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(
        n_samples=4 * N_MEMBERS,
        n_features=5,
        n_informative=5,
        n_redundant=0,
        flip_y=0.1,
        random_state=0,
    )
    return build_setup(LogisticRegression(C=1.0), x, y)
