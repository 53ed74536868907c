"""The scanner against the generated corpus: every technique flagged, every benign file passed.

The corpus (`mlwarden.demo.corpus`) is built once per test session. Each malicious sample must
get a finding at its minimum severity (high, the default gate, unless the technique says
otherwise) from the expected detector; each benign sample must get nothing at high or above. No
payload may ever run while scanning: the marker file never appears. Separately, the pickle-based
payloads are loaded with the real loaders in child processes to prove the corpus measures real
exploits, not strings that merely look dangerous.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import mlwarden
from mlwarden.demo.corpus import Sample, build_corpus, missing_needs, render_markdown, techniques
from mlwarden.findings import Finding, Severity
from mlwarden.report.model import Report

MALICIOUS_IDS = [t.id for t in techniques(("malicious",))]
BENIGN_IDS = [t.id for t in techniques(("benign",))]
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BuiltCorpus:
    root: Path
    marker: Path
    samples: dict[str, Sample]

    def sample(self, technique_id: str) -> Sample:
        if technique_id not in self.samples:
            [technique] = [t for t in techniques() if t.id == technique_id]
            pytest.skip(f"{technique_id} needs {', '.join(missing_needs(technique))}")
        return self.samples[technique_id]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> BuiltCorpus:
    root = tmp_path_factory.mktemp("corpus")
    marker = root / "PAYLOAD_RAN"
    samples = build_corpus(root / "samples", marker)
    assert not marker.exists(), "building the corpus must not run a payload"
    return BuiltCorpus(root / "samples", marker, {s.id: s for s in samples})


def _explain(sample: Sample, report: Report) -> str:
    found = [f"{f.rule} ({f.severity.value}) at {f.location}" for f in report.sorted_findings()]
    errors = [e.message for e in report.errors]
    return (
        f"{sample.id}: {sample.description}\n  file: {sample.path}\n"
        f"  findings: {found or 'none'}\n  errors: {errors or 'none'}"
    )


def _counts_as_detection(finding: Finding, sample: Sample) -> bool:
    if finding.severity < sample.min_severity:
        return False
    return not sample.expected_rules or finding.rule.startswith(sample.expected_rules)


# -- the corpus itself -------------------------------------------------------------------------


def test_corpus_has_at_least_40_malicious_techniques_and_20_benign_kinds() -> None:
    assert len(MALICIOUS_IDS) >= 40
    assert len(BENIGN_IDS) >= 20
    assert len(set(MALICIOUS_IDS + BENIGN_IDS)) == len(MALICIOUS_IDS) + len(BENIGN_IDS)


def test_every_malicious_technique_cites_where_it_comes_from() -> None:
    for technique in techniques(("malicious",)):
        assert technique.reference.strip(), technique.id
        assert technique.min_severity >= Severity.MEDIUM, technique.id


def test_corpus_doc_is_in_sync_with_the_technique_list() -> None:
    doc = REPO_ROOT / "docs" / "corpus.md"
    assert doc.read_text(encoding="utf-8") == render_markdown(), (
        "docs/corpus.md is out of date: run `python -m mlwarden.demo.corpus > docs/corpus.md`"
    )


def test_build_without_frameworks_writes_only_hand_made_samples(tmp_path: Path) -> None:
    samples = build_corpus(tmp_path / "c", tmp_path / "MARKER", with_frameworks=False)
    assert samples
    assert all(not {"torch", "scikit-learn", "numpy"} & set(s.needs) for s in samples)
    assert all(s.path.exists() for s in samples)
    assert not (tmp_path / "MARKER").exists()


def test_build_rejects_unknown_technique_ids(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no-such-technique"):
        build_corpus(tmp_path, tmp_path / "MARKER", only=["pickle/no-such-technique"])


# -- the scanner on the corpus -----------------------------------------------------------------


@pytest.mark.parametrize("technique_id", MALICIOUS_IDS)
@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_malicious_sample_is_flagged(corpus: BuiltCorpus, technique_id: str) -> None:
    sample = corpus.sample(technique_id)
    report = mlwarden.scan(sample.path)
    assert any(_counts_as_detection(f, sample) for f in report.findings), _explain(sample, report)
    assert not corpus.marker.exists()


@pytest.mark.parametrize("technique_id", BENIGN_IDS)
@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_benign_sample_passes_the_default_gate(corpus: BuiltCorpus, technique_id: str) -> None:
    sample = corpus.sample(technique_id)
    report = mlwarden.scan(sample.path)
    assert not report.failing(Severity.HIGH), _explain(sample, report)
    assert not report.errors, _explain(sample, report)
    assert report.recognised_files(), f"{sample.id}: nothing in it was recognised"


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_scanning_the_whole_corpus_never_runs_a_payload(corpus: BuiltCorpus) -> None:
    report = mlwarden.scan(corpus.root, jobs=2)
    flagged_files = {f.location.path for f in report.failing(Severity.HIGH) if f.location}
    assert flagged_files
    assert not corpus.marker.exists()


# -- the payloads are real ---------------------------------------------------------------------

# One child process per loader loads every sample given to it, each in its own try block, and
# prints which ones raised; payloads only ever create their own sample's marker.
_LOADER_SCRIPT = """
import json, sys
kind = sys.argv[1]
def load(path):
    if kind == "pickle":
        import pickle
        with open(path, "rb") as handle:
            pickle.load(handle)
    elif kind == "pickle-stream":
        import pickle
        with open(path, "rb") as handle:
            while handle.peek(1):
                pickle.load(handle)
    elif kind == "torch":
        import torch
        torch.load(path, weights_only=False)
    elif kind == "joblib":
        import joblib
        joblib.load(path)
    elif kind == "numpy":
        import numpy
        numpy.load(path, allow_pickle=True)
    elif kind == "npz":
        import numpy
        with numpy.load(path, allow_pickle=True) as archive:
            for name in archive.files:
                archive[name]
