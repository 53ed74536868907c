"""Offline OSV exports: zips, folders and single files; bad exports are errors, never clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlwarden.errors import UsageError
from mlwarden.scan.deps.sources.offline import load_offline

from .conftest import OSV_FOLDER, advisory_json, make_zip

NAMES = {"torch", "keras", "requests", "jinja2", "transformers", "llama-cpp-python"}


def ids(result, name: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {a.id for a in result.by_package.get(name, [])}


def test_zip_export_is_indexed_by_canonical_name(osv_zip: Path) -> None:
    result = load_offline(osv_zip, NAMES)
    assert result.errors == []
    assert ids(result, "torch") == {"GHSA-53q9-r3pm-6pq6", "PYSEC-2025-TEST1"}
    assert ids(result, "keras") == {"GHSA-48g7-3x6r-xfhp", "GHSA-c9rc-mg46-23w3"}
    assert ids(result, "jinja2") == {"GHSA-test-jnja-0001"}  # spelled Jinja2 in the entry
    assert ids(result, "requests") == {"GHSA-9wx4-h78v-vm56"}  # withdrawn one left out
    assert "OSV export" in result.source


def test_only_packages_asked_about_are_parsed(osv_zip: Path) -> None:
    result = load_offline(osv_zip, {"keras"})
    assert set(result.by_package) == {"keras"} and result.advisories_read == 2


def test_folder_export(tmp_path: Path) -> None:
    result = load_offline(OSV_FOLDER, {"torch"})
    assert ids(result, "torch") == {"GHSA-53q9-r3pm-6pq6", "PYSEC-2025-TEST1"}


def test_single_file_export_object_list_or_vulns(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(advisory_json("GHSA-48g7-3x6r-xfhp")), encoding="utf-8")
    assert ids(load_offline(one, {"keras"}), "keras") == {"GHSA-48g7-3x6r-xfhp"}
    many = tmp_path / "many.json"
    many.write_text(
        json.dumps([advisory_json("GHSA-48g7-3x6r-xfhp"), advisory_json("GHSA-c9rc-mg46-23w3")]),
        encoding="utf-8",
    )
    assert len(ids(load_offline(many, {"keras"}), "keras")) == 2
    api = tmp_path / "api.json"
    api.write_text(json.dumps({"vulns": [advisory_json("GHSA-c9rc-mg46-23w3")]}), encoding="utf-8")
    assert ids(load_offline(api, {"keras"}), "keras") == {"GHSA-c9rc-mg46-23w3"}


def test_malformed_entries_are_errors_and_the_rest_is_read(tmp_path: Path) -> None:
    entries = {p.name: p.read_bytes() for p in OSV_FOLDER.glob("*.json")}
    entries["BROKEN-1.json"] = b'{"id": "BROKEN-1", "affected": [{"package": {"name": "torch"'
    entries["BROKEN-2.json"] = json.dumps(
        {
            "id": "BROKEN-2",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "torch"}, "ranges": 5}],
        }
    ).encode()
    result = load_offline(make_zip(tmp_path / "db.zip", entries), {"torch"})
    assert ids(result, "torch") == {"GHSA-53q9-r3pm-6pq6", "PYSEC-2025-TEST1"}
    assert {e.member for e in result.errors} == {"BROKEN-1.json", "BROKEN-2.json"}
    assert all(e.path.endswith("db.zip") for e in result.errors)


def test_corrupt_zip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "PyPI-all.zip"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    result = load_offline(path, {"torch"})
    assert result.by_package == {}
    assert "download the OSV export again" in result.errors[0].message


def test_truncated_zip_is_a_clear_error(tmp_path: Path, osv_zip: Path) -> None:
    data = osv_zip.read_bytes()
    path = tmp_path / "truncated.zip"
    path.write_bytes(data[: len(data) // 2])
    result = load_offline(path, {"torch"})
    assert result.errors and result.by_package == {}


def test_zip_that_is_not_an_osv_export_is_an_error(tmp_path: Path) -> None:
    entries = {f"{i}.json": json.dumps({"name": "torch", "other": i}).encode() for i in range(5)}
    result = load_offline(make_zip(tmp_path / "wrong.zip", entries), {"torch"})
    assert "does not look like an OSV export" in result.errors[0].message


def test_empty_export_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = load_offline(tmp_path / "empty", {"torch"})
    assert "no OSV JSON files" in result.errors[0].message


def test_single_file_that_is_not_json_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "db.bin"
    path.write_bytes(b"\x00\x01binary")
    result = load_offline(path, {"torch"})
    assert "not valid OSV JSON" in result.errors[0].message


def test_missing_database_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--osv-db"):
        load_offline(tmp_path / "nope.zip", {"torch"})
