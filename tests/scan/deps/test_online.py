"""The OSV API client against a loopback server: answers, failures, and never a silent clean."""

from __future__ import annotations

import socket

import pytest

from mlwarden.scan.deps.sources import PackageQuery
from mlwarden.scan.deps.sources.online import query_online

from .conftest import FakeOsv


def test_happy_path_batches_then_fetches_details(fake_osv: FakeOsv) -> None:
    fake_osv.answers[("torch", "2.5.1")] = ["GHSA-53q9-r3pm-6pq6", "PYSEC-2025-TEST1"]
    fake_osv.answers[("keras", None)] = ["GHSA-48g7-3x6r-xfhp", "GHSA-c9rc-mg46-23w3"]
    queries = [PackageQuery("torch", "2.5.1"), PackageQuery("keras"), PackageQuery("numpy", "2.0")]
    result = query_online(fake_osv.url, queries, timeout_s=5)
    assert result.errors == []
    assert {a.id for a in result.by_package["torch"]} == {"GHSA-53q9-r3pm-6pq6", "PYSEC-2025-TEST1"}
    assert len(result.by_package["keras"]) == 2
    assert ("torch", "2.5.1", "GHSA-53q9-r3pm-6pq6") in result.confirmed
    batch = [r for r in fake_osv.requests if r[0] == "POST"]
    assert batch[0][1] == "/v1/querybatch"
    sent = batch[0][2]["queries"]
    assert {"package": {"name": "keras", "ecosystem": "PyPI"}} in sent
    assert {"package": {"name": "torch", "ecosystem": "PyPI"}, "version": "2.5.1"} in sent
    gets = sorted(r[1] for r in fake_osv.requests if r[0] == "GET")
    assert gets == [
        "/v1/vulns/GHSA-48g7-3x6r-xfhp",
        "/v1/vulns/GHSA-53q9-r3pm-6pq6",
        "/v1/vulns/GHSA-c9rc-mg46-23w3",
        "/v1/vulns/PYSEC-2025-TEST1",
    ]


def test_pages_are_followed(fake_osv: FakeOsv) -> None:
    fake_osv.page_size = 1
    fake_osv.answers[("keras", None)] = ["GHSA-48g7-3x6r-xfhp", "GHSA-c9rc-mg46-23w3"]
    result = query_online(fake_osv.url, [PackageQuery("keras")], timeout_s=5)
    assert len(result.by_package["keras"]) == 2 and result.errors == []


def _assert_incomplete(result) -> None:  # type: ignore[no-untyped-def]
    assert result.by_package == {}
    assert len(result.errors) == 1
    message = result.errors[0].message
    assert "incomplete" in message and "--osv-db FILE" in message


def test_server_error_is_an_incomplete_error(fake_osv: FakeOsv) -> None:
    fake_osv.mode = "500"
    result = query_online(fake_osv.url, [PackageQuery("torch", "2.5.1")], timeout_s=5)
    _assert_incomplete(result)
    assert "HTTP 500" in result.errors[0].message


def test_timeout_is_an_incomplete_error(fake_osv: FakeOsv) -> None:
    """The server holds its answer until teardown: only the client's own timeout can end the
    query, whatever the load on the machine."""
    fake_osv.mode = "slow"
    result = query_online(fake_osv.url, [PackageQuery("torch", "2.5.1")], timeout_s=0.3)
    assert not fake_osv.answered_slow.is_set()  # it gave up; it was not answered
    _assert_incomplete(result)
    assert f"no answer from {fake_osv.url} within 0.3 s" in result.errors[0].message
    assert [r[0] for r in fake_osv.requests] == ["POST"]  # one wait, not one per retry


def test_unreachable_port_is_an_incomplete_error() -> None:
    with socket.socket() as sock:  # bound, never listening: refused, and no one else's port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        result = query_online(url, [PackageQuery("torch", "2.5.1")], timeout_s=2)
    _assert_incomplete(result)
    assert "unreachable" in result.errors[0].message


def test_redirect_to_another_host_is_refused(fake_osv: FakeOsv) -> None:
    fake_osv.mode = "redirect"
    result = query_online(fake_osv.url, [PackageQuery("torch", "2.5.1")], timeout_s=2)
    _assert_incomplete(result)
    assert "another host" in result.errors[0].message


def test_oversized_answer_is_refused(fake_osv: FakeOsv) -> None:
    fake_osv.mode = "huge"
    result = query_online(fake_osv.url, [PackageQuery("torch", "2.5.1")], timeout_s=2)
    _assert_incomplete(result)
    assert "size limit" in result.errors[0].message


def test_answer_that_is_not_json_is_an_error(fake_osv: FakeOsv) -> None:
    fake_osv.mode = "not-json"
    _assert_incomplete(query_online(fake_osv.url, [PackageQuery("torch")], timeout_s=2))


def test_details_that_cannot_be_fetched_are_an_error_naming_them(fake_osv: FakeOsv) -> None:
    fake_osv.answers[("torch", "2.5.1")] = ["GHSA-53q9-r3pm-6pq6", "GHSA-gone-gone-gone"]
    result = query_online(fake_osv.url, [PackageQuery("torch", "2.5.1")], timeout_s=5)
    assert {a.id for a in result.by_package["torch"]} == {"GHSA-53q9-r3pm-6pq6"}
    assert "GHSA-gone-gone-gone" in result.errors[0].message
    assert "incomplete" in result.errors[0].message


@pytest.mark.parametrize("mode", ["detail-404"])
def test_all_details_failing_is_one_error(fake_osv: FakeOsv, mode: str) -> None:
    fake_osv.answers[("keras", None)] = ["GHSA-48g7-3x6r-xfhp", "GHSA-c9rc-mg46-23w3"]
    fake_osv.mode = mode
    result = query_online(fake_osv.url, [PackageQuery("keras")], timeout_s=5)
    assert result.by_package == {} and len(result.errors) == 1
