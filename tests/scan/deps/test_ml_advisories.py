"""Which advisories are ML-specific, in which category, and whether they mean code on load."""

from __future__ import annotations

import pytest

from mlwarden.scan.deps.ml_advisories import assess, ml_stack
from mlwarden.scan.deps.osv import Advisory, parse_advisory

from .conftest import advisory_json


def load(advisory_id: str) -> Advisory:
    advisory = parse_advisory(advisory_json(advisory_id))
    assert advisory is not None
    return advisory


@pytest.mark.parametrize(
    ("advisory_id", "package", "category", "on_load"),
    [
        ("GHSA-53q9-r3pm-6pq6", "torch", "unsafe deserialisation", True),
        ("GHSA-48g7-3x6r-xfhp", "keras", "unsafe deserialisation", True),
        ("GHSA-c9rc-mg46-23w3", "keras", "unsafe deserialisation", True),
        ("GHSA-test-trfm-0001", "transformers", "unsafe deserialisation", True),
        ("GHSA-56xg-wfcc-g829", "llama-cpp-python", "template injection", True),
    ],
)
def test_ml_advisories_are_recognised(
    advisory_id: str, package: str, category: str, on_load: bool
) -> None:
    result = assess(load(advisory_id), package)
    assert result is not None
    assert result.category == category
    assert result.code_execution_on_load is on_load
    assert result.stack is not None


def test_generic_web_advisories_are_not_ml_specific() -> None:
    assert assess(load("GHSA-9wx4-h78v-vm56"), "requests") is None
    # Jinja's own sandbox escape mentions Jinja and code execution, but Jinja is not ML
    assert assess(load("GHSA-test-jnja-0001"), "jinja2") is None


def test_ml_surface_in_the_text_makes_any_package_ml_specific() -> None:
    advisory = Advisory(
        "TEST-2",
        (),
        "Model hub helper passes trust_remote_code=True",
        "Remote code execution.",
        (),
        (),
        None,
    )
    result = assess(advisory, "some-hub-helper")
    assert result is not None and result.category == "remote code loading"
    assert result.stack is None and result.code_execution_on_load


def test_ml_package_without_a_matching_pattern_is_still_ml() -> None:
    advisory = Advisory("TEST-3", (), "Denial of service in tensor shape checks", "", (), (), None)
    result = assess(advisory, "tensorflow")
    assert result is not None and result.category == "ML framework"
    assert not result.code_execution_on_load


@pytest.mark.parametrize(
    ("package", "stack"),
    [
        ("torch", "PyTorch"),
        ("huggingface-hub", "Hugging Face"),
        ("langchain-openai", "LangChain"),
        ("llama-index-readers-file", "LlamaIndex"),
        ("flask", None),
    ],
)
def test_ml_stack(package: str, stack: str | None) -> None:
    assert ml_stack(package) == stack
