"""Max pooling through torch's channels-last kernel (`mlwarden.targets._pooling`), against torch.

One run, two tables, every pair timed in turns and checked bit for bit:

1. Pooling layers. torch's ``F.max_pool2d`` on an NCHW tensor, against the same call under
   `ChannelsLastPooling` (the copy to channels-last and back included): forward alone, and
   forward plus backward. The shapes are the benchmark CNNs' pooling layers and a few common
   ones (a ResNet stem, AlexNet's first pooling).
2. Model passes. The evasion benchmark's floor unit, a plain gradient pass in raw torch (and a
   plain forward pass), against the same pass through mlwarden's `TorchTarget`, which runs the
   model under the mode. This is how much of mlwarden's lead over the floor on the digits CNNs
   comes from pooling, rather than from the attacks.

    .venv/bin/python benchmarks/evasion/pooling.py [--threads 1] [--out pooling.md]

Times are the fastest of the rounds (calls made in turns, A then B). Ratios below 1 mean
mlwarden's pass is faster. Runs with the same glibc settings as `run.py` (`STEADY_MALLOC`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import FULL, STEADY_MALLOC, _seconds_per_call, build_case

from mlwarden.targets import target
from mlwarden.targets._pooling import ChannelsLastPooling

LAYERS: tuple[tuple[str, tuple[int, int, int, int], int, int, int], ...] = (
    ("digits CNN, 8x8 (200 samples)", (200, 32, 8, 8), 2, 2, 0),
    ("digits CNN, 28x28 (100 samples)", (100, 32, 28, 28), 2, 2, 0),
    ("LeNet-style, 16x14x14", (256, 16, 14, 14), 2, 2, 0),
    ("ResNet stem, CIFAR size", (128, 64, 32, 32), 3, 2, 1),
    ("ResNet stem, ImageNet size", (32, 64, 112, 112), 3, 2, 1),
    ("AlexNet, first pooling", (32, 96, 55, 55), 3, 2, 0),
)
"""(name, NCHW shape, kernel, stride, padding)."""

MODELS = ("digits8", "digits28")


def fastest(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Seconds per call of each of `calls`, the fastest of `rounds` runs made in turns; a run
    repeats its call until it has taken at least 20 ms."""
    repeats: dict[str, int] = {}
    for name, call in calls.items():
        call()  # warm-up: first-call allocations and kernel selection
        started, count = time.perf_counter(), 0
        while time.perf_counter() - started < 0.02:
            call()
            count += 1
        repeats[name] = count
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            best[name] = min(best[name], _seconds_per_call(call, repeats[name]))
    return best


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit (NaN where NaN) and with the same strides."""
    return (
        a.stride() == b.stride()
        and torch.equal(a.isnan(), b.isnan())
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


def pool_forward(x: torch.Tensor, args: tuple[int, int, int], rerouted: bool) -> torch.Tensor:
    """``F.max_pool2d(x, *args)`` without autograd, under `ChannelsLastPooling` or not."""
    with torch.inference_mode():
        if rerouted:
            with ChannelsLastPooling():
                return F.max_pool2d(x, *args)
        return F.max_pool2d(x, *args)


def pool_both(x: torch.Tensor, args: tuple[int, int, int], rerouted: bool) -> torch.Tensor:
    """The gradient of ``F.max_pool2d(x, *args).sum()`` (x requires grad), rerouted or not."""
    if rerouted:
        with ChannelsLastPooling():
            out = F.max_pool2d(x, *args)
    else:
        out = F.max_pool2d(x, *args)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    return grad


def layer_rows(rounds: int) -> list[str]:
    rows = []
    for name, shape, kernel, stride, padding in LAYERS:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        x_grad = x.clone().requires_grad_(True)
        args = (kernel, stride, padding)
        exact = same(pool_forward(x, args, False), pool_forward(x, args, True)) and torch.equal(
            pool_both(x_grad, args, False), pool_both(x_grad, args, True)
        )
        times = fastest(
            {
                "torch": partial(pool_forward, x, args, False),
                "mlwarden": partial(pool_forward, x, args, True),
                "torch fb": partial(pool_both, x_grad, args, False),
                "mlwarden fb": partial(pool_both, x_grad, args, True),
            },
            rounds,
        )
        label = f"{name} | {'x'.join(map(str, shape))}, k{kernel} s{stride} p{padding}"
        rows.append(table_row(label, times, ("", " fb"), exact, digits=3))
    return rows


def table_row(
    label: str, times: dict[str, float], kinds: tuple[str, str], exact: bool, *, digits: int
) -> str:
    """One Markdown row: for each kind, torch's ms, mlwarden's ms and their ratio; logged too."""
    cells = [label]
    for kind in kinds:
        theirs, mine = times[f"torch{kind}"], times[f"mlwarden{kind}"]
        cells += [f"{theirs * 1e3:.{digits}f}", f"{mine * 1e3:.{digits}f}", f"{mine / theirs:.2f}x"]
    row = f"| {' | '.join(cells)} | {'yes' if exact else 'NO'} |"
    print(row, file=sys.stderr)
    return row


Run = Callable[[torch.Tensor], torch.Tensor]


def gradient_pass(run: Run, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The floor's unit: the input gradient of the summed cross-entropy, one pass."""
    x_in = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(run(x_in), y, reduction="sum"), x_in)
    return grad


