"""Advisories from the OSV API: ``POST {base}/v1/querybatch``, then ``GET {base}/v1/vulns/{id}``.

Pinned packages are asked about their exact version (the API matches them); packages known
only by a range are asked about all their advisories, which are then matched locally. Each
request has a deadline and a response size cap; redirects to another host are refused; a
timeout, an HTTP error or an unreachable host becomes an error entry saying the results are
incomplete and naming the offline fix. The standard library's ``urllib`` is imported only when
the API is actually queried.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from mlwarden import __version__
from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.osv import ECOSYSTEM, Advisory, MalformedAdvisory, parse_advisory
from mlwarden.scan.deps.sources import OFFLINE_FIX, PackageQuery, SourceResult

if TYPE_CHECKING:
    import urllib.request

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""A response larger than this is refused (the largest real batch answers are a few MiB)."""
BATCH_SIZE = 1000
"""Queries per ``querybatch`` request (the API's own maximum)."""
MAX_PAGES = 20
"""Follow-up pages fetched for one package whose advisories do not fit one answer."""
DETAIL_WORKERS = 8
"""Advisory details fetched at once."""
MAX_LISTED_FAILURES = 5
"""Advisory ids named in the error about details that could not be fetched."""
_READ_CHUNK_BYTES = 64 * 1024

ProgressFn = Callable[[str, int, int], None]


class OsvApiError(Exception):
    """A request to the OSV API failed; the message says how."""


def query_online(
    base_url: str,
    queries: Sequence[PackageQuery],
    *,
    timeout_s: float,
    progress: ProgressFn | None = None,
) -> SourceResult:
    """Ask the OSV API at `base_url` about `queries`; failures are errors in the result."""
    client = _Client(base_url.rstrip("/"), timeout_s)
    result = SourceResult(source=f"OSV API {client.base}")
    try:
        ids_per_query = _batch(client, queries)
    except OsvApiError as exc:
        result.errors.append(_incomplete(client.base, f"query failed: {exc}"))
        return result
    wanted = sorted({i for ids in ids_per_query for i in ids})
    advisories = _details(client, wanted, result, progress)
    names = {q.name for q in queries}
    for query, ids in zip(queries, ids_per_query, strict=True):
        for advisory_id in ids:
            advisory = advisories.get(advisory_id)
            if advisory is None:
                continue
            result.add(advisory, names)
            if query.version is not None:
                result.confirmed.add((query.name, query.version, advisory_id))
    result.advisories_read = len(advisories)
    return result


def _incomplete(base: str, what: str) -> ErrorEntry:
    return ErrorEntry(
        path=base,
        message=f"OSV API {what}; the dependency audit is incomplete. Retry, or {OFFLINE_FIX}",
    )


def _batch(client: _Client, queries: Sequence[PackageQuery]) -> list[list[str]]:
    """The advisory ids the API lists for each query, all pages followed."""
    ids: list[list[str]] = [[] for _ in queries]
    pending: list[tuple[int, str | None]] = [(i, None) for i in range(len(queries))]
    for _ in range(MAX_PAGES + 1):
        if not pending:
            return ids
        follow_up: list[tuple[int, str | None]] = []
        for start in range(0, len(pending), BATCH_SIZE):
            chunk = pending[start : start + BATCH_SIZE]
            body = {"queries": [_query_body(queries[i], token) for i, token in chunk]}
            answer = client.post("/v1/querybatch", body)
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list) or len(results) != len(chunk):
                raise OsvApiError("querybatch answered without one result per query")
            for (index, _), item in zip(chunk, results, strict=True):
                vulns = item.get("vulns", []) if isinstance(item, dict) else None
                if not isinstance(vulns, list):
                    raise OsvApiError("querybatch answered a result without a list of vulns")
                ids[index] += [str(v["id"]) for v in vulns if isinstance(v, dict) and "id" in v]
                token = item.get("next_page_token")
                if token:
                    follow_up.append((index, str(token)))
        pending = follow_up
    raise OsvApiError(f"more than {MAX_PAGES} pages of advisories for one package")