outcome = {}
for path in sys.argv[2:]:
    try:
        load(path)
        outcome[path] = None
    except BaseException as exc:
        outcome[path] = f"{type(exc).__name__}: {exc}"
print("OUTCOME " + json.dumps(outcome))
"""

_LOADER_MODULES = {"torch": "torch", "joblib": "joblib", "numpy": "numpy", "npz": "numpy"}
_ASYNC_PAYLOAD_WAIT_S = 10.0


def _wait_for(markers: list[Path]) -> Iterator[Path]:
    """The markers still missing once the payloads that run in the background had time."""
    deadline = time.monotonic() + _ASYNC_PAYLOAD_WAIT_S
    while time.monotonic() < deadline and not all(m.exists() for m in markers):
        time.sleep(0.05)
    return (m for m in markers if not m.exists())


@pytest.mark.parametrize("loader", ["pickle", "pickle-stream", "torch", "joblib", "numpy", "npz"])
@pytest.mark.slow
def test_corpus_payloads_are_real(tmp_path: Path, loader: str) -> None:
    module = _LOADER_MODULES.get(loader)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    wanted = [t for t in techniques(("malicious",)) if t.real_loader == loader]
    samples: dict[Path, Sample] = {}
    for technique in wanted:
        folder = tmp_path / technique.id.replace("/", "__")
        built = build_corpus(folder, folder / "PAYLOAD_RAN", only=[technique.id])
        for sample in built:
            samples[folder / "PAYLOAD_RAN"] = sample
    assert samples, f"no sample is loaded with {loader}"
    assert not any(marker.exists() for marker in samples), "building must not run a payload"

    paths = [str(s.path) for s in samples.values()]
    run = subprocess.run(
        [sys.executable, "-c", _LOADER_SCRIPT, loader, *paths],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
        check=False,
    )
    outcome_line = [line for line in run.stdout.splitlines() if line.startswith("OUTCOME ")]
    assert outcome_line, f"the loader process failed:\n{run.stderr[-2000:]}"
    outcome = json.loads(outcome_line[-1].removeprefix("OUTCOME "))
    not_applicable = {p for p, error in outcome.items() if error and "ModuleNotFound" in error}

    missing = [
        samples[marker].id
        for marker in _wait_for(list(samples))
        if str(samples[marker].path) not in not_applicable
    ]
    details = "\n".join(
        f"  {samples[m].id}: {outcome[str(samples[m].path)]}"
        for m in samples
        if samples[m].id in missing
    )
    assert not missing, f"payloads that did not run under the real {loader} loader:\n{details}"
