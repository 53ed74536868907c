"""What every evasion attack shares: the threat model, the result, and the runner that checks them.

An attack module implements a *raw* attack ``raw(state, target, **params)`` that searches for
adversarial inputs and records them in its `AttackState` as it finds them. Its public function
calls `run_attack`, which validates the inputs once, runs the raw attack with the model held in
eval mode, then **does not trust it**: the runner projects every result onto the threat model
(eps ball, input range, feature constraints) and asks the target again, with a fresh query, which
results really are adversarial (the foolbox principle). If the attack is interrupted (Ctrl-C or
the query budget), the runner still returns what it had found.

Not for: the attacks themselves (one module each) or evaluation over several attacks
(`mlwarden.evaluate`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mlwarden.attacks.evasion.constraints import FeatureConstraints
from mlwarden.errors import InputError, QueryBudgetExceeded, TargetError
from mlwarden.targets.base import Target, validate_batch, validate_labels

Norm = Literal["linf", "l2", "l1", "l0"]
NORMS: tuple[Norm, ...] = ("linf", "l2", "l1", "l0")
ProgressFn = Callable[[int, int], None]
"""``progress(done, total)`` in the attack's own units (steps, queries)."""

PROJECTION_TOLERANCE = 1e-6
"""Float32 slack allowed on the eps ball and the input range, relative to the range width."""


def perturbation_norms(delta: np.ndarray, norm: Norm) -> np.ndarray:
    """Per-sample norm of `delta` ``(n, ...)`` as float64 ``(n,)``; l0 counts changed values."""
    if norm == "linf":  # exact in the input's own dtype: no float64 copy of the whole batch
        largest = np.abs(np.asarray(delta).reshape(len(delta), -1)).max(axis=1, initial=0.0)
        return np.asarray(largest, dtype=np.float64)
    flat = np.asarray(delta, dtype=np.float64).reshape(len(delta), -1)
    if norm == "l2":
        return np.asarray(np.sqrt((flat**2).sum(axis=1)))
    if norm == "l1":
        return np.asarray(np.abs(flat).sum(axis=1))
    if norm == "l0":
        return np.asarray((flat != 0).sum(axis=1), dtype=np.float64)
    raise InputError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


def is_channels_last(x: Any) -> bool:
    """Whether `x`, a batch ``(n, c, h, w)``, is laid out channels-last in memory (NHWC).

    Image arrays built from ``(n, h, w, c)`` data often are; torch then runs convolutions in
    its channels-last kernels, which can be much faster. Attacks mirror the caller's layout so
    that the model runs as it would on the caller's own tensors. Judged from the strides, as
    torch picks its kernels (a channel stride of one element); False for anything else.
    """
    shape = getattr(x, "shape", None)
    strides = getattr(x, "strides", None)
    if shape is None or strides is None or len(shape) != 4 or len(strides) != 4:
        return False
    n, c, h, w = (int(d) for d in shape)
    if n == 0 or h * w <= 1:
        return False
    size = int(x.itemsize)
    # the channel moves fastest, then the width, the height and the sample
    return bool(strides[1] == size and strides[3] == c * size and strides[2] == w * c * size)


def in_layout(x: np.ndarray, channels_last: bool) -> np.ndarray:
    """`x`, a C-contiguous batch, viewed channels-last when `channels_last` and it costs no copy.

    With one channel the two layouts share the same memory and only the strides differ; with
    more the batch is returned as it is (a copy per query would cost more than it saves).
    """
    if not channels_last or x.ndim != 4 or x.shape[1] != 1 or not x.flags.c_contiguous:
        return x
    n, _, h, w = x.shape
    return x.reshape(n, h, w, 1).transpose(0, 3, 1, 2)


