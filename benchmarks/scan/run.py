"""Benchmark mlwarden's scanner against modelscan, picklescan, fickling and ModelAudit.

Run by ``make bench`` (``.venv/bin/python benchmarks/scan/run.py [--quick] [--tools a,b]``).
It installs the other scanners in a separate environment (``.venv-bench``), builds the corpus
from `mlwarden.demo.corpus` in a temporary folder, and in one run:

1. scans every corpus sample with every tool's CLI and classifies each verdict from the tool's
   exit code and report (recall per technique, false positives on the benign kinds, errors,
   wall time, MB/s);
2. scans a 2 GB PyTorch checkpoint (generated once, cached outside the repository) with each
   tool (skipped with ``--quick``);
3. scans a folder of 1,000 small pickle and PyTorch files with each tool.

It prints the tables and writes them to ``benchmarks/scan/RESULTS.md``. Timing is
`time.perf_counter` around each subprocess, one run, no warm-up except reading the large file
once so that every tool finds it in the page cache. Not for: unit testing (see
``tests/scan/test_corpus.py``); nothing here is imported by the package.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from mlwarden.demo.corpus import Sample, build_corpus  # noqa: E402
from mlwarden.findings import Severity  # noqa: E402

BENCH_VENV = REPO / ".venv-bench"
"""One venv per tool below this folder, so each gets the dependency versions it works with."""
RESULTS_FILE = Path(__file__).resolve().parent / "RESULTS.md"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "mlwarden-bench-cache"
LARGE_CHECKPOINT_BYTES = 2 * 1024**3
SMALL_FILE_COUNT = 1000
SMALL_REPEATS = 5
"""Calls per folder-mode tool on the 1,000 files, interleaved across tools; the fastest counts."""
SECTIONS = ("corpus", "large", "small")
SAMPLE_TIMEOUT_S = 300
LARGE_TIMEOUT_S = 3600
MLWARDEN_TARGET_GBPS = 1.0

# Telemetry off and no hub access for every tool, whatever its defaults.
TOOL_ENV = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

HEAVY_PACKAGE_PREFIXES = ("torch", "tensorflow", "jax", "nvidia-", "triton", "keras")
"""Packages never installed in the bench environment (a CUDA wheel would dwarf the run)."""


class Verdict(str, Enum):
    FLAGGED = "flagged"
    CLEAN = "clean"
    ERROR = "error"
    NOT_SCANNED = "not scanned"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class Invocation:
    returncode: int
    stdout: str
    stderr: str
    report: str
    """The tool's report file (JSON), empty when it wrote none."""


# -- the tools ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    requirements: tuple[str, ...]
    """What to pip-install into the bench environment (empty for mlwarden)."""
    command: Callable[[Path, Path, Severity], list[str]]
    """argv for scanning a path, writing a report file, failing at a severity."""
    classify: Callable[[Invocation], tuple[Verdict, str]]
    scans_folders: bool = True
    executable: str = ""

    @property
    def package(self) -> str:
        return self.requirements[0].split("[")[0] if self.requirements else "mlwarden"


def _bench_bin(name: str) -> str:
    return str(BENCH_VENV / name / "bin" / name)


def _mlwarden_argv() -> list[str]:
    script = Path(sys.executable).with_name("mlwarden")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlwarden"]


def _mlwarden_command(path: Path, report: Path, fail_on: Severity) -> list[str]:
    return [
        *_mlwarden_argv(),
        "scan",
        "--models",  # model files only, like every scanner compared here
        str(path),
        "--format",
        "json",
        "--output",
        str(report),
        "--quiet",
        "--fail-on",
        fail_on.value,
    ]


def _classify_mlwarden(run: Invocation) -> tuple[Verdict, str]:
    try:
        findings = json.loads(run.report).get("findings", []) if run.report else []
    except json.JSONDecodeError:
        findings = []
    worst = max(findings, key=lambda f: Severity(f["severity"]).rank, default=None)
    note = f"{worst['rule']} ({worst['severity']})" if worst else ""
    if run.returncode == 1:
        return Verdict.FLAGGED, note
    if run.returncode == 0:
        return Verdict.CLEAN, note
    if run.returncode == 3:
        return Verdict.NOT_SCANNED, "nothing scannable"
    return Verdict.ERROR, _last_line(run.stderr) or f"exit {run.returncode}"


