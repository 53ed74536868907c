"""SARIF 2.1.0 output: valid against the official OASIS schema, shaped for GitHub code scanning."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from report_samples import CALL_CHAIN, critical_pickle_call, info_zip_flags

from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.report import render
from mlwarden.report.model import ErrorEntry, Report
from mlwarden.report.sarif import MAX_RESULTS_PER_RUN, artifact_uri

OFFICIAL_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


@cache
def official_validator() -> jsonschema.Draft4Validator:
    schema = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(schema)


def sarif_of(report: Report) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(render(report, "sarif"))
    return log


def run_of(report: Report) -> dict[str, Any]:
    run: dict[str, Any] = sarif_of(report)["runs"][0]
    return run


def result_for(run: dict[str, Any], rule: str) -> dict[str, Any]:
    result: dict[str, Any] = next(r for r in run["results"] if r["ruleId"] == rule)
    return result


def test_vendored_schema_is_the_official_oasis_one() -> None:
    schema = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
    assert schema["id"] == (
        "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    )
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]


@pytest.mark.parametrize("fixture", ["sample_report", "hostile_report", "empty_report"])
def test_output_validates_against_the_official_sarif_schema(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    report: Report = request.getfixturevalue(fixture)
    errors = [e.message for e in official_validator().iter_errors(sarif_of(report))]
    assert errors == []


def test_log_has_one_run_by_mlwarden(sample_report: Report) -> None:
    log = sarif_of(sample_report)
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "mlwarden"
    assert driver["version"] == sample_report.tool_version
    assert driver["informationUri"].startswith("https://")


def test_one_rule_per_distinct_rule_id_with_github_metadata(sample_report: Report) -> None:
    sample_report.findings.append(dataclasses.replace(critical_pickle_call(), title="Second call"))
    run = run_of(sample_report)
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["hf.auto-map", "pickle.dangerous-call", "zip.odd-flags"]
    pickle_rule = rules[1]
    assert pickle_rule["shortDescription"]["text"]
    assert pickle_rule["fullDescription"]["text"]
    assert pickle_rule["help"]["text"].startswith("Do not load this file")
    assert "markdown" in pickle_rule["help"]
    assert pickle_rule["defaultConfiguration"]["level"] == "error"
    assert {"security", "ML06"} <= set(pickle_rule["properties"]["tags"])
    assert pickle_rule["properties"]["security-severity"] == "9.5"
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


@pytest.mark.parametrize(
    ("severity", "level", "score"),
    [
        (Severity.CRITICAL, "error", "9.5"),
        (Severity.HIGH, "error", "8.0"),
        (Severity.MEDIUM, "warning", "5.5"),
        (Severity.LOW, "note", "3.0"),
        (Severity.INFO, "note", "1.0"),
    ],
)
def test_severity_maps_to_level_and_security_severity(
    severity: Severity, level: str, score: str
) -> None:
    finding = dataclasses.replace(critical_pickle_call(), severity=severity)
    run = run_of(Report(findings=[finding]))
    assert run["results"][0]["level"] == level
    assert run["tool"]["driver"]["rules"][0]["properties"]["security-severity"] == score
    assert float(score) > 0


def test_binary_location_has_no_region_but_names_member_and_offset(sample_report: Report) -> None:
    result = result_for(run_of(sample_report), "pickle.dangerous-call")
    location = result["locations"][0]
    assert location["physicalLocation"] == {"artifactLocation": {"uri": "models/model.pt"}}
    assert location["logicalLocations"] == [
        {
            "name": "archive/data.pkl",
            "fullyQualifiedName": "models/model.pt!archive/data.pkl",
            "kind": "resource",
        }
    ]
    assert location["properties"] == {"member": "archive/data.pkl", "offset": 57}


def test_nested_member_chain_names_the_innermost_member(sample_report: Report) -> None:
    result = result_for(run_of(sample_report), "zip.odd-flags")
    logical = result["locations"][0]["logicalLocations"][0]
    assert logical["name"] == "data.bin"
    assert logical["fullyQualifiedName"] == "models/weights.zip!inner.tar!data.bin"


def test_text_location_has_a_region(sample_report: Report) -> None:
    result = result_for(run_of(sample_report), "hf.auto-map")
    physical = result["locations"][0]["physicalLocation"]
    assert physical["region"] == {"startLine": 12, "startColumn": 5}
    assert "logicalLocations" not in result["locations"][0]


def test_finding_without_location_is_shown_on_the_first_input() -> None:
    finding = dataclasses.replace(critical_pickle_call(), location=None)
    result = run_of(Report(findings=[finding], inputs=["models/"]))["results"][0]
    assert result["locations"] == [{"physicalLocation": {"artifactLocation": {"uri": "models"}}}]
    assert "locations" not in run_of(Report(findings=[finding]))["results"][0]


def test_result_carries_message_fingerprint_and_evidence(sample_report: Report) -> None:
    result = result_for(run_of(sample_report), "pickle.dangerous-call")
    assert result["message"]["text"].startswith("Pickle calls os.system when loaded. REDUCE")
    assert result["properties"]["risk"] == "ML06"
    assert result["properties"]["evidence"]["call"] == CALL_CHAIN
    assert set(result["partialFingerprints"]) == {"mlwardenFindingId/v1"}


def test_fingerprints_are_stable_and_tell_offsets_apart() -> None:
    moved = dataclasses.replace(
        critical_pickle_call(), location=Location("models/model.pt", "archive/data.pkl", 99)
    )
    first = run_of(Report(findings=[critical_pickle_call(), moved]))["results"]
    again = run_of(Report(findings=[moved, critical_pickle_call()]))["results"]
    prints = [r["partialFingerprints"]["mlwardenFindingId/v1"] for r in first]
    assert prints == [r["partialFingerprints"]["mlwardenFindingId/v1"] for r in again]
    assert len(set(prints)) == 2


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("models/model.pt", "models/model.pt"),
        ("./models/model.pt", "models/model.pt"),
        ("models\\sub dir\\a#b.pt", "models/sub%20dir/a%23b.pt"),
        ("models/ünï?.bin", "models/%C3%BCn%C3%AF%3F.bin"),
        ("/abs/dir/x.pt", "file:///abs/dir/x.pt"),
        ("C:\\work\\x.pt", "file:///C:/work/x.pt"),
    ],
)
def test_artifact_uris_are_relative_forward_slashed_and_escaped(path: str, uri: str) -> None:
    assert artifact_uri(path) == uri


def test_successful_invocation_without_errors() -> None:
    invocation = run_of(Report(findings=[info_zip_flags()]))["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert "toolExecutionNotifications" not in invocation


def test_errors_become_execution_notifications(sample_report: Report) -> None:
    sample_report.errors.append(ErrorEntry("models/broken.7z", "cannot open: bad 7z header"))
    invocation = run_of(sample_report)["invocations"][0]
    assert invocation["executionSuccessful"] is False
    notes = invocation["toolExecutionNotifications"]
    assert len(notes) == 1
    assert notes[0]["level"] == "error"
    assert notes[0]["message"]["text"] == "models/broken.7z: cannot open: bad 7z header"
    assert invocation["startTimeUtc"] == "2025-01-02T03:04:05Z"


def test_hostile_strings_stay_data(hostile_report: Report) -> None:
    run = run_of(hostile_report)
    rule = run["tool"]["driver"]["rules"][0]
    assert "<script>" not in rule["help"]["markdown"]
    assert "[bold red]" not in rule["help"]["markdown"]
    uri = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert " " not in uri and "<" not in uri and "|" not in uri


def test_at_most_25000_results_keeping_the_worst_and_saying_so() -> None:
    info = info_zip_flags()
    worst = critical_pickle_call()
    findings = [
        Finding(
            Risk.ML06,
            info.check,
            info.rule,
            Severity.INFO,
            info.title,
            location=Location("models/weights.zip", member="m", offset=i),
        )
        for i in range(MAX_RESULTS_PER_RUN)
    ]
    findings += [
        dataclasses.replace(worst, location=Location("models/model.pt", "archive/data.pkl", i))
        for i in range(10)
    ]
    assert len(findings) == 25_010
    run = run_of(Report(findings=findings))
    results = run["results"]
    assert len(results) == MAX_RESULTS_PER_RUN
    assert sum(r["level"] == "error" for r in results) == 10
    assert run["properties"]["truncated"] is True
    assert run["properties"]["totalFindings"] == 25_010
    assert run["properties"]["resultsInRun"] == MAX_RESULTS_PER_RUN
    note = run["invocations"][0]["toolExecutionNotifications"][-1]
    assert note["level"] == "warning"
    assert "25,010 findings" in note["message"]["text"]
    assert "worst 25,000" in note["message"]["text"]


def test_long_evidence_is_clipped() -> None:
    finding = dataclasses.replace(critical_pickle_call(), evidence={"template": "x" * 50_000})
    result = run_of(Report(findings=[finding]))["results"][0]
    assert len(result["properties"]["evidence"]["template"]) <= 2_000


def test_empty_report_has_an_empty_run(empty_report: Report) -> None:
    run = run_of(empty_report)
    assert run["results"] == []
    assert run["tool"]["driver"]["rules"] == []
    assert run["invocations"][0]["executionSuccessful"] is True
    assert run["properties"]["truncated"] is False
