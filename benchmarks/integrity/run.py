"""Benchmark signing and verifying a model folder: mlwarden against model-signing and the floor.

Run as ``.venv/bin/python benchmarks/integrity/run.py [--size-gb 2] [--runs 3] [--keep]``. It
writes a folder of two files of random bytes (``--size-gb`` in total) to a temporary folder on
disk, reads it once so it sits in the page cache, and times, best of ``--runs``:

1. the floor: OpenSSL's SHA-256 over the same bytes on all cores at once (``openssl dgst
   -sha256``, one process per file, all started together);
2. model-signing's own command line (``model_signing sign key`` / ``verify key``), and its
   library in-process;
3. mlwarden's command line (``mlwarden sign`` / ``verify``) when it has those commands, its
   library in-process (`mlwarden.integrity.sign` / `verify`), and the library in a fresh
   interpreter (what a command costs, interpreter start-up included);
4. mlwarden's library in-process with other read sizes (``manifest.CHUNK_BYTES``), to show
   whether the constant matters (``--chunk-mib``).

Every signature is checked: each verify must succeed, and model-signing must verify mlwarden's
signature (and the reverse), so a fast wrong answer cannot win. It prints the tables and writes
them to ``benchmarks/integrity/RESULTS.md`` with the machine they ran on. The folder is deleted
at the end unless ``--keep``. Not for: unit testing (see ``tests/integrity/``); nothing here is
imported by the package.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from mlwarden.integrity import generate_key, manifest, sign, verify, write_key_pair  # noqa: E402

RESULTS_FILE = Path(__file__).resolve().parent / "RESULTS.md"
VENV_BIN = REPO / ".venv" / "bin"
FILE_COUNT = 2
WRITE_CHUNK_BYTES = 64 * 1024 * 1024
TARGET_RATIO = 1.2
"""What mlwarden must show: signing and verifying within this factor of the floor."""
COMMAND_TIMEOUT_S = 600
DEFAULT_CHUNKS_MIB = "0.25,1,4,8,16"


@dataclass
class Timing:
    """Best-of-N wall time of one operation, or why it could not be measured."""

    seconds: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def best(self) -> float | None:
        return min(self.seconds) if self.seconds and not self.error else None

    @property
    def spread(self) -> str:
        if not self.seconds or self.error:
            return ""
        return ", ".join(f"{s:.2f}" for s in self.seconds)


@dataclass
class Row:
    """One way of signing and verifying the folder."""

    name: str
    how: str
    sign: Timing
    verify: Timing | None = None


# -- the model ----------------------------------------------------------------------------------


def write_model(folder: Path, total_bytes: int) -> list[Path]:
    """`FILE_COUNT` files of random bytes adding up to `total_bytes`."""
    folder.mkdir(parents=True)
    files = []
    per_file = total_bytes // FILE_COUNT
    for index in range(FILE_COUNT):
        path = folder / f"model-{index + 1:05d}-of-{FILE_COUNT:05d}.safetensors"
        remaining = per_file
        with path.open("wb") as handle:
            while remaining:
                chunk = min(remaining, WRITE_CHUNK_BYTES)
                handle.write(os.urandom(chunk))
                remaining -= chunk
        files.append(path)
    return files


def warm_page_cache(files: Sequence[Path]) -> None:
    for path in files:
        with path.open("rb") as handle:
            while handle.read(WRITE_CHUNK_BYTES):
                pass


# -- timing -------------------------------------------------------------------------------------


def best_of(runs: int, operation: Callable[[], str]) -> Timing:
    """Time `operation` `runs` times; it returns an error message, empty on success."""
    timing = Timing()
    for _ in range(runs):
        started = time.perf_counter()
        error = operation()
        elapsed = time.perf_counter() - started
        if error:
            timing.error = error
            return timing
        timing.seconds.append(elapsed)
    return timing


def run_command(argv: Sequence[str | Path]) -> str:
    """Run a command; its last line of error output when it fails, else empty."""
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        return f"exit {done.returncode}: {lines[-1][:160] if lines else ''}"
    return ""


def run_parallel(argvs: Sequence[Sequence[str | Path]]) -> str:
    """Start every command at once, wait for all; the first failure, else empty."""
    processes = [
        subprocess.Popen(
            [str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for argv in argvs
    ]
    errors = []
    for process in processes:
        _, stderr = process.communicate(timeout=COMMAND_TIMEOUT_S)
        if process.returncode != 0:
            errors.append(f"exit {process.returncode}: {stderr.strip()[-160:]}")
    return errors[0] if errors else ""


def venv_bin(name: str) -> Path:
    """A console script of the project venv (or of the running interpreter's environment)."""
    for folder in (VENV_BIN, Path(sys.executable).parent):
        if (folder / name).exists():
            return folder / name
    return VENV_BIN / name


def python_bin() -> Path:
    candidate = VENV_BIN / "python"
    return candidate if candidate.exists() else Path(sys.executable)


# -- the contestants ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    model: Path
    files: list[Path]
    private_key: Path
    public_key: Path
    scratch: Path


def floor_row(setup: Setup, runs: int) -> Row:
    argvs = [["openssl", "dgst", "-sha256", str(path)] for path in setup.files]
    return Row(
        "floor",
        "`openssl dgst -sha256`, one process per file, all at once",
        best_of(runs, lambda: run_parallel(argvs)),
    )


def model_signing_cli_row(setup: Setup, runs: int) -> Row:
    tool = venv_bin("model_signing")
    signature = setup.scratch / "model-signing-cli.sig"
    sign_argv = [tool, "sign", "key", setup.model, "--signature", signature]
    sign_argv += ["--private_key", setup.private_key]
    verify_argv = [tool, "verify", "key", setup.model, "--signature", signature]
    verify_argv += ["--public_key", setup.public_key]
    return Row(
        "model-signing CLI",
        "`model_signing sign key` / `verify key`",
        best_of(runs, lambda: run_command(sign_argv)),
        best_of(runs, lambda: run_command(verify_argv)),
    )


def model_signing_library_row(setup: Setup, runs: int) -> Row:
    import model_signing

    signature = setup.scratch / "model-signing-lib.sig"

    def do_sign() -> str:
        model_signing.signing.Config().use_elliptic_key_signer(private_key=setup.private_key).sign(
            setup.model, signature
        )
        return ""

    def do_verify() -> str:
        try:
            model_signing.verifying.Config().use_elliptic_key_verifier(
                public_key=setup.public_key
            ).verify(setup.model, signature)
        except ValueError as exc:
            return str(exc)[:160]
        return ""

    return Row(
        "model-signing library",
        "`model_signing.signing.Config().use_elliptic_key_signer(...).sign`, in-process",
        best_of(runs, do_sign),
        best_of(runs, do_verify),
    )


def mlwarden_has_sign_command() -> bool:
    return run_command([venv_bin("mlwarden"), "sign", "--help"]) == ""


def mlwarden_cli_row(setup: Setup, runs: int) -> Row:
    tool = venv_bin("mlwarden")
    signature = setup.scratch / "mlwarden-cli.sig"
    if not mlwarden_has_sign_command():
        missing = Timing(error="not available: this mlwarden has no `sign` command yet")
        return Row("mlwarden CLI", "`mlwarden sign` / `mlwarden verify`", missing, missing)
    sign_argv = [tool, "sign", setup.model, "--key", setup.private_key, "--signature", signature]
    verify_argv = [tool, "verify", setup.model, "--key", setup.public_key]
    verify_argv += ["--signature", signature]
    return Row(
        "mlwarden CLI",
        "`mlwarden sign` / `mlwarden verify`",
        best_of(runs, lambda: run_command(sign_argv)),
        best_of(runs, lambda: run_command(verify_argv)),
    )


def mlwarden_library_row(setup: Setup, runs: int, name: str = "mlwarden library") -> Row:
    signature = setup.scratch / "mlwarden-lib.sig"

    def do_sign() -> str:
        sign(setup.model, private_key=setup.private_key, signature=signature)
        return ""

    def do_verify() -> str:
        result = verify(setup.model, public_key=setup.public_key, signature=signature)
        return "" if result.ok else "; ".join(p.message for p in result.problems)[:160]

    return Row(
        name,
        "`mlwarden.integrity.sign` / `verify`, in-process",
        best_of(runs, do_sign),
        best_of(runs, do_verify),
    )


FRESH_SIGN = (
    "import sys; from mlwarden.integrity import sign; "
    "sign(sys.argv[1], private_key=sys.argv[2], signature=sys.argv[3])"
)
FRESH_VERIFY = (
    "import sys; from mlwarden.integrity import verify; "
    "sys.exit(0 if verify(sys.argv[1], public_key=sys.argv[2], signature=sys.argv[3]).ok else 1)"
)


def mlwarden_fresh_process_row(setup: Setup, runs: int) -> Row:
    signature = setup.scratch / "mlwarden-fresh.sig"
    python = python_bin()
    sign_argv = [python, "-c", FRESH_SIGN, setup.model, setup.private_key, signature]
    verify_argv = [python, "-c", FRESH_VERIFY, setup.model, setup.public_key, signature]
    return Row(
        "mlwarden library, fresh interpreter",
        "`python -c` calling `sign` / `verify`: start-up and imports included, as for a command",
        best_of(runs, lambda: run_command(sign_argv)),
        best_of(runs, lambda: run_command(verify_argv)),
    )


def cross_check(setup: Setup) -> list[str]:
    """Each implementation verifies the other's signature (untimed)."""
    import model_signing

    notes = []
    ours = setup.scratch / "mlwarden-lib.sig"
    theirs = setup.scratch / "model-signing-lib.sig"
    try:
        model_signing.verifying.Config().use_elliptic_key_verifier(
            public_key=setup.public_key
        ).verify(setup.model, ours)
        notes.append("model-signing verifies mlwarden's signature: yes")
    except (ValueError, OSError) as exc:
        notes.append(f"model-signing verifies mlwarden's signature: **no** ({exc})")
    result = verify(setup.model, public_key=setup.public_key, signature=theirs)
    notes.append(
        "mlwarden verifies model-signing's signature: "
        + ("yes" if result.ok else f"**no** ({result.problems[0].message})")
    )
    return notes


def chunk_rows(setup: Setup, runs: int, sizes_mib: Sequence[float]) -> list[Row]:
    """mlwarden in-process with other read sizes; the constant is restored afterwards.

    The sizes take turns (one sign and one verify each, `runs` rounds), so that a burst of load
    from elsewhere on the machine does not land on one size only.
    """
    original = manifest.CHUNK_BYTES
    signature = setup.scratch / "mlwarden-chunks.sig"
    rows = {
        mib: Row(
            f"CHUNK_BYTES = {mib:g} MiB"
            + (" (current)" if int(mib * 1024 * 1024) == original else ""),
            "`mlwarden.integrity.sign` / `verify`, in-process, sizes in turn",
            Timing(),
            Timing(),
        )
        for mib in sizes_mib
    }

    def do_sign() -> str:
        sign(setup.model, private_key=setup.private_key, signature=signature)
        return ""

    def do_verify() -> str:
        result = verify(setup.model, public_key=setup.public_key, signature=signature)
        return "" if result.ok else "; ".join(p.message for p in result.problems)[:160]

    try:
        for _ in range(runs):
            for mib, row in rows.items():
                manifest.CHUNK_BYTES = int(mib * 1024 * 1024)
                for timing, operation in ((row.sign, do_sign), (row.verify, do_verify)):
                    if timing is not None and not timing.error:
                        once = best_of(1, operation)
                        timing.seconds += once.seconds
                        timing.error = once.error
    finally:
        manifest.CHUNK_BYTES = original
    return list(rows.values())


# -- the report ---------------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    openssl = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores, {platform.platform()}; load average at "
        f"the start {load} (the machine is shared).",
        f"- Python {platform.python_version()} (hashlib on {ssl.OPENSSL_VERSION}); "
        f"`openssl` command: {openssl}.",
        f"- mlwarden {_version('mlwarden')}, model-signing {_version('model-signing')}, "
        f"cryptography {_version('cryptography')}.",
    ]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cell(timing: Timing | None, floor: float | None) -> tuple[str, str]:
    if timing is None:
        return "", ""
    if timing.best is None:
        return timing.error or "-", "-"
    ratio = f"{timing.best / floor:.2f}x" if floor else "-"
    return f"{timing.best:.2f}", ratio


