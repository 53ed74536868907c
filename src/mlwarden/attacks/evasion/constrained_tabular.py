"""PGD under feature constraints: evasion of fraud and intrusion-detection style tabular models.

A tabular attacker cannot change every column: some are fixed (account age), some bounded
(amount >= 0), some whole numbers (logins), some one-hot categories (country). This attack keeps
a relaxed, continuous iterate for the numeric features it may change and a category per one-hot
group. Each step it snaps the iterate to a valid input (integers rounded, categories one-hot,
bounds and immutable features respected), takes the gradient there, checks success there, then
steps the relaxed iterate along the gradient of the mutable numeric features and projects it
onto the eps ball (linf or l2) and the bounds. A one-hot group switches to the category whose
gradient promises the largest gain when the switch fits the budget (a switch moves two features
by 1). Every input it records is valid: the runner's own projection onto the same constraints
leaves it unchanged. Not for: images (use ``pgd``), or black-box models.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mlwarden.attacks.evasion._torch import to_tensor
from mlwarden.attacks.evasion.base import (
    AttackResult,
    AttackSpec,
    AttackState,
    Norm,
    ProgressFn,
    register_attack,
    run_attack,
)
from mlwarden.attacks.evasion.constraints import FeatureConstraints
from mlwarden.errors import InputError
from mlwarden.targets.base import Target, WhiteBoxTarget

SPEC = AttackSpec(
    name="tabular_pgd", title="PGD under feature constraints", white_box=True, norms=("linf", "l2")
)

SWITCH_L2_COST = 2.0
"""Squared l2 length of a category switch: one feature goes 1 -> 0, another 0 -> 1."""
_SLACK = 1e-9


class _Space:
    """The valid inputs around each clean input: what may move, how far, and to which values."""

    def __init__(self, state: AttackState, n_features: int) -> None:
        rules = state.threat.constraints or FeatureConstraints()
        self.norm = state.threat.norm
        self.eps = float(state.threat.eps or 0.0)
        low, high = state.threat.input_range
        self.lower = np.full(n_features, low)
        self.upper = np.full(n_features, high)
        if rules.lower is not None:
            self.lower = np.maximum(self.lower, rules.lower)
        if rules.upper is not None:
            self.upper = np.minimum(self.upper, rules.upper)
        immutable = np.zeros(n_features, dtype=bool)
        immutable[list(rules.immutable)] = True
        in_group = np.zeros(n_features, dtype=bool)
        self.groups: list[np.ndarray] = []
        for group in rules.one_hot:
            cols = np.array(group, dtype=np.int64)
            in_group[cols] = True
            # switching a category moves two of its columns; one immutable column pins it
            if not immutable[cols].any():
                self.groups.append(cols)
        self.numeric = ~immutable & ~in_group
        integer = np.zeros(n_features, dtype=bool)
        integer[list(rules.integer)] = True
        self.integer = np.flatnonzero(integer & self.numeric)
        self.int_lower = np.ceil(self.lower[self.integer] - _SLACK)
        self.int_upper = np.floor(self.upper[self.integer] + _SLACK)

    def category_cost(self, categories: np.ndarray, clean: np.ndarray) -> np.ndarray:
        """Squared l2 length spent on category switches, per sample ``(m,)``."""
        if not self.groups:
            return np.zeros(len(categories))
        return np.asarray(SWITCH_L2_COST * (categories != clean).sum(axis=1), dtype=np.float64)

    def switches_fit(self) -> bool:
        """Whether one category switch fits the budget at all (it moves features by 1)."""
        return self.eps >= 1.0 - _SLACK if self.norm == "linf" else self.eps**2 >= SWITCH_L2_COST

    def radius(self, categories: np.ndarray, clean: np.ndarray) -> np.ndarray:
        """Budget left for the numeric features after the category switches, per sample."""
        if self.norm == "linf":
            return np.full(len(categories), self.eps)
        spent = self.category_cost(categories, clean)
        return np.asarray(np.sqrt(np.maximum(self.eps**2 - spent, 0.0)))

    def project(self, z: np.ndarray, x: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """Relaxed iterate `z` moved into the ball around `x` and the bounds; numeric only."""
        delta = np.where(self.numeric, z - x, 0.0)
        if self.norm == "linf":
            delta = np.clip(delta, -radius[:, None], radius[:, None])
        else:
            size = np.sqrt((delta**2).sum(axis=1))
            delta *= np.minimum(1.0, radius / np.maximum(size, 1e-30))[:, None]
        return np.asarray(np.clip(x + delta, self.lower, self.upper))

    def snap(self, z: np.ndarray, x: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """A valid input from relaxed `z` and one category per group, as float32."""
        out = np.where(self.numeric, z, x)
        cols = self.integer
        if len(cols):
            clean = x[:, cols]
            nearest = np.clip(np.round(z[:, cols]), self.int_lower, self.int_upper)
            if self.norm == "linf":
                reach = math.floor(self.eps + _SLACK)
                nearest = np.clip(nearest, clean - reach, clean + reach)
            out[:, cols] = nearest
            if self.norm == "l2":
                # rounding up may leave the ball; truncating toward the clean value never does
                radius = self.radius(categories, self.categories_of(x))
                over = np.sqrt(((out - x) ** 2).sum(axis=1)) > radius * (1 + 1e-7)
                out[np.ix_(over, cols)] = clean[over] + np.trunc(
                    z[np.ix_(over, cols)] - clean[over]
                )
        for g, group in enumerate(self.groups):
            block = np.zeros((len(out), len(group)))
            block[np.arange(len(out)), categories[:, g]] = 1.0
            out[:, group] = block
        return out.astype(np.float32)

    def categories_of(self, x: np.ndarray) -> np.ndarray:
        """Category index per group ``(n, groups)`` of valid inputs `x`."""
        if not self.groups:
            return np.zeros((len(x), 0), dtype=np.int64)
        return np.stack([x[:, group].argmax(axis=1) for group in self.groups], axis=1)

    def switch(
        self, grad: np.ndarray, categories: np.ndarray, clean: np.ndarray, sign: float
    ) -> np.ndarray:
        """Categories after switching, greedily by first-order gain, while they fit the budget."""
        if not self.groups or not self.switches_fit():
            return categories
        rows = np.arange(len(grad))
        choice = np.empty_like(categories)
        gain = np.empty(categories.shape)
        for g, group in enumerate(self.groups):
            members = sign * grad[:, group]
            allowed = self.upper[group] >= 1.0 - _SLACK
            members = np.where(allowed, members - members[rows, categories[:, g]][:, None], -np.inf)
            choice[:, g] = members.argmax(axis=1)
            gain[:, g] = members[rows, choice[:, g]]
        out = categories.copy()
        if self.norm == "linf":
            better = gain > 0
            out[better] = choice[better]
            return out
        budget = self.eps**2
        for rank in np.argsort(-gain, axis=1, kind="stable").T:
            proposal = out.copy()
            wants = gain[rows, rank] > 0
            proposal[rows[wants], rank[wants]] = choice[rows[wants], rank[wants]]
            fits = self.category_cost(proposal, clean) <= budget + _SLACK
            out[wants & fits] = proposal[wants & fits]
        return out


def _steepest(grad: np.ndarray, norm: Norm) -> np.ndarray:
    if norm == "linf":
        return np.asarray(np.sign(grad))
    size = np.sqrt((grad**2).sum(axis=1, keepdims=True))
    return np.asarray(grad / np.maximum(size, 1e-30))


def _random_start(
    space: _Space,
    x: np.ndarray,
    categories: np.ndarray,
    clean: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    radius = space.radius(categories, clean)
    if space.norm == "linf":
        noise = rng.uniform(-1.0, 1.0, size=x.shape) * radius[:, None]
    else:
        direction = rng.standard_normal(x.shape) * space.numeric
        direction /= np.maximum(np.sqrt((direction**2).sum(axis=1, keepdims=True)), 1e-30)
        noise = direction * (radius * rng.uniform(0.0, 1.0, size=len(x)))[:, None]
    return space.project(x + noise, x, radius)


def _tabular_pgd(
    state: AttackState, target: WhiteBoxTarget, /, *, steps: int, step_size: float, restarts: int
) -> None:
    if not state.threat.eps:
        return
    space = _Space(state, state.x.shape[1])
    sign = -1.0 if state.targeted else 1.0
    x_all = state.x.astype(np.float64)
    clean_all = space.categories_of(x_all)
    rng = state.rng(0)
    for restart in range(restarts):
        index = np.flatnonzero(~state.found)
        if len(index) == 0:
            return
        x, clean = x_all[index], clean_all[index]
        categories = clean.copy()
        z = x.copy() if restart == 0 else _random_start(space, x, categories, clean, rng)
        for step in range(steps + 1):
            point = space.snap(z, x, categories)
            grad = np.zeros_like(x)
            keep = np.ones(len(index), dtype=bool)
            for start in range(0, len(index), target.batch_size):
                part = slice(start, start + target.batch_size)
                fooled, grad[part] = _look(state, target, index[part], point[part], step < steps)
                state.record(index[part][fooled], point[part][fooled])
                keep[part] = ~fooled
            index, x, clean, z = index[keep], x[keep], clean[keep], z[keep]
            categories, grad = categories[keep], grad[keep]
            state.tick(restart * steps + min(step + 1, steps), restarts * steps)
            if step == steps or len(index) == 0:
                break
            z = z + sign * step_size * _steepest(np.where(space.numeric, grad, 0.0), space.norm)
            categories = space.switch(grad, categories, clean, sign)
            z = space.project(z, x, space.radius(categories, clean))


def _look(
    state: AttackState,
    target: WhiteBoxTarget,
    index: np.ndarray,
    point: np.ndarray,
    want_gradient: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Which of `point` fool the model, and the loss gradient there (zeros when not wanted)."""
    inputs = to_tensor(point, target)
    if not want_gradient:
        with torch.no_grad():
            labels = target.logits(inputs).argmax(dim=1).cpu().numpy()
        return state.is_adversarial(labels, index), np.zeros(point.shape)
    inputs.requires_grad_(True)
    logits = target.logits(inputs)
    goal = torch.from_numpy(state.goal[index]).to(target.device)
    loss = torch.nn.functional.cross_entropy(logits, goal, reduction="sum")
    (grad,) = torch.autograd.grad(loss, inputs)
    labels = logits.detach().argmax(dim=1).cpu().numpy()
    return state.is_adversarial(labels, index), grad.cpu().numpy().astype(np.float64)


