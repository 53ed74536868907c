"""OSV advisories: parsing, version matching with PEP 440 and severity."""

from __future__ import annotations

from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from mlwarden.findings import Severity
from mlwarden.scan.deps.osv import (
    Affected,
    AffectedRange,
    Event,
    MalformedAdvisory,
    admitted_versions,
    advisory_severity,
    match_version,
    parse_advisory,
)

from .conftest import advisory_json


def affected(*ranges: list[tuple[str, str]], versions: tuple[str, ...] = ()) -> Affected:
    return Affected(
        "pkg",
        tuple(AffectedRange("ECOSYSTEM", tuple(Event(k, v) for k, v in r)) for r in ranges),
        versions,
    )


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "TEST-1",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Pkg_Name"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}
                ],
            }
        ],
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.1", True),
        ("2.5.1", True),
        ("2.6.0rc1", True),  # a pre-release of the fix is before the fix
        ("2.6.0", False),
        ("2.6", False),  # PEP 440: 2.6 == 2.6.0
        ("2.6.0.post1", False),
        ("3.0", False),
    ],
)
def test_introduced_zero_and_fixed(version: str, expected: bool) -> None:
    result = match_version(affected([("introduced", "0"), ("fixed", "2.6.0")]), version)
    assert result.affected is expected
    if expected:
        assert result.fixed == ("2.6.0",)


def test_last_affected_is_inclusive() -> None:
    rng = affected([("introduced", "1.0"), ("last_affected", "1.4")])
    assert match_version(rng, "1.4").affected
    assert not match_version(rng, "1.4.1").affected
    assert not match_version(rng, "0.9").affected
    assert match_version(rng, "1.4").fixed == ()  # no fixed release known


def test_several_intervals_in_one_range_and_several_ranges() -> None:
    rng = affected(
        [("introduced", "1.0"), ("fixed", "1.2"), ("introduced", "2.0"), ("fixed", "2.1.3")],
        [("introduced", "3.0")],
    )
    assert match_version(rng, "1.1").affected and match_version(rng, "1.1").fixed == ("1.2",)
    assert not match_version(rng, "1.5").affected
    assert match_version(rng, "2.1.2").fixed == ("2.1.3",)
    assert not match_version(rng, "2.1.3").affected
    assert match_version(rng, "9.0").affected and match_version(rng, "9.0").fixed == ()


def test_events_in_any_order_are_sorted_by_version() -> None:
    rng = affected([("fixed", "2.0"), ("introduced", "1.0")])
    assert match_version(rng, "1.5").affected and not match_version(rng, "2.0").affected


def test_limit_caps_the_range() -> None:
    rng = affected([("introduced", "1.0"), ("limit", "1.5")])
    assert match_version(rng, "1.4").affected
    assert not match_version(rng, "1.5").affected
    star = affected([("introduced", "1.0"), ("limit", "*")])
    assert match_version(star, "99").affected


def test_explicit_versions_match_even_outside_ranges() -> None:
    listed = affected(versions=("0.5.0", "1.0.0b1"))
    assert match_version(listed, "0.5").affected  # PEP 440 equality
    assert match_version(listed, "1.0.0b1").affected
    assert not match_version(listed, "0.6").affected


def test_local_builds_match_as_their_release() -> None:
    listed = affected(versions=("2.5.1",))
    assert match_version(listed, "2.5.1+cu121").affected
    ranged = affected([("introduced", "0"), ("fixed", "2.6.0")])
    assert match_version(ranged, "2.5.1+cu121").affected
    assert not match_version(ranged, "2.6.0+cpu").affected


def test_non_pep440_versions() -> None:
    rng = affected([("introduced", "0"), ("fixed", "2.0")], versions=("1.0-custom-build",))
    assert match_version(rng, "1.0-custom-build").affected  # only the explicit list decides
    assert not match_version(rng, "banana").affected


def test_unparseable_event_widens_never_narrows() -> None:
    bad_fix = affected([("introduced", "1.0"), ("fixed", "not a version")])
    result = match_version(bad_fix, "5.0")
    assert result.affected and result.notes
    bad_start = affected([("introduced", "abc"), ("fixed", "2.0")])
    assert match_version(bad_start, "0.1").affected


