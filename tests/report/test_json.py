"""The JSON report: its published schema, its content and its stability."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from report_samples import CALL_CHAIN, HOSTILE

from mlwarden.findings import Finding, Risk, Severity
from mlwarden.report import render
from mlwarden.report.model import REPORT_SCHEMA_VERSION, Report, ScannedFile

DOCS = Path(__file__).resolve().parents[2] / "docs" / "report-schema.md"


def load_schema() -> dict[str, Any]:
    text = resources.files("mlwarden.report").joinpath("schema/report.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def strict_loads(text: str) -> dict[str, Any]:
    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    document: dict[str, Any] = json.loads(text, parse_constant=refuse)
    return document


def document_of(report: Report) -> dict[str, Any]:
    return strict_loads(render(report, "json"))


def test_schema_ships_as_package_data_and_is_a_valid_2020_12_schema() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("fixture", ["sample_report", "hostile_report", "empty_report"])
def test_reports_validate_against_the_schema(fixture: str, request: pytest.FixtureRequest) -> None:
    report: Report = request.getfixturevalue(fixture)
    jsonschema.Draft202012Validator(load_schema()).validate(document_of(report))


def test_schema_rejects_a_document_missing_the_file_inventory(sample_report: Report) -> None:
    document = document_of(sample_report)
    del document["files"]
    assert not jsonschema.Draft202012Validator(load_schema()).is_valid(document)


def test_top_level_keys_come_in_the_documented_order(sample_report: Report) -> None:
    assert list(document_of(sample_report)) == load_schema()["required"]


def test_header_names_tool_version_and_schema_version(sample_report: Report) -> None:
    document = document_of(sample_report)
    assert document["schema_version"] == REPORT_SCHEMA_VERSION == "1.0"
    assert document["tool"] == {"name": "mlwarden", "version": sample_report.tool_version}
    assert document["created"] == sample_report.created
    assert document["duration_s"] == 0.25
    assert document["inputs"] == ["models/"]


def test_summary_counts_findings_and_files(sample_report: Report) -> None:
    summary = document_of(sample_report)["summary"]
    assert summary["counts"] == {"critical": 1, "high": 0, "medium": 1, "low": 0, "info": 1}
    assert summary["total"] == 3
    assert summary["max_severity"] == "critical"
    assert summary["files_scanned"] == 4
    assert summary["items_scanned"] == 7
    assert summary["recognised"] == 5
    assert summary["errors"] == 1


def test_verdict_states_the_gate_and_exit_code(sample_report: Report) -> None:
    verdict = document_of(sample_report)["verdict"]
    assert verdict["status"] == "fail"
    assert verdict["fail_on"] == "high"
    assert verdict["exit_code"] == 1
    assert verdict["text"].startswith("FAIL: 1 finding at or above high")


def test_scorecard_has_the_ten_risks_with_official_titles(sample_report: Report) -> None:
    rows = document_of(sample_report)["scorecard"]
    assert [row["risk"] for row in rows] == [r.value for r in Risk]
    ml06 = rows[5]
    assert ml06["title"] == "AI Supply Chain Attacks"
    assert ml06["status"] == "critical"
    assert ml06["checks"] == ["ml06.model_files"]
    assert ml06["counts"]["medium"] == 1
    assert rows[0]["status"] == "not assessed"
    assert rows[0]["reasons"] == ["ml01.evasion: needs target, data"]


def test_findings_are_worst_first_with_full_location_and_evidence(sample_report: Report) -> None:
    findings = document_of(sample_report)["findings"]
    assert [f["severity"] for f in findings] == ["critical", "medium", "info"]
    critical = findings[0]
    assert critical["rule"] == "pickle.dangerous-call"
    assert critical["risk"] == "ML06"
    assert critical["risk_title"] == "AI Supply Chain Attacks"
    assert critical["check"] == "ml06.model_files"
    assert critical["location"] == {
        "path": "models/model.pt",
        "member": "archive/data.pkl",
        "offset": 57,
        "line": None,
        "column": None,
    }
    assert critical["evidence"]["call"] == CALL_CHAIN
    assert critical["remediation"].startswith("Do not load")


def test_finding_ids_are_unique_and_stable_across_runs(sample_report: Report) -> None:
    first = [f["id"] for f in document_of(sample_report)["findings"]]
    fresh = Report(findings=list(sample_report.findings))
    again = [f["id"] for f in document_of(fresh)["findings"]]
    assert first == again
    assert len(set(first)) == len(first)
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in first)


def test_every_scanned_file_and_member_is_listed_with_format_and_severity(
    sample_report: Report,
) -> None:
    files = document_of(sample_report)["files"]
    assert len(files) == len(sample_report.scanned)
    member = next(f for f in files if f["member"] == "archive/data.pkl")
    assert member == {
        "path": "models/model.pt",
        "member": "archive/data.pkl",
        "format": "pickle",
        "size": 700,
        "severity": "critical",
    }
    clean = next(f for f in files if f["path"] == "models/README.md")
    assert clean["severity"] is None
    assert clean["format"] == "unknown"


def test_errors_not_assessed_checks_and_metrics_are_reported(sample_report: Report) -> None:
    document = document_of(sample_report)
    assert document["errors"] == [
        {"path": "models/broken.7z", "member": None, "message": "cannot open: bad 7z header"}
    ]
    assert document["not_assessed"] == [
        {"check": "ml01.evasion", "risks": ["ML01"], "reason": "needs target, data"}
    ]
    assert document["checks_run"] == ["ml06.model_files"]
    assert document["metrics"]["policy"] == "built-in"


def test_non_finite_numbers_become_strings_so_strict_parsers_accept_the_report(
    sample_report: Report,
) -> None:
    sample_report.metrics["auc"] = float("inf")
    document = document_of(sample_report)
    info = next(f for f in document["findings"] if f["severity"] == "info")
    assert info["evidence"]["ratio"] == "NaN"
    assert document["metrics"]["auc"] == "Infinity"


def test_exotic_evidence_values_become_plain_json() -> None:
    finding = Finding(
        Risk.ML06,
        "ml06.model_files",
        "x.y",
        Severity.LOW,
        "t",
        evidence={"raw": b"\x80abc", "names": {"b", "a"}, "pair": (1, 2), "sev": Severity.LOW},
    )
    evidence = document_of(Report(findings=[finding]))["findings"][0]["evidence"]
    assert evidence == {"names": ["a", "b"], "pair": [1, 2], "raw": "\\x80abc", "sev": "low"}


def test_undecodable_file_names_still_give_utf8_output() -> None:
    name = "models/\udc80weird.pt"
    report = Report(scanned=[ScannedFile(name, None, "pickle", 1)])
    text = render(report, "json")
    text.encode("utf-8")
    assert json.loads(text)["files"][0]["path"] == name


def test_hostile_strings_are_kept_verbatim_as_json_strings(hostile_report: Report) -> None:
    document = document_of(hostile_report)
    assert document["findings"][0]["location"]["member"] == f"archive/{HOSTILE}"
    assert document["findings"][0]["evidence"][HOSTILE] == HOSTILE


def test_empty_report(empty_report: Report) -> None:
    document = document_of(empty_report)
    assert document["findings"] == []
    assert document["files"] == []
    assert document["summary"]["max_severity"] is None
    assert document["verdict"]["status"] == "nothing assessed"
    assert document["verdict"]["exit_code"] == 3


def test_output_does_not_depend_on_the_order_findings_were_added(sample_report: Report) -> None:
    shuffled = Report(**{**vars(sample_report)})
    shuffled.findings = list(reversed(sample_report.findings))
    shuffled.scanned = list(reversed(sample_report.scanned))
    assert render(shuffled, "json") == render(sample_report, "json")


def _schema_property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            names.add(key)
            names |= _schema_property_names(value)
        for key in ("$defs", "items"):
            if key in node:
                children = node[key].values() if key == "$defs" else [node[key]]
                for child in children:
                    names |= _schema_property_names(child)
    return names


def test_docs_describe_every_field_of_the_schema() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    missing = sorted(n for n in _schema_property_names(load_schema()) if f"`{n}`" not in docs)
    assert not missing, f"docs/report-schema.md does not describe: {missing}"


def test_docs_example_is_a_valid_report_apart_from_its_shortened_scorecard() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    example = json.loads(docs.split("```json\n", 1)[1].split("\n```", 1)[0])
    schema = load_schema()
    del schema["properties"]["scorecard"]["minItems"]
    jsonschema.Draft202012Validator(schema).validate(example)
    assert example["schema_version"] == REPORT_SCHEMA_VERSION


def test_text_is_indented_with_one_line_per_scanned_file(sample_report: Report) -> None:
    text = render(sample_report, "json")
    document = json.loads(text)
    assert text == render(sample_report, "json")  # same report, same text
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert lines[1] == f'  "schema_version": "{REPORT_SCHEMA_VERSION}",'
    file_lines = [line for line in lines if line.startswith('    {"path": ')]
    assert len(file_lines) == len(document["files"]) > 0
    for line, entry in zip(file_lines, document["files"], strict=True):
        assert json.loads(line.rstrip(",")) == entry
    # Everything else keeps the two-space indentation of json.dumps(indent=2).
    assert '  "verdict": {\n    "' in text


@pytest.mark.parametrize(
    "item",
    [
        {"path": "a.pt", "member": None, "format": "pickle", "size": 0, "severity": None},
        {"path": f"dir/{HOSTILE}", "member": 'x"\\\n\t\u2028é😀', "size": -(2**70)},
        {"path": "models/\udc80weird.pt", "size": True, "severity": "high"},
        {"path": "a", "size": 1.5},
        {"path": "a", "nested": {"b": [1, None]}},
        {},
    ],
)
def test_one_line_entries_are_what_the_json_encoder_writes(item: dict[str, Any]) -> None:
    from mlwarden.report.json import _flat

    expected = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode(item)
    assert (_flat(item) or expected) == expected