def forward_pass(run: Run, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return run(x)


def model_rows(rounds: int) -> list[str]:
    rows = []
    for key in MODELS:
        case = build_case(key, FULL)
        model = case.reference
        wrapped = target(model, input_shape=case.shape, n_classes=case.n_classes)
        x, y = (torch.from_numpy(a) for a in (case.x, case.y))
        with wrapped.session():  # entered once, as an attack run does
            exact = torch.equal(
                gradient_pass(model, x, y), gradient_pass(wrapped.logits, x, y)
            ) and torch.equal(forward_pass(model, x), forward_pass(wrapped.logits, x))
            times = fastest(
                {
                    "torch": partial(gradient_pass, model, x, y),
                    "mlwarden": partial(gradient_pass, wrapped.logits, x, y),
                    "torch fwd": partial(forward_pass, model, x),
                    "mlwarden fwd": partial(forward_pass, wrapped.logits, x),
                },
                rounds,
            )
        label = f"{case.spec.title} ({case.n} samples)"
        rows.append(table_row(label, times, ("", " fwd"), exact, digits=2))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, as run.py)"
    )
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per pair")
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        parser.error("--threads and --rounds must be at least 1")
    torch.set_num_threads(args.threads)
    layers = layer_rows(args.rounds)
    models = model_rows(args.rounds)
    text = "\n".join(
        [
            "## Max pooling through the channels-last kernel",
            "",
            f"torch {torch.__version__}, {args.threads} thread(s), Python "
            f"{platform.python_version()}, {os.cpu_count()} CPUs; fastest of {args.rounds} "
            "rounds, in turns. Ratio: mlwarden / torch.",
            "",
            "| pooling layer | shape | torch fwd ms | mlwarden fwd ms | ratio "
            "| torch fwd+bwd ms | mlwarden fwd+bwd ms | ratio | same bits |",
            "|---|---|---|---|---|---|---|---|---|",
            *layers,
            "",
            "| model | raw torch gradient pass ms | through TorchTarget ms | ratio "
            "| raw torch forward ms | through TorchTarget ms | ratio | same bits |",
            "|---|---|---|---|---|---|---|---|",
            *models,
            "",
        ]
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    if any(os.environ.get(name) != value for name, value in STEADY_MALLOC.items()):
        # glibc's settings are read at start-up: run again with them, like run.py
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **STEADY_MALLOC})
    sys.exit(main())