def _modelscan_command(path: Path, report: Path, _fail_on: Severity) -> list[str]:
    return [_bench_bin("modelscan"), "-p", str(path), "-r", "json", "-o", str(report)]


def _classify_modelscan(run: Invocation) -> tuple[Verdict, str]:
    # Exit codes: 0 clean, 1 issues, 2 error, 3 no supported file; the JSON says more.
    try:
        data = json.loads(run.report) if run.report else {}
    except json.JSONDecodeError:
        data = {}
    issues = data.get("issues", [])
    errors = data.get("errors", [])
    if issues or run.returncode == 1:
        top = issues[0] if issues else {}
        return Verdict.FLAGGED, f"{top.get('severity', '')} {top.get('module', '')}".strip()
    if errors and all(e.get("category") == "DEPENDENCY" for e in errors):
        return Verdict.NOT_SCANNED, errors[0].get("description", "")
    if errors or run.returncode == 2:
        first = errors[0].get("description", "") if errors else _output_tail(run)
        return Verdict.ERROR, first
    scanned = data.get("summary", {}).get("scanned", {}).get("total_scanned", 0)
    if run.returncode == 3 or not scanned:
        return Verdict.NOT_SCANNED, "no supported file"
    return Verdict.CLEAN, ""


def _picklescan_command(path: Path, _report: Path, _fail_on: Severity) -> list[str]:
    return [_bench_bin("picklescan"), "-p", str(path)]


