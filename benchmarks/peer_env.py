"""The separate environment a benchmark runs its peers in, shared by the evasion and privacy runs.

One venv per benchmark under ``.venv-bench/<name>``: torch pinned to the project's CPU build,
mlwarden from this checkout in editable mode, then each peer. mlwarden and torch must install; a
peer that does not is recorded in a stamp file and the benchmark runs without it. The script
then re-runs itself with that venv's Python (`PeerEnv.enter`). Not for: the scan benchmark,
which gives every scanner a venv of its own. Nothing here is imported by the package.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"
"""The CPU build on this machine's disk; any other version pulls a multi-GB CUDA build."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def last_line(text: str) -> str:
    """The last non-empty line of `text`, at most 200 characters (for one table cell)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Peers' warnings and prints go nowhere near stdout, which carries the tables."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        yield


@dataclass(frozen=True)
class Peer:
    name: str
    module: str
    """Imported before any timing, so that no tool's first call pays for its imports."""
    distribution: str
    requirements: tuple[str, ...]
    no_deps: bool = False
    """Install the requirements without their dependencies (torchattacks pins torch and an old
    requests: its own dependency list would replace the CPU torch with a CUDA build)."""
    extra: tuple[str, ...] = ()
    """What a no-deps install still imports, installed normally (checked against its imports)."""


@dataclass(frozen=True)
class PeerEnv:
    """`.venv-bench/<name>` holding torch, ``mlwarden[<extras>]`` and `peers`."""

    name: str
    extras: str
    """mlwarden's extras, comma-separated (``sklearn`` or ``sklearn,dp``)."""
    peers: tuple[Peer, ...]

    @property
    def venv(self) -> Path:
        return REPO / ".venv-bench" / self.name

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def stamp(self) -> Path:
        """What was installed and which peers failed to, so a rerun skips the install."""
        return self.venv / ".installed.json"

    def enter(self, script: str, env: Mapping[str, str] | None = None) -> None:
        """Re-run `script` with this environment's Python (installing it first if needed) and
        `env` added to the process environment; nothing happens when both already hold."""
        extra = dict(env or {})
        settled = all(os.environ.get(key) == value for key, value in extra.items())
        if Path(sys.prefix).resolve() == self.venv.resolve() and settled:
            return
        self.ensure()
        os.execve(
            str(self.python), [str(self.python), script, *sys.argv[1:]], {**os.environ, **extra}
        )

    def ensure(self) -> None:
        """Create the venv and install into it, unless the stamp says it is already done."""
        plan = self._plan()
        if self.python.exists() and self.stamp.exists():
            with contextlib.suppress(ValueError):
                if json.loads(self.stamp.read_text()).get("plan") == plan:
                    return
        names = ", ".join(p.name for p in self.peers)
        log(f"installing torch, mlwarden[{self.extras}] and {names} into {self.venv} ...")
        made = subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(self.venv)],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise SystemExit(f"cannot create {self.venv}: {last_line(made.stderr)}")
        self._pip(["--upgrade", "pip"])
        problems: dict[str, str] = {}
        with tempfile.TemporaryDirectory() as scratch:
            # every install is held to the pinned torch, so no peer can swap it for a CUDA build
            pins = Path(scratch) / "constraints.txt"
            pins.write_text(f"{TORCH_PIN}\n")
            core = self._pip(["-c", str(pins), TORCH_PIN, "-e", f"{REPO}[{self.extras}]"])
            if core.returncode != 0:
                raise SystemExit(f"cannot install torch and mlwarden: {last_line(core.stderr)}")
            for peer in self.peers:
                log(f"  {peer.name}: {' '.join(peer.requirements)}")
                done = self._pip(["-c", str(pins), *peer.extra]) if peer.extra else None
                if done is None or done.returncode == 0:
                    options = ["--no-deps"] if peer.no_deps else ["-c", str(pins)]
                    done = self._pip([*options, *peer.requirements])
                if done.returncode != 0:
                    problems[peer.name] = last_line(done.stderr) or "pip install failed"
                    log(f"  {peer.name} not installed: {problems[peer.name]}")
        self.stamp.write_text(json.dumps({"plan": plan, "problems": problems}, indent=1))

    def status(self) -> dict[str, str]:
        """Peer -> installed version, or ``not available: why`` (imports each peer's module)."""
        problems: dict[str, str] = {}
        if self.stamp.exists():
            with contextlib.suppress(ValueError):
                problems = json.loads(self.stamp.read_text()).get("problems", {})
        status = {}
        for peer in self.peers:
            try:
                with quiet():
                    importlib.import_module(peer.module)
                status[peer.name] = importlib.metadata.version(peer.distribution)
            except Exception as exc:
                why = problems.get(peer.name) or f"{type(exc).__name__}: {exc}"
                status[peer.name] = f"not available: {last_line(why)}"
        return status

    def _plan(self) -> str:
        plan = {
            "torch": TORCH_PIN,
            "mlwarden": f"-e {REPO}[{self.extras}]",
            "peers": [[p.name, list(p.requirements), p.no_deps, list(p.extra)] for p in self.peers],
        }
        return json.dumps(plan, sort_keys=True)

    def _pip(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-m", "pip", "install", "--quiet", *args],
            capture_output=True,
            text=True,
            check=False,
        )