def table(rows: Sequence[Row], floor: float | None) -> list[str]:
    lines = [
        "| what | how | sign (s) | sign / floor | verify (s) | verify / floor "
        "| runs (sign; verify) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        sign_s, sign_ratio = _cell(row.sign, floor)
        verify_s, verify_ratio = _cell(row.verify, floor)
        spread = row.sign.spread + ("; " + row.verify.spread if row.verify else "")
        lines.append(
            f"| {row.name} | {row.how} | {sign_s} | {sign_ratio} | {verify_s} | {verify_ratio} "
            f"| {spread} |"
        )
    return lines


def render(
    rows: Sequence[Row],
    chunks: Sequence[Row],
    notes: Sequence[str],
    total_bytes: int,
    runs: int,
    wall_s: float,
) -> str:
    floor = rows[0].sign.best
    lines = [
        "# Integrity benchmark results",
        "",
        f"Generated by `benchmarks/integrity/run.py` on "
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. "
        "See `benchmarks/integrity/README.md` for the method.",
        "",
        *machine(),
        f"- Model: {FILE_COUNT} files of random bytes, {total_bytes / 1e9:.2f} GB in all, in "
        "the page cache. Best of "
        f"{runs} runs; the floor's row has the hashing time in the sign column.",
        "",
        "## Sign and verify",
        "",
        *table(rows, floor),
        "",
        f"Target: mlwarden within {TARGET_RATIO}x of the floor (the floor hashes only: no folder "
        "walk, no manifest, no signature, no interpreter).",
        "",
        *[f"- {note}" for note in notes],
    ]
    if chunks:
        lines += [
            "",
            "## Read size (`mlwarden.integrity.manifest.CHUNK_BYTES`)",
            "",
            "mlwarden's library in-process with each read size.",
            "",
            *table(chunks, floor),
        ]
    lines += ["", f"Total benchmark wall time: {wall_s:.0f} s.", ""]
    return "\n".join(lines)


# -- the run ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="model size (default: 2)")
    parser.add_argument("--runs", type=int, default=3, help="best of this many (default: 3)")
    parser.add_argument(
        "--chunk-mib",
        default=DEFAULT_CHUNKS_MIB,
        help=f"read sizes to compare, MiB, comma-separated; empty to skip "
        f"(default: {DEFAULT_CHUNKS_MIB})",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the model folder goes (default: a new temporary folder; never the repo)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the model folder afterwards")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="the Markdown report")
    args = parser.parse_args(argv)
    if args.size_gb <= 0 or args.runs < 1:
        parser.error("--size-gb must be positive and --runs at least 1")
    try:
        chunk_sizes = [float(x) for x in args.chunk_mib.split(",") if x.strip()]
    except ValueError:
        parser.error("--chunk-mib takes sizes in MiB, e.g. 0.25,1,4,8,16")
    if any(size * 1024 * 1024 < 1 for size in chunk_sizes):
        parser.error("--chunk-mib sizes must be at least one byte")
    if shutil.which("openssl") is None:
        parser.error("the floor needs the `openssl` command on PATH")

    work = Path(tempfile.mkdtemp(prefix="mlwarden-integrity-bench-", dir=args.work_dir))
    if work == REPO or REPO in work.parents:
        parser.error("--work-dir must be outside the repository (the model is gigabytes)")
    started = time.perf_counter()
    try:
        total_bytes = int(args.size_gb * 1e9) // FILE_COUNT * FILE_COUNT
        print(f"writing {total_bytes / 1e9:.2f} GB of random bytes to {work} ...", flush=True)
        files = write_model(work / "model", total_bytes)
        private, public = write_key_pair(generate_key("p256"), work / "signing-key.pem")
        scratch = work / "signatures"
        scratch.mkdir()
        setup = Setup(work / "model", files, private, public, scratch)
        warm_page_cache(files)

        rows = []
        for build in (
            floor_row,
            model_signing_cli_row,
            model_signing_library_row,
            mlwarden_cli_row,
            mlwarden_library_row,
            mlwarden_fresh_process_row,
        ):
            row = build(setup, args.runs)
            print(
                f"{row.name}: sign {row.sign.best or row.sign.error}"
                + (f", verify {row.verify.best or row.verify.error}" if row.verify else ""),
                flush=True,
            )
            rows.append(row)
        notes = cross_check(setup)
        chunks = chunk_rows(setup, args.runs, chunk_sizes)
        for row in chunks:
            print(f"{row.name}: sign {row.sign.best}, verify {row.verify and row.verify.best}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    report = render(rows, chunks, notes, total_bytes, args.runs, time.perf_counter() - started)
    args.output.write_text(report, encoding="utf-8")
    print()
    print(report)
    print(f"written to {args.output}")
    failed = [r.name for r in rows if r.sign.error and not r.sign.error.startswith("not available")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