def _summary_count(text: str, label: str) -> int:
    match = re.search(rf"^{label}: (\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _classify_picklescan(run: Invocation) -> tuple[Verdict, str]:
    # Exit codes: 0 clean, 1 infected, 2 scan failed; a failed scan may still have found
    # something before failing, and the summary says so.
    if _summary_count(run.stdout, "Infected files"):
        found = re.search(r"dangerous import '([^']+)'", run.stdout)
        return Verdict.FLAGGED, found.group(1) if found else "infected"
    if run.returncode != 0 or "Traceback (most recent call last)" in run.stderr:
        error = re.search(r"^ERROR: (.*)$", run.stdout, re.MULTILINE)
        return Verdict.ERROR, error.group(1) if error else _output_tail(run)
    if not _summary_count(run.stdout, "Scanned files"):
        return Verdict.NOT_SCANNED, "no file scanned"
    return Verdict.CLEAN, ""


def _fickling_command(path: Path, report: Path, _fail_on: Severity) -> list[str]:
    return [_bench_bin("fickling"), "--check-safety", "--json-output", str(report), str(path)]


def _classify_fickling(run: Invocation) -> tuple[Verdict, str]:
    # Exit codes: 0 likely safe, 1 unsafe, 2 error; an uncaught exception also exits 1, so a
    # traceback means an error whatever the code.
    if "Traceback (most recent call last)" in run.stderr:
        return Verdict.ERROR, _last_line(run.stderr)
    try:
        severity = json.loads(run.report).get("severity", "") if run.report else ""
    except json.JSONDecodeError:
        severity = ""
    if run.returncode == 1:
        return Verdict.FLAGGED, severity
    if run.returncode == 0:
        return Verdict.CLEAN, severity
    failure = re.search(r"Error: (.*)$", run.stdout + "\n" + run.stderr, re.MULTILINE)
    return Verdict.ERROR, failure.group(1) if failure else _output_tail(run)


def _modelaudit_command(path: Path, report: Path, _fail_on: Severity) -> list[str]:
    return [
        _bench_bin("modelaudit"),
        "scan",
        "--no-cache",
        "--format",
        "json",
        "--output",
        str(report),
        str(path),
    ]


def _classify_modelaudit(run: Invocation) -> tuple[Verdict, str]:
    # Exit codes: 0 no issue, 1 issues found, 2 errors; with errors the JSON may still hold
    # warnings or criticals, which is what exit 1 means.
    try:
        data = json.loads(run.report) if run.report else {}
    except json.JSONDecodeError:
        data = {}
    issues = [i for i in data.get("issues", []) if i.get("severity") in ("warning", "critical")]
    issues.sort(key=lambda i: i.get("severity") != "critical")
    if run.returncode == 1 or issues:
        top = issues[0] if issues else {}
        return Verdict.FLAGGED, f"{top.get('severity', '')} {top.get('rule_code', '')}".strip()
    if run.returncode != 0 or data.get("has_errors"):
        return Verdict.ERROR, _modelaudit_error(data, run)
    if not data.get("files_scanned", 1):
        return Verdict.NOT_SCANNED, "no file scanned"
    return Verdict.CLEAN, ""


TOOLS = {
    tool.name: tool
    for tool in (
        Tool("mlwarden", (), _mlwarden_command, _classify_mlwarden),
        # modelscan's Keras scanners need its TensorFlow extra, left out on purpose, and its
        # NumPy scanner calls a NumPy internal removed in 2.3 (see README).
        Tool(
            "modelscan",
            ("modelscan[h5py]", "numpy<2.3"),
            _modelscan_command,
            _classify_modelscan,
        ),
        Tool("picklescan", ("picklescan[7z]", "numpy"), _picklescan_command, _classify_picklescan),
        # fickling imports typing_extensions without declaring it for Python < 3.12.
        Tool(
            "fickling",
            ("fickling[archive]", "typing_extensions"),
            _fickling_command,
            _classify_fickling,
            scans_folders=False,
        ),
        Tool(
            "modelaudit",
            ("modelaudit[h5,onnx,safetensors,sevenzip,joblib]",),
            _modelaudit_command,
            _classify_modelaudit,
        ),
    )
}


def _modelaudit_error(data: dict[str, Any], run: Invocation) -> str:
    messages = [str(issue.get("message", "")) for issue in data.get("issues", [])]
    for message in messages:
        if any(word in message.lower() for word in ("fail", "error", "could not", "unable")):
            return message
    if messages:
        return f"incomplete scan; first note: {messages[0]}"
    logged = re.compile(r"^\d{4}-\d\d-\d\d ")
    lines = [line for line in run.stderr.splitlines() if line.strip() and not logged.match(line)]
    return _last_line("\n".join(lines)) or f"exit {run.returncode}"


def _output_tail(run: Invocation) -> str:
    return _last_line(run.stderr) or _last_line(run.stdout) or f"exit {run.returncode}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


# -- the bench environment -----------------------------------------------------------------------


def ensure_bench_venv(tools: Sequence[Tool]) -> dict[str, str]:
    """Install each tool into its own venv under .venv-bench; tool -> version, or why not."""
    status = {}
    for tool in tools:
        if not tool.requirements:
            continue
        venv = BENCH_VENV / tool.name
        if not Path(_bench_bin(tool.name)).exists():
            print(f"installing {tool.name} into {venv.relative_to(REPO)} ...", flush=True)
            problem = _create_venv(venv) or _install(venv, tool.requirements)
            if problem:
                status[tool.name] = f"not available: {problem}"
                continue
        status[tool.name] = _bench_version(venv, tool.package)
    return status


def _pip(venv: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _create_venv(venv: Path) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        return _last_line(made.stderr) or "python -m venv failed"
    _pip(venv, ["install", "--quiet", "--upgrade", "pip"])
    return ""


def _install(venv: Path, requirements: tuple[str, ...]) -> str:
    """pip-install the requirements, never pulling a framework; '' on success, else why not."""
    with tempfile.TemporaryDirectory() as scratch:
        plan_file = Path(scratch) / "plan.json"
        plan = _pip(
            venv, ["install", "--dry-run", "--quiet", "--report", str(plan_file), *requirements]
        )
        if plan.returncode != 0:
            return _last_line(plan.stderr) or "pip could not resolve it"
        planned = json.loads(plan_file.read_text())["install"]
    pins = [(p["metadata"]["name"], p["metadata"]["version"]) for p in planned]
    heavy = [name for name, _ in pins if name.lower().startswith(HEAVY_PACKAGE_PREFIXES)]
    if not heavy:
        done = _pip(venv, ["install", "--quiet", *requirements])
    else:
        # Install the tool and its light dependencies only; it must work without the framework.
        light = [f"{name}=={version}" for name, version in pins if name not in heavy]
        print(f"  leaving out {', '.join(heavy)}", flush=True)
        done = _pip(venv, ["install", "--quiet", "--no-deps", *light])
    return "" if done.returncode == 0 else (_last_line(done.stderr) or "pip install failed")


def _bench_version(venv: Path, package: str) -> str:
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({package!r}))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() or f"not available: {_last_line(probe.stderr)}"


# -- running a tool ------------------------------------------------------------------------------


def run_tool(tool: Tool, path: Path, fail_on: Severity, scratch: Path, timeout_s: int) -> Outcome:
    report = scratch / f"{tool.name}-report.json"
    report.unlink(missing_ok=True)
    env = {**os.environ, **TOOL_ENV}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            tool.command(path, report, fail_on),
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Outcome(Verdict.TIMEOUT, time.perf_counter() - start, f"over {timeout_s} s")
    seconds = time.perf_counter() - start
    text = report.read_text(errors="replace") if report.exists() else ""
    verdict, note = tool.classify(Invocation(proc.returncode, proc.stdout, proc.stderr, text))
    return Outcome(verdict, seconds, note)


def run_on_folder(tool: Tool, folder: Path, scratch: Path, timeout_s: int) -> Outcome:
    """One call on the folder, or one call per file for tools without a folder mode."""
    if tool.scans_folders:
        return run_tool(tool, folder, Severity.HIGH, scratch, timeout_s)
    total = 0.0
    flagged = errors = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        outcome = run_tool(tool, path, Severity.HIGH, scratch, timeout_s)
        total += outcome.seconds
        flagged += outcome.verdict is Verdict.FLAGGED
        errors += outcome.verdict in (Verdict.ERROR, Verdict.TIMEOUT)
    verdict = Verdict.FLAGGED if flagged else Verdict.ERROR if errors else Verdict.CLEAN
    return Outcome(verdict, total, f"one call per file; {flagged} flagged, {errors} errors")


def best_on_folder(
    tools: Sequence[Tool], folder: Path, scratch: Path, timeout_s: int
) -> dict[str, Outcome]:
    """The fastest of `SMALL_REPEATS` calls per folder-mode tool, taken in turns.

    Taking turns spreads a busy moment of the shared machine over every tool instead of one;
    a tool without a folder mode (1,000 processes per call) runs once.
    """
    best: dict[str, Outcome] = {}
    for round_ in range(SMALL_REPEATS):
        for tool in tools:
            if round_ and not tool.scans_folders:
                continue
            print(
                f"{SMALL_FILE_COUNT} small files: {tool.name} (call {round_ + 1}) ...", flush=True
            )
            outcome = run_on_folder(tool, folder, scratch, timeout_s)
            if tool.name not in best or outcome.seconds < best[tool.name].seconds:
                best[tool.name] = outcome
    return best


def byte_compile_mlwarden() -> None:
    """Compile mlwarden's modules as `pip install` does for every other tool here.

    The project's venv installs mlwarden in editable mode, which compiles nothing, and with
    PYTHONDONTWRITEBYTECODE set each call would otherwise compile its sources again.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "src" / "mlwarden")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


# -- the data ------------------------------------------------------------------------------------


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ensure_large_checkpoint(cache: Path) -> Path:
    """A 2 GiB torch.save state dict of float32 tensors, written once and reused."""
    path = cache / "checkpoint-2GiB.pt"
    if path.exists() and path.stat().st_size >= LARGE_CHECKPOINT_BYTES:
        return path
    import torch

    print("generating the 2 GiB checkpoint (once) ...", flush=True)
    torch.manual_seed(0)
    rows, columns, layers = 8192, 4096, 16
    state = {f"layers.{i}.weight": torch.randn(rows, columns) for i in range(layers)}
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)
    return path


def warm_page_cache(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(64 * 1024 * 1024):
            pass


def ensure_small_files(cache: Path) -> Path:
    """1,000 small legitimate files: torch state dicts, NumPy-holding pickles, plain pickles."""
    folder = cache / f"small-files-{SMALL_FILE_COUNT}"
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    import numpy as np
    import torch

    print(f"generating {SMALL_FILE_COUNT} small files (once) ...", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(0)
    torch.manual_seed(0)
    for index in range(SMALL_FILE_COUNT):
        kind = index % 3
        if kind == 0:
            layer = torch.nn.Linear(rng.randint(4, 32), rng.randint(2, 16))
            torch.save(layer.state_dict(), folder / f"layer_{index:04d}.pt")
        elif kind == 1:
            data = {"weights": np.random.default_rng(index).standard_normal(rng.randint(8, 256))}
            (folder / f"arrays_{index:04d}.pkl").write_bytes(pickle.dumps(data, protocol=4))
        else:
            data = {"step": index, "lr": rng.random(), "tags": ["a", "b"], "shape": (3, 4)}
            protocol = rng.randint(2, 5)
            (folder / f"config_{index:04d}.pkl").write_bytes(pickle.dumps(data, protocol=protocol))
    stamp.write_text("done\n")
    return folder


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Results:
    tools: list[str]
    versions: dict[str, str]
    samples: list[Sample]
    corpus_bytes: int
    per_sample: dict[str, dict[str, Outcome]] = field(default_factory=dict)
    large: dict[str, Outcome] = field(default_factory=dict)
    large_bytes: int = 0
    small: dict[str, Outcome] = field(default_factory=dict)
    small_bytes: int = 0
    wall_s: float = 0.0


def scan_corpus(
    tools: list[Tool], samples: list[Sample], scratch: Path
) -> dict[str, dict[str, Outcome]]:
    results: dict[str, dict[str, Outcome]] = {}
    for number, sample in enumerate(samples, start=1):
        fail_on = sample.min_severity if sample.kind == "malicious" else Severity.HIGH
        results[sample.id] = {}
        for tool in tools:
            if sample.path.is_dir() and not tool.scans_folders:
                results[sample.id][tool.name] = Outcome(Verdict.NOT_SCANNED, 0.0, "no folder mode")
                continue
            results[sample.id][tool.name] = run_tool(
                tool, sample.path, fail_on, scratch, SAMPLE_TIMEOUT_S
            )
        verdicts = " ".join(f"{t.name}={results[sample.id][t.name].verdict.value}" for t in tools)
        print(f"[{number:3d}/{len(samples)}] {sample.kind[:3]} {sample.id}: {verdicts}", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 2 GB checkpoint")
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help=f"comma-separated tools to compare (mlwarden always runs); default: {','.join(TOOLS)}",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help="where the 2 GB checkpoint and the 1,000 files are kept between runs "
        f"(default: {DEFAULT_CACHE}; never inside the repository)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="the Markdown report")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated parts to run: corpus (recall and false positives), large (the "
        "2 GB checkpoint), small (1,000 small files); default: all",
    )
    args = parser.parse_args(argv)
    sections = {n.strip() for n in args.sections.split(",") if n.strip()}
    if not sections or sections - set(SECTIONS):
        parser.error(f"--sections takes any of {', '.join(SECTIONS)}")

    names = ["mlwarden", *[n.strip() for n in args.tools.split(",") if n.strip() != "mlwarden"]]
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s): {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    cache = args.cache_dir.resolve()
    if cache == REPO or REPO in cache.parents:
        parser.error("--cache-dir must be outside the repository (the checkpoint is 2 GB)")
    cache.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    versions = {"mlwarden": _mlwarden_version()}
    versions.update(ensure_bench_venv([TOOLS[n] for n in names]))
    tools = [TOOLS[n] for n in names if not versions[n].startswith("not available")]

    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-") as temp:
        work = Path(temp)
        marker = work / "PAYLOAD_RAN"
        print("building the corpus ...", flush=True)
        samples = build_corpus(work / "corpus", marker)
        results = Results(names, versions, samples, sum(_size(s.path) for s in samples))
        scratch = work / "scratch"
        scratch.mkdir()
        byte_compile_mlwarden()
        if "corpus" in sections:
            results.per_sample = scan_corpus(tools, samples, scratch)

        if not args.quick and "large" in sections:
            checkpoint = ensure_large_checkpoint(cache)
            results.large_bytes = checkpoint.stat().st_size
            warm_page_cache(checkpoint)
            for tool in tools:
                print(f"2 GB checkpoint: {tool.name} ...", flush=True)
                results.large[tool.name] = run_tool(
                    tool, checkpoint, Severity.HIGH, scratch, LARGE_TIMEOUT_S
                )
        if "small" in sections:
            small = ensure_small_files(cache)
            results.small_bytes = _size(small)
            results.small = best_on_folder(tools, small, scratch, LARGE_TIMEOUT_S)
        payload_ran = marker.exists()

    results.wall_s = time.perf_counter() - started
    report = render(results, quick=args.quick)
    if payload_ran:
        report += "\n**A payload ran during the benchmark: a tool executed a sample.**\n"
    args.output.write_text(report, encoding="utf-8")
    print()
    print(report)
    print(f"written to {args.output}")
    return 1 if payload_ran else 0


def _mlwarden_version() -> str:
    from mlwarden import __version__

    return __version__


# -- the report ----------------------------------------------------------------------------------

_MALICIOUS_CELL = {
    Verdict.FLAGGED: "detected",
    Verdict.CLEAN: "**missed**",
    Verdict.ERROR: "error",
    Verdict.NOT_SCANNED: "not scanned",
    Verdict.TIMEOUT: "timeout",
}
_BENIGN_CELL = {
    Verdict.FLAGGED: "**false positive**",
    Verdict.CLEAN: "pass",
    Verdict.ERROR: "error",
    Verdict.NOT_SCANNED: "not scanned",
    Verdict.TIMEOUT: "timeout",
}


def render(results: Results, *, quick: bool) -> str:
    tools = [n for n in results.tools if not results.versions[n].startswith("not available")]
    malicious = [s for s in results.samples if s.kind == "malicious"]
    benign = [s for s in results.samples if s.kind == "benign"]
    lines = [
        "# Scanner benchmark results",
        "",
        f"Generated by `make bench` (`benchmarks/scan/run.py`) on "
        f"{datetime.date.today().isoformat()}: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. One run; each tool is called through its CLI, "
        "one process per sample. See `benchmarks/scan/README.md` for how verdicts are read.",
        "",
        "Versions: "
        + ", ".join(f"{name} {results.versions[name]}" for name in results.tools)
        + ".",
        "",
        f"Corpus: {len(malicious)} malicious techniques and {len(benign)} benign kinds "
        f"({results.corpus_bytes / 1e6:.1f} MB), from `mlwarden.demo.corpus` "
        "(listed in `docs/corpus.md`).",
    ]
    if results.per_sample:
        lines += _summary_section(results, tools, malicious, benign)
    lines += _large_section(results, tools, quick)
    if results.small:
        lines += _small_section(results, tools)
    if results.per_sample:
        lines += _technique_sections(results, tools, malicious, benign)
        lines += _notes_section(results, tools)
    lines += ["", f"Total benchmark wall time: {results.wall_s / 60:.1f} min.", ""]
    return "\n".join(lines)


def _summary_section(
    results: Results, tools: list[str], malicious: list[Sample], benign: list[Sample]
) -> list[str]:
    lines = [
        "",
        "## Summary",
        "",
        "| tool | recall | false positives | errors | not scanned | wall time | MB/s "
        "| time vs mlwarden |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base_time = _corpus_time(results, "mlwarden")
    for name in tools:
        hits = _count(results, malicious, name, Verdict.FLAGGED)
        false_positives = _count(results, benign, name, Verdict.FLAGGED)
        errors = _count(results, results.samples, name, Verdict.ERROR, Verdict.TIMEOUT)
        skipped = _count(results, results.samples, name, Verdict.NOT_SCANNED)
        seconds = _corpus_time(results, name)
        rate = results.corpus_bytes / 1e6 / seconds if seconds else 0.0
        lines.append(
            f"| {name} | {hits}/{len(malicious)} ({100 * hits / max(len(malicious), 1):.0f}%) "
            f"| {false_positives}/{len(benign)} | {errors} | {skipped} | {seconds:.1f} s "
            f"| {rate:.3g} | {_ratio(seconds, base_time)} |"
        )
    for name in results.tools:
        if results.versions[name].startswith("not available"):
            lines.append(f"| {name} | {results.versions[name]} | | | | | | |")
    return lines


def _technique_sections(
    results: Results, tools: list[str], malicious: list[Sample], benign: list[Sample]
) -> list[str]:
    lines = [
        "",
        "## Malicious techniques",
        "",
        "| technique | format | " + " | ".join(tools) + " |",
        "|---|---|" + "---|" * len(tools),
    ]
    for sample in malicious:
        cells = [_cell(results.per_sample[sample.id][t], _MALICIOUS_CELL) for t in tools]
        lines.append(f"| `{sample.id}` | {sample.format} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Benign kinds",
        "",
        "| kind | format | " + " | ".join(tools) + " |",
        "|---|---|" + "---|" * len(tools),
    ]
    for sample in benign:
        cells = [_cell(results.per_sample[sample.id][t], _BENIGN_CELL) for t in tools]
        lines.append(f"| `{sample.id}` | {sample.format} | " + " | ".join(cells) + " |")
    return lines


def _notes_section(results: Results, tools: list[str]) -> list[str]:
    """What each tool said when it could not scan a sample, grouped by message."""
    lines = [
        "",
        "## Errors and files not scanned",
        "",
        "The first line of each tool's own message, and the samples it was given for.",
        "",
    ]
    for name in tools:
        grouped: dict[str, list[str]] = {}
        for sample in results.samples:
            outcome = results.per_sample[sample.id][name]
            if outcome.verdict in (Verdict.ERROR, Verdict.TIMEOUT, Verdict.NOT_SCANNED):
                key = f"{outcome.verdict.value}: {_escape(outcome.note) or 'no message'}"
                grouped.setdefault(key, []).append(sample.id)
        if not grouped:
            lines.append(f"- **{name}**: none.")
            continue
        lines.append(f"- **{name}**:")
        for message, ids in sorted(grouped.items(), key=lambda item: -len(item[1])):
            lines.append(f"  - {message} ({len(ids)}): " + ", ".join(f"`{i}`" for i in ids))
    return lines


def _large_section(results: Results, tools: list[str], quick: bool) -> list[str]:
    lines = ["", "## 2 GB PyTorch checkpoint", ""]
    if quick or not results.large:
        return [*lines, "Skipped (`--quick` or `--sections`)."]
    gigabytes = results.large_bytes / 1e9
    base = results.large["mlwarden"].seconds
    lines += [
        f"A `torch.save` state dict of 16 float32 tensors, {gigabytes:.2f} GB, read once "
        f"beforehand so it is in the page cache. Target for mlwarden: "
        f">= {MLWARDEN_TARGET_GBPS:.0f} GB/s.",
        "",
        "| tool | verdict | wall time | GB/s | time vs mlwarden |",
        "|---|---|---|---|---|",
    ]
    for name in tools:
        outcome = results.large[name]
        rate = gigabytes / outcome.seconds if outcome.seconds else 0.0
        lines.append(
            f"| {name} | {_verdict_text(outcome)} | {outcome.seconds:.2f} s | {rate:.2f} "
            f"| {_ratio(outcome.seconds, base)} |"
        )
    return lines


def _small_section(results: Results, tools: list[str]) -> list[str]:
    base = results.small["mlwarden"].seconds
    lines = [
        "",
        f"## A folder of {SMALL_FILE_COUNT:,} small files",
        "",
        f"{SMALL_FILE_COUNT:,} legitimate files ({results.small_bytes / 1e6:.1f} MB): small "
        "PyTorch state dicts, pickles holding NumPy arrays, plain pickles. One call on the "
        f"folder, the fastest of {SMALL_REPEATS} taken in turns across the tools (fickling has "
        "no folder mode: one call per file, once). Each tool runs as installed by pip, with "
        "its modules byte-compiled; mlwarden uses its default worker count.",
        "",
        "| tool | verdict | wall time | files/s | time vs mlwarden |",
        "|---|---|---|---|---|",
    ]
    for name in tools:
        outcome = results.small[name]
        rate = SMALL_FILE_COUNT / outcome.seconds if outcome.seconds else 0.0
        lines.append(
            f"| {name} | {_verdict_text(outcome)} | {outcome.seconds:.2f} s | {rate:.0f} "
            f"| {_ratio(outcome.seconds, base)} |"
        )
    return lines


def _verdict_text(outcome: Outcome) -> str:
    note = f" ({_escape(outcome.note)})" if outcome.note else ""
    return f"{outcome.verdict.value}{note}"


def _cell(outcome: Outcome, names: dict[Verdict, str]) -> str:
    return names[outcome.verdict]


_TEMP_CORPUS = re.compile(r"\S*/mlwarden-bench-[^/\s]+/corpus/")


def _escape(text: str) -> str:
    text = _TEMP_CORPUS.sub("", text)
    return text.replace("|", "\\|").replace("\n", " ")[:120]


def _count(results: Results, samples: list[Sample], tool: str, *verdicts: Verdict) -> int:
    return sum(results.per_sample[s.id][tool].verdict in verdicts for s in samples)


def _corpus_time(results: Results, tool: str) -> float:
    return sum(outcomes[tool].seconds for outcomes in results.per_sample.values())


def _ratio(seconds: float, base: float) -> str:
    if not base:
        return "-"
    return "1.0x" if seconds == base else f"{seconds / base:.1f}x"


if __name__ == "__main__":
    sys.exit(main())