@dataclass(frozen=True)
class ThreatModel:
    """What the attacker may do: move each input at most `eps` under `norm`, inside the range."""

    norm: Norm
    eps: float | None
    """Budget in input units (l0: number of input values changed); None for minimum-norm attacks."""
    input_range: tuple[float, float]
    constraints: FeatureConstraints | None = None

    def project(self, x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
        """`x_adv` moved into the threat model around `x`, as float32; never moves a valid point."""
        clean = np.asarray(x, dtype=np.float64)
        delta = np.asarray(x_adv, dtype=np.float64) - clean
        if not np.isfinite(delta).all():
            delta = np.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0)
        if self.eps is not None:
            delta = _project_ball(delta, self.norm, self.eps)
        low, high = self.input_range
        out = np.clip(np.add(clean, delta, out=delta), low, high, out=delta)
        if self.constraints is not None:
            out = self.constraints.project(out, clean)
            out = np.clip(out, low, high)
            if self.eps is not None:
                over = ~self.inside(out, clean)
                for group in self.constraints.one_hot:
                    cols = np.array(group, dtype=np.int64)
                    out[np.ix_(over, cols)] = clean[np.ix_(over, cols)]
                out[~self.inside(out, clean)] = clean[~self.inside(out, clean)]
        return out.astype(np.float32)

    def limit(self, eps: float) -> float:
        """The largest norm that still counts as within `eps`: eps plus float32 slack."""
        low, high = self.input_range
        slack = PROJECTION_TOLERANCE * (high - low)
        return eps + slack if self.norm == "linf" else eps * (1 + 1e-5) + slack

    def inside(self, x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Boolean ``(n,)``: which of `x_adv` lie in the threat model around `x`."""
        low, high = self.input_range
        slack = PROJECTION_TOLERANCE * (high - low)
        flat = np.asarray(x_adv, dtype=np.float64).reshape(len(x_adv), -1)
        ok = (flat >= low - slack).all(axis=1) & (flat <= high + slack).all(axis=1)
        if self.eps is not None:
            norms = perturbation_norms(
                np.asarray(x_adv, np.float64) - np.asarray(x, np.float64), self.norm
            )
            ok &= norms <= self.limit(self.eps)
        return np.asarray(ok, dtype=bool)


def _project_ball(delta: np.ndarray, norm: Norm, eps: float) -> np.ndarray:
    flat = delta.reshape(len(delta), -1)
    if norm == "linf":
        return np.asarray(np.clip(delta, -eps, eps))
    if norm == "l0":
        keep = int(eps)
        if keep >= flat.shape[1]:
            return delta
        order = np.argsort(-np.abs(flat), axis=1, kind="stable")
        mask = np.zeros_like(flat, dtype=bool)
        np.put_along_axis(mask, order[:, :keep], True, axis=1)
        return np.asarray(np.where(mask, flat, 0.0).reshape(delta.shape))
    norms = perturbation_norms(delta, norm)
    # shrinking toward the clean input keeps the point feasible; clipping to the range later
    # can only shrink it further
    scale = np.minimum(1.0, eps / np.maximum(norms, 1e-30))
    return np.asarray((flat * scale[:, None]).reshape(delta.shape))


def stream_rng(seed: int, stream: int = 0) -> np.random.Generator:
    """The NumPy generator of `stream` under an attack's `seed` (`AttackState.rng`)."""
    return np.random.default_rng([seed, stream])


@dataclass
class AttackState:
    """The raw attack's view of the run, and where it records what it finds.

    `best` starts as the clean inputs. Attacks call `record` (fixed-budget attacks) or
    `record_smaller` (minimum-norm attacks) as soon as they find adversarial inputs, so an
    interrupted run still has them, and `propose` for a last iterate nothing has judged yet.
    """

    x: np.ndarray
    """Clean inputs, validated, float32 ``(n, *input_shape)``."""
    y: np.ndarray
    """True labels, int64 ``(n,)``."""
    y_target: np.ndarray | None
    """Target labels for a targeted attack, else None."""
    threat: ThreatModel
    clean_predictions: np.ndarray
    """The target's labels on the clean inputs; -1 where not known yet (an attack whose first
    pass is at the clean inputs supplies them through `note_clean`)."""
    seed: int
    progress: ProgressFn | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    """Anything else the attack produced that a user wants (a universal patch, its positions)."""
    clean_probs: np.ndarray | None = None
    """The target's probabilities on the clean inputs ``(n, n_classes)``, rows of zeros where
    not known yet; None when the runner did not keep them."""
    channels_last: bool = False
    """The caller's images were channels-last (`is_channels_last`): attacks that can do so at
    no cost hand the model channels-last tensors too."""
    best: np.ndarray = field(init=False)
    best_norm: np.ndarray = field(init=False)
    found: np.ndarray = field(init=False)
    clean_known: np.ndarray = field(init=False)
    """Boolean ``(n,)``: whose clean prediction is known (all, unless the attack supplies them)."""

    def __post_init__(self) -> None:
        self.best = self.x.copy()
        self.best_norm = np.full(len(self.x), np.inf)
        self.clean_known = np.asarray(self.clean_predictions >= 0)
        self.found = self.is_adversarial(self.clean_predictions) & self.clean_known
        self.best_norm[self.found] = 0.0

    @property
    def targeted(self) -> bool:
        """Whether success means reaching `y_target` (else: leaving `y`)."""
        return self.y_target is not None

    @property
    def goal(self) -> np.ndarray:
        """Per sample, the label to reach (targeted) or to leave (untargeted)."""
        return self.y_target if self.y_target is not None else self.y

    def rng(self, stream: int = 0) -> np.random.Generator:
        """A NumPy generator derived from the seed; different streams are independent."""
        return stream_rng(self.seed, stream)

    def is_adversarial(
        self, predictions: np.ndarray, index: np.ndarray | None = None
    ) -> np.ndarray:
        """Boolean mask: do `predictions` (for samples `index`, all when None) meet the goal?"""
        goal = self.goal if index is None else self.goal[index]
        hit: np.ndarray = predictions == goal if self.targeted else predictions != goal
        return hit

    def record(self, index: np.ndarray, x_adv: np.ndarray) -> None:
        """Keep `x_adv` as the adversarial inputs of samples `index` (indices into `x`)."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) == 0:
            return
        self.best[index] = x_adv
        self.found[index] = True
        self.best_norm[index] = perturbation_norms(
            self.best[index] - self.x[index], self.threat.norm
        )

    def propose(self, index: np.ndarray, x_adv: np.ndarray) -> None:
        """Offer `x_adv` for those of samples `index` not yet fooled, without claiming anything.

        For an attack's last iterate: checking it would repeat the runner's verification, a
        fresh query that decides whether it is adversarial (if not, the result is the clean
        input). `found` is unchanged, so a later `record` or `propose` replaces it.
        """
        index = np.asarray(index, dtype=np.int64)
        open_ = ~self.found[index]
        self.best[index[open_]] = np.asarray(x_adv)[open_]

    def note_clean(self, index: np.ndarray, probs: np.ndarray) -> None:
        """Take the target's probabilities ``(len(index), n_classes)`` at the clean inputs of
        samples `index`, from a pass the attack made there anyway (`_torch.clean_pass`).

        Samples whose clean prediction is known keep it; those it misclassifies count as fooled
        with norm 0, like the ones the runner found before the attack.
        """
        index = np.asarray(index, dtype=np.int64)
        scores = np.asarray(probs, dtype=np.float32)
        width = scores.shape[1] if self.clean_probs is None else self.clean_probs.shape[1]
        if scores.shape != (len(index), width):
            raise TargetError(
                f"the target answered shape {scores.shape} for {len(index)} clean inputs; "
                f"expected ({len(index)}, {width}) class scores"
            )
        if not np.isfinite(scores).all():
            raise TargetError("the target answered NaN or infinite scores on clean inputs")
        new = ~self.clean_known[index]
        index, scores = index[new], scores[new]
        predictions = scores.argmax(axis=1)
        self.clean_predictions[index] = predictions
        if self.clean_probs is not None:
            self.clean_probs[index] = scores
        self.clean_known[index] = True
        wrong = index[self.is_adversarial(predictions, index)]
        self.found[wrong] = True
        self.best[wrong] = self.x[wrong]
        self.best_norm[wrong] = 0.0

    def record_smaller(self, index: np.ndarray, x_adv: np.ndarray) -> None:
        """Keep those of `x_adv` whose perturbation is smaller than the best one so far."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) == 0:
            return
        norms = perturbation_norms(np.asarray(x_adv, np.float64) - self.x[index], self.threat.norm)
        better = norms < self.best_norm[index]
        if better.any():
            self.best[index[better]] = np.asarray(x_adv)[better]
            self.best_norm[index[better]] = norms[better]
            self.found[index[better]] = True

    def tick(self, done: int, total: int) -> None:
        """Report progress, if anyone listens."""
        if self.progress is not None:
            self.progress(done, total)


@dataclass
class AttackResult:
    """What an attack achieved, as verified by the runner (never as claimed by the attack)."""

    attack: str
    threat: ThreatModel
    x: np.ndarray
    """Clean inputs."""
    y: np.ndarray
    """True labels."""
    x_adv: np.ndarray
    """Adversarial inputs, inside the threat model; the clean input where the attack failed."""
    success: np.ndarray
    """Verified with a fresh query: the prediction at `x_adv` meets the goal."""
    predictions: np.ndarray
    """Labels at `x_adv`."""
    confidence: np.ndarray
    """Probability of the predicted label at `x_adv`."""
    clean_predictions: np.ndarray
    clean_confidence: np.ndarray
    norms: np.ndarray
    """Perturbation norm of each `x_adv` under the threat model's norm (0 where it failed)."""
    queries: int
    """Samples the attack asked the target about (gradient passes included)."""
    elapsed_s: float
    y_target: np.ndarray | None = None
    interrupted: bool = False
    """The run stopped early (Ctrl-C or query budget); results are what it had found."""
    n_projected: int = 0
    """Samples the runner had to move back into the threat model: a sign of a sloppy attack."""
    params: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    """Extra outputs of the attack (a universal patch), as recorded in its state."""

    @property
    def targeted(self) -> bool:
        """Whether this was a targeted attack."""
        return self.y_target is not None

    @property
    def success_rate(self) -> float:
        """Fraction of samples where the attack's goal was met, in [0, 1]."""
        return float(self.success.mean()) if len(self.success) else 0.0

    @property
    def clean_accuracy(self) -> float:
        """Fraction of clean inputs classified correctly."""
        return float((self.clean_predictions == self.y).mean())

    @property
    def robust_accuracy(self) -> float:
        """Fraction of samples still classified correctly at `x_adv`."""
        return float((self.predictions == self.y).mean())

    @property
    def median_norm(self) -> float:
        """Median perturbation norm over the samples the attack fooled (and that were correct)."""
        fooled = self.success & (self.clean_predictions == self.y)
        return float(np.median(self.norms[fooled])) if fooled.any() else float("nan")

    def minimal_norms(self) -> np.ndarray:
        """Per sample: norm needed to fool it (0 if already wrong, inf if the attack failed)."""
        norms = np.where(self.success, self.norms, np.inf)
        return np.where(self.clean_predictions != self.y, 0.0, norms)

    def robust_accuracy_at(self, eps: float) -> float:
        """Robust accuracy if the budget were `eps`: for minimum-norm results, one run gives all.

        A perturbation counts as within `eps` up to the float32 slack the runner allows.
        """
        return float((self.minimal_norms() > self.threat.limit(eps)).mean())


RawAttack = Callable[..., None]
"""The search itself, ``raw(state, target, **params)``; records its finds in `state`."""


@dataclass(frozen=True)
class AttackSpec:
    """What the registry knows about an attack."""

    name: str
    title: str
    white_box: bool
    norms: tuple[Norm, ...]
    minimum_norm: bool = False
    """Finds the smallest perturbation (C&W, DeepFool, HopSkipJump) rather than one within eps."""
    targeted: bool = True
    """Supports ``y_target``."""
    needs_eps: bool = True
    clean_pass: bool = False
    """The raw attack's first pass is a gradient pass at the clean inputs, and it gives the
    runner the clean predictions from it (`_torch.clean_pass`) instead of the runner asking the
    target separately: one forward pass less (white-box targets only)."""


def check_eps(eps: float | None, norm: Norm, target: Target, *, required: bool) -> float | None:
    """`eps` validated: finite, >= 0, and not beyond the largest meaningful perturbation."""
    if eps is None:
        if required:
            raise InputError("this attack needs eps (the perturbation budget in input units)")
        return None
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise InputError(f"eps must be a number, got {eps!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"eps must be a finite number >= 0, got {eps}")
    width = target.input_range[1] - target.input_range[0]
    size = math.prod(target.input_shape)
    if norm == "linf":
        largest = width
    elif norm == "l2":
        largest = width * math.sqrt(size)
    elif norm == "l1":
        largest = width * size
    else:
        largest = float(size)
    if value > largest * (1 + 1e-9):
        raise InputError(
            f"eps={value:g} under {norm} exceeds the largest possible perturbation ({largest:.4g}) "
            f"of inputs in range {target.input_range}; eps is in input units"
        )
    if norm == "l0" and value != int(value):
        raise InputError(f"eps under l0 counts input values and must be whole, got {value}")
    return value


def run_attack(
    raw: RawAttack,
    spec: AttackSpec,
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float | None,
    norm: Norm,
    y_target: np.ndarray | None = None,
    constraints: FeatureConstraints | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    params: Mapping[str, Any] | None = None,
) -> AttackResult:
    """Validate, run `raw`, then project and re-verify its results; see the module docstring."""
    params = dict(params or {})
    if spec.white_box and not target.white_box:
        raise InputError(
            f"{spec.name} needs gradients; {target.name} is a black-box target. Use a black-box "
            "attack (square, hopskipjump, pixel) or give a PyTorch model"
        )
    if norm not in spec.norms:
        raise InputError(f"{spec.name} supports norms {', '.join(spec.norms)}; got {norm!r}")
    if y_target is not None and not spec.targeted:
        raise InputError(f"{spec.name} has no targeted mode")
    # mirrored only for torch models: the layout decides which kernels torch runs
    channels_last = target.white_box and is_channels_last(x)
    x = validate_batch(target, x)
    y = validate_labels(y, len(x), target.n_classes)
    if y_target is not None:
        y_target = validate_labels(y_target, len(x), target.n_classes, what="target labels")
        if np.any(y_target == y):
            raise InputError("target labels must differ from the true labels")
    eps = check_eps(eps, norm, target, required=spec.needs_eps and not spec.minimum_norm)
    if constraints is not None:
        constraints.validate(x)
    threat = ThreatModel(norm, eps, target.input_range, constraints)
    started = time.perf_counter()
    # one session for the clean pass, the attack and the verification: entering one (eval mode,
    # frozen weights) walks the whole model, which costs more than a small model's forward pass
    with target.session():
        if spec.clean_pass and target.white_box:
            clean_probs = np.zeros((len(x), target.n_classes), dtype=np.float32)
            clean_predictions = np.full(len(x), -1, dtype=np.int64)
        else:
            with target.unmetered():
                clean_probs = target.predict_proba(in_layout(x, channels_last))
            clean_predictions = clean_probs.argmax(axis=1)
        state = AttackState(
            x=x,
            y=y,
            y_target=y_target,
            threat=threat,
            clean_predictions=clean_predictions,
            seed=int(seed),
            progress=progress,
            clean_probs=clean_probs,
            channels_last=channels_last,
        )
        queries_before = target.queries
        interrupted = False
        try:
            raw(state, target, **params)
        except (QueryBudgetExceeded, KeyboardInterrupt):
            interrupted = True
        queries = target.queries - queries_before
        missing = np.flatnonzero(~state.clean_known)
        if len(missing):  # an attack that takes them from its own pass was stopped before it did
            with target.unmetered():
                probs = target.predict_proba(in_layout(x[missing], channels_last))
                state.note_clean(missing, probs)
        return verify(spec.name, state, target, clean_probs, queries, started, interrupted, params)


def verify(
    name: str,
    state: AttackState,
    target: Target,
    clean_probs: np.ndarray,
    queries: int,
    started: float,
    interrupted: bool,
    params: Mapping[str, Any],
) -> AttackResult:
    """Project the attack's finds onto the threat model and ask the target again."""
    threat, x = state.threat, state.x
    x_adv = threat.project(state.best, x)
    moved = perturbation_norms(x_adv - state.best, "linf") > PROJECTION_TOLERANCE * (
        threat.input_range[1] - threat.input_range[0]
    )
    with target.unmetered():
        probs = target.predict_proba(in_layout(x_adv, state.channels_last))
    predictions = probs.argmax(axis=1)
    success = state.is_adversarial(predictions)
    # a sample the attack did not fool goes back to its clean input: no half-way points
    x_adv[~success] = x[~success]
    predictions = np.where(success, predictions, state.clean_predictions)
    clean_confidence = clean_probs.max(axis=1)
    confidence = np.where(success, probs.max(axis=1), clean_confidence)
    norms = np.where(success, perturbation_norms(x_adv - x, threat.norm), 0.0)
    return AttackResult(
        attack=name,
        threat=threat,
        x=x,
        y=state.y,
        x_adv=x_adv,
        success=success,
        predictions=predictions,
        confidence=confidence,
        clean_predictions=state.clean_predictions,
        clean_confidence=clean_confidence,
        norms=norms,
        queries=queries,
        elapsed_s=time.perf_counter() - started,
        y_target=state.y_target,
        interrupted=interrupted,
        n_projected=int(moved.sum()),
        params=params,
        artifacts=dict(state.artifacts),
    )


_ATTACKS: dict[str, tuple[AttackSpec, Callable[..., AttackResult]]] = {}


def register_attack(
    spec: AttackSpec,
) -> Callable[[Callable[..., AttackResult]], Callable[..., AttackResult]]:
    """Register a public attack function under ``spec.name``."""

    def decorate(fn: Callable[..., AttackResult]) -> Callable[..., AttackResult]:
        _ATTACKS[spec.name] = (spec, fn)
        return fn

    return decorate


def registered_attacks() -> dict[str, tuple[AttackSpec, Callable[..., AttackResult]]]:
    """Name -> (spec, public function) of every attack in loaded modules."""
    return dict(_ATTACKS)