def _query_body(query: PackageQuery, page_token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"package": {"name": query.name, "ecosystem": ECOSYSTEM}}
    if query.version is not None:
        body["version"] = query.version
    if page_token is not None:
        body["page_token"] = page_token
    return body


def _details(
    client: _Client, ids: list[str], result: SourceResult, progress: ProgressFn | None
) -> dict[str, Advisory]:
    found: dict[str, Advisory] = {}
    failures: list[str] = []
    if progress:
        progress("fetching advisories", 0, len(ids))
    with ThreadPoolExecutor(max_workers=DETAIL_WORKERS) as pool:
        answers = pool.map(lambda i: _detail(client, i), ids)
        for done, (advisory_id, outcome) in enumerate(zip(ids, answers, strict=True), start=1):
            if isinstance(outcome, Advisory):
                found[advisory_id] = outcome
            elif outcome is not None:
                failures.append(f"{advisory_id} ({outcome})")
            if progress:
                progress("fetching advisories", done, len(ids))
    if failures:
        listed = ", ".join(failures[:MAX_LISTED_FAILURES])
        more = f" and {len(failures) - MAX_LISTED_FAILURES} more" if len(failures) > 5 else ""
        result.errors.append(
            _incomplete(client.base, f"could not give {len(failures)} advisories: {listed}{more}")
        )
    return found


def _detail(client: _Client, advisory_id: str) -> Advisory | str | None:
    """The advisory, None when it concerns no PyPI package, or the reason it failed."""
    try:
        data = client.get(f"/v1/vulns/{quote(advisory_id, safe='')}")
        return parse_advisory(data)
    except (OsvApiError, MalformedAdvisory) as exc:
        return str(exc)


@dataclass
class _Client:
    base: str
    timeout_s: float

    def __post_init__(self) -> None:
        import urllib.request

        parts = urlsplit(self.base)
        self._origin = (parts.scheme, parts.hostname, parts.port)
        proxies = urllib.request.ProxyHandler({} if _is_loopback(parts.hostname) else None)
        self._opener = urllib.request.build_opener(proxies, _same_origin_redirects(self._origin))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        import urllib.request

        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json", **self._headers()},
            method="POST",
        )
        return self._send(request)

    def get(self, path: str) -> Any:
        import urllib.request

        return self._send(urllib.request.Request(self.base + path, headers=self._headers()))

    def _headers(self) -> dict[str, str]:
        return {
            "User-Agent": f"mlwarden/{__version__} (dependency audit)",
            "Accept": "application/json",
        }

    def _send(self, request: urllib.request.Request) -> Any:
        import urllib.error

        deadline = time.monotonic() + self.timeout_s
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                data = _read_capped(response, deadline)
        except urllib.error.HTTPError as exc:
            raise OsvApiError(f"HTTP {exc.code} {exc.reason} from {request.full_url}") from None
        except urllib.error.URLError as exc:
            raise OsvApiError(f"{self.base} unreachable ({exc.reason})") from None
        except TimeoutError:
            raise OsvApiError(f"no answer from {self.base} within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise OsvApiError(f"connection to {self.base} failed ({exc})") from None
        try:
            return json.loads(data)
        except ValueError:
            raise OsvApiError(f"{request.full_url} answered something that is not JSON") from None


def _read_capped(response: Any, deadline: float) -> bytes:
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
        raise OsvApiError(f"answer of {int(length)} bytes is larger than the size limit")
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = response.read(_READ_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > MAX_RESPONSE_BYTES:
            raise OsvApiError(f"answer larger than {MAX_RESPONSE_BYTES // 2**20} MiB; refused")
        chunks.append(chunk)


def _same_origin_redirects(origin: tuple[str, str | None, int | None]) -> Any:
    import urllib.request

    class SameOriginRedirects(urllib.request.HTTPRedirectHandler):
        """Follows a redirect only to the same scheme, host and port."""

        def redirect_request(
            self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
        ) -> Any:
            parts = urlsplit(newurl)
            if (parts.scheme, parts.hostname, parts.port) != origin:
                raise OsvApiError(f"redirected to another host ({parts.hostname}); refused")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return SameOriginRedirects()


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