def test_git_ranges_are_not_compared_as_versions() -> None:
    rng = Affected(
        "pkg", (AffectedRange("GIT", (Event("introduced", "0"), Event("fixed", "abcdef"))),), ()
    )
    assert not match_version(rng, "1.0").affected


@pytest.mark.parametrize(
    ("specifier", "admits"),
    [
        (">=2.0", True),
        ("<2.0", True),
        (">=2.6.0", False),
        (">2.5.9", True),  # 2.5.9.1 is between
        ("==2.6.*", False),
        ("==2.5.*", True),
        ("~=2.5", True),
        ("!=2.5.1,>=2.5.1,<2.6", True),  # excludes one affected version, not all
        ("", True),
        (">=3", False),
    ],
)
def test_admitted_versions_of_a_range(specifier: str, admits: bool) -> None:
    rng = affected([("introduced", "0"), ("fixed", "2.6.0")])
    assert bool(admitted_versions(rng, [SpecifierSet(specifier)])) is admits


def test_admitted_versions_prefer_the_advisory_list_newest_first() -> None:
    rng = affected([("introduced", "0"), ("fixed", "2.6.0")], versions=("2.4.0", "2.5.0", "2.5.1"))
    assert admitted_versions(rng, [SpecifierSet(">=2.5")]) == ["2.5.1", "2.5.0"]


def test_admitted_versions_with_alternatives() -> None:
    rng = affected([("introduced", "1.0"), ("fixed", "1.1")])
    specs = [SpecifierSet(">=2"), SpecifierSet(">=1.0,<1.1")]
    assert admitted_versions(rng, specs) == ["1.0"]


def test_parse_keeps_pypi_and_canonicalises_names() -> None:
    advisory = parse_advisory(advisory_json("GHSA-test-jnja-0001"))
    assert advisory is not None and advisory.packages == {"jinja2"}
    assert advisory.aliases == ("CVE-2024-56201",)


def test_parse_skips_other_ecosystems_and_withdrawn() -> None:
    assert parse_advisory(advisory_json("MAL-test-npm-0001")) is None
    assert parse_advisory(advisory_json("GHSA-test-wdrn-0001")) is None


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"affected": []},
        entry(id=""),
        entry(affected="x"),
        entry(affected=["x"]),
        entry(affected=[{"package": {"ecosystem": "PyPI"}}]),
        entry(affected=[{"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": "x"}]),
        entry(affected=[{"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": [{}]}]),
        entry(
            affected=[{"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": [{"events": [1]}]}]
        ),
        entry(aliases="CVE-1"),
        entry(affected=[{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": "1.0"}]),
    ],
)
def test_malformed_entries_raise_a_clear_error(data: Any) -> None:
    with pytest.raises(MalformedAdvisory):
        parse_advisory(data)


def test_severity_prefers_the_database_rating() -> None:
    advisory = parse_advisory(advisory_json("GHSA-9wx4-h78v-vm56"))
    assert advisory is not None
    assessed = advisory_severity(advisory)
    assert assessed.severity is Severity.MEDIUM and assessed.source == "database_specific"
    assert assessed.cvss_score == 5.6


def test_severity_from_cvss_when_no_rating() -> None:
    advisory = parse_advisory(advisory_json("GHSA-test-trfm-0001"))
    assert advisory is not None
    assessed = advisory_severity(advisory)
    assert (assessed.severity, assessed.source, assessed.cvss_score) == (Severity.HIGH, "cvss", 8.8)


def test_severity_defaults_to_medium_for_cvss_v4_only() -> None:
    data = advisory_json("GHSA-53q9-r3pm-6pq6")
    del data["database_specific"]
    advisory = parse_advisory(data)
    assert advisory is not None
    assert advisory_severity(advisory).severity is Severity.MEDIUM
    assert advisory_severity(advisory).source == "default"


def test_moderate_maps_to_medium_and_cvss_on_affected_entries_counts() -> None:
    data = entry(database_specific={"severity": "moderate"})
    assert advisory_severity(parse_advisory(data)).severity is Severity.MEDIUM  # type: ignore[arg-type]
    data = entry()
    data["affected"][0]["severity"] = [
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
    ]
    assert advisory_severity(parse_advisory(data)).severity is Severity.CRITICAL  # type: ignore[arg-type]