@register_attack(SPEC)
def tabular_pgd(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    norm: Norm = "linf",
    constraints: FeatureConstraints | None = None,
    steps: int = 50,
    step_size: float | None = None,
    restarts: int = 1,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """PGD over the features an attacker controls, always returning valid inputs.

    Args:
        target: a white-box target over flat inputs ``(n_features,)``.
        x: clean inputs ``(n, n_features)`` inside the target's input range that satisfy
            `constraints`.
        y: true labels ``(n,)``.
        eps: perturbation budget in input units under `norm`, over all features that move
            (a category switch moves two one-hot features by 1: 1 under linf, sqrt(2) under l2).
        norm: ``linf`` or ``l2``.
        constraints: immutable features, per-feature bounds, integer features and one-hot
            groups; the runner enforces them on every result too. None: every feature is free.
        steps: gradient steps per restart, >= 1.
        step_size: step length in input units under `norm`; by default ``2.5 * eps / steps``.
        restarts: runs per sample, >= 1; the first starts at the clean input, the others at
            a random point of the ball. Samples fooled earlier are skipped.
        y_target: labels to reach for a targeted attack; None for untargeted.
        seed: seeds the random starts.
        progress: ``progress(done, total)`` callback in steps.
    """
    if len(target.input_shape) != 1:
        raise InputError(
            f"tabular_pgd attacks flat inputs (n_features,); {target.name} takes "
            f"{target.input_shape}. For images use pgd"
        )
    for name, value in (("steps", steps), ("restarts", restarts)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
    if constraints is not None and not isinstance(constraints, FeatureConstraints):
        raise InputError(
            "constraints must be a FeatureConstraints (FeatureConstraints.build(immutable=..., "
            f"integer=..., one_hot=...)), got {type(constraints).__name__}"
        )
    size = step_size
    if size is not None and not (
        isinstance(size, (int, float)) and math.isfinite(size) and size > 0
    ):
        raise InputError(f"step_size must be a positive number in input units, got {size!r}")
    params: dict[str, float | int] = {"steps": int(steps), "restarts": int(restarts)}
    if size is None:
        try:
            size = 2.5 * float(eps) / int(steps)
        except (TypeError, ValueError):
            size = 0.0  # run_attack rejects the eps itself, with the message that says why
    params["step_size"] = float(size)
    return run_attack(
        _tabular_pgd,
        SPEC,
        target,
        x,
        y,
        eps=eps,
        norm=norm,
        y_target=y_target,
        constraints=constraints,
        seed=seed,
        progress=progress,
        params=params,
    )
