"""A remote prediction endpoint as a black-box target, over HTTP(S) with JSON bodies.

Two protocols: ``json`` posts ``{"instances": [...]}`` and reads ``{"predictions": [...]}`` (the
keys are configurable; TensorFlow Serving and many hand-written services use these), and
``kserve-v2`` speaks the KServe / Triton open inference protocol (``POST
{url}/v2/models/{model_name}/infer``). The endpoint may answer probabilities ``(n, n_classes)``
or labels ``(n,)``; a label-only endpoint makes a decision-only target. Every failure (timeout,
refused connection, HTTP error, invalid JSON, wrong shape, NaN) is a one-line `TargetError`.
Header values (credentials) never appear in messages or ``repr``; redirects are not followed, so
they never reach another host. Only the standard library is used. Not for: serving models
(`mlwarden serve`).
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from mlwarden.errors import InputError, TargetError
from mlwarden.targets.base import Output, Target
from mlwarden.targets.callable import one_hot_labels

Protocol = Literal["json", "kserve-v2"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_HTTP_BATCH_SIZE = 64
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
ERROR_EXCERPT_CHARS = 200

_KSERVE_SCORE_TYPES = {"FP16", "FP32", "FP64"}
_KSERVE_LABEL_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would resend the body and headers somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpTarget(Target):
    """A classifier behind a URL. ``mlwarden.target("http://host/predict", input_shape=(30,))``."""

    def __init__(
        self,
        url: str,
        *,
        input_shape: Sequence[int] | None = None,
        n_classes: int | None = None,
        output: Output | None = None,
        protocol: Protocol = "json",
        model_name: str | None = None,
        input_name: str = "input",
        output_name: str | None = None,
        request_key: str = "instances",
        response_key: str = "predictions",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        input_range: tuple[float, float] = (0.0, 1.0),
        query_budget: int | None = None,
        batch_size: int = DEFAULT_HTTP_BATCH_SIZE,
        name: str | None = None,
    ) -> None:
        """Describe the endpoint.

        Args:
            url: ``http(s)://`` address: the prediction URL for ``json``, the server's base URL
                for ``kserve-v2``. Credentials go in `headers`, never in the URL.
            input_shape: shape of one sample, required.
            n_classes: required for label-only endpoints; found by one probe request otherwise.
            output: ``probabilities`` or ``labels``; found by the probe request when None.
            protocol: ``json`` or ``kserve-v2``.
            model_name: the model's name on a KServe v2 server (required there).
            input_name: name of the KServe v2 input tensor.
            output_name: KServe v2 output to read; the first one when None.
            request_key, response_key: JSON keys of the ``json`` protocol.
            headers: extra HTTP headers, e.g. ``{"Authorization": "Bearer ..."}``; their values
                are never shown.
            timeout_s: seconds to wait for each answer, > 0.
            input_range: valid inputs in input units.
            query_budget: maximum samples sent, None for unlimited.
            batch_size: samples per request.
            name: shown in reports; the URL without its query string by default.

        The probe request (one sample at the middle of `input_range`) is not counted as a query;
        give both `n_classes` and `output` to avoid it.
        """
        if protocol not in ("json", "kserve-v2"):
            raise InputError(f"protocol must be json or kserve-v2, got {protocol!r}")
        if protocol == "kserve-v2" and not model_name:
            raise InputError("the kserve-v2 protocol needs model_name= (the model's name)")
        if input_shape is None:
            raise InputError("an HTTP target needs input_shape= (the shape of one sample)")
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise InputError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
        if output not in (None, "probabilities", "labels"):
            raise InputError(f"output must be probabilities or labels, got {output!r}")
        if output == "labels" and n_classes is None:
            raise InputError("a label-only endpoint needs n_classes=")
        self.url = _checked_url(url)
        self.protocol: Protocol = protocol
        self.endpoint = (
            _kserve_endpoint(self.url, str(model_name)) if protocol == "kserve-v2" else self.url
        )
        self.input_name = input_name
        self.output_name = output_name
        self.request_key = request_key
        self.response_key = response_key
        self.timeout_s = float(timeout_s)
        self._headers = _checked_headers(headers or {})
        self._opener = urllib.request.build_opener(_NoRedirect())
        shape = tuple(int(d) for d in input_shape)
        label = name or _display_url(self.url)
        if output is None or n_classes is None:
            probe = np.full((1, *shape), float(np.mean(input_range)), dtype=np.float32)
            answer, found = self._ask(probe, label)
            if len(answer) != 1:
                raise TargetError(f"{label} answered {len(answer)} rows for 1 input")
            if output is not None and output != found:
                raise InputError(f"output={output!r} but {label} answered {found}")
            output = found
            if n_classes is None:
                if output == "labels":
                    raise InputError(f"{label} answers labels only; pass n_classes=")
                n_classes = int(answer.shape[1])
        super().__init__(
            n_classes=n_classes,
            input_shape=shape,
            input_range=input_range,
            output=output,
            query_budget=query_budget,
            batch_size=batch_size,
            name=label,
        )

    def __repr__(self) -> str:
        return (
            f"HttpTarget({_display_url(self.url)!r}, protocol={self.protocol!r}, "
            f"headers={sorted(self._headers)!r})"
        )

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        answer, kind = self._ask(x, self.name)
        if kind != self.output:
            raise TargetError(
                f"{self.name} answered {kind} but the target expects {self.output}; "
                f"pass output={kind!r}"
            )
        if kind == "labels":
            return one_hot_labels(answer, len(x), self.n_classes, self.name)
        return answer

    def _ask(self, x: np.ndarray, name: str) -> tuple[np.ndarray, Output]:
        """The endpoint's answer for `x` and whether it is probabilities or labels."""
        if self.protocol == "kserve-v2":
            payload: dict[str, Any] = {
                "inputs": [
                    {
                        "name": self.input_name,
                        "shape": list(x.shape),
                        "datatype": "FP32",
                        "data": x.reshape(-1).tolist(),
                    }
                ]
            }
            return self._kserve_answer(self._post(payload, name), name)
        return self._json_answer(self._post({self.request_key: x.tolist()}, name), name)

    def _post(self, payload: dict[str, Any], name: str) -> Any:
        request = urllib.request.Request(
            self.endpoint,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"}
            | self._headers,
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status = int(response.status)
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise TargetError(f"{name} answered HTTP {exc.code}: {_error_body(exc)}") from None
        except urllib.error.URLError as exc:
            raise self._connection_error(exc.reason, name) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._connection_error(exc, name) from None
        if status != 200:
            raise TargetError(f"{name} answered HTTP {status}: {_excerpt(body)}")
        if len(body) > MAX_RESPONSE_BYTES:
            raise TargetError(
                f"{name} answered more than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; "
                "lower batch_size"
            )
        try:
            return json.loads(body)
        except ValueError:
            raise TargetError(f"{name} answered invalid JSON: {_excerpt(body)}") from None

    def _connection_error(self, reason: object, name: str) -> TargetError:
        if isinstance(reason, TimeoutError):
            return TargetError(
                f"endpoint did not answer within {self.timeout_s:g} s ({name}); "
                "check it is up or raise timeout_s"
            )
        if isinstance(reason, ConnectionRefusedError):
            return TargetError(f"connection refused by {name}: is the server running there?")
        detail = str(reason).strip().splitlines()[0] if str(reason).strip() else ""
        return TargetError(f"could not reach {name}: {type(reason).__name__} {detail}".strip())

    def _json_answer(self, body: Any, name: str) -> tuple[np.ndarray, Output]:
        if not isinstance(body, dict) or self.response_key not in body:
            keys = ", ".join(map(str, body)) if isinstance(body, dict) else type(body).__name__
            raise TargetError(
                f"{name} answered without {self.response_key!r} (got {keys}); "
                "set response_key= to the key holding the predictions"
            )
        return _scores_or_labels(body[self.response_key], None, name)

    def _kserve_answer(self, body: Any, name: str) -> tuple[np.ndarray, Output]:
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if (
            not isinstance(outputs, list)
            or not outputs
            or not all(isinstance(o, dict) for o in outputs)
        ):
            raise TargetError(f"{name} answered no KServe v2 'outputs' list")
        if self.output_name is None:
            chosen = outputs[0]
        else:
            matches = [o for o in outputs if o.get("name") == self.output_name]
            if not matches:
                listed = ", ".join(str(o.get("name")) for o in outputs)
                raise TargetError(f"{name} has no output {self.output_name!r}; it gave: {listed}")
            chosen = matches[0]
        datatype = str(chosen.get("datatype", "")).upper()
        if datatype not in _KSERVE_SCORE_TYPES | _KSERVE_LABEL_TYPES:
            raise TargetError(
                f"{name} answered datatype {datatype or 'none'}; expected FP32 scores or INT labels"
            )
        shape = chosen.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise TargetError(f"{name} answered an output without a valid shape: {shape!r}")
        data = _numbers(chosen.get("data"), name)
        if data.size != math.prod(shape):
            raise TargetError(f"{name} answered {data.size} values for shape {shape}")
        kind: Output = "labels" if datatype in _KSERVE_LABEL_TYPES else "probabilities"
        return _scores_or_labels(data.reshape(shape), kind, name)


def _checked_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or not c.isprintable() for c in url)
    ):
        raise InputError(f"expected an http(s)://host/... URL, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise InputError(
            "put credentials in headers= (e.g. Authorization), not in the URL: URLs end up in "
            "reports and logs"
        )
    return url


def _kserve_endpoint(base_url: str, model_name: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    path = f"{parts.path.rstrip('/')}/v2/models/{urllib.parse.quote(model_name, safe='')}/infer"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _display_url(url: str) -> str:
    """`url` without its query and fragment, which sometimes carry API keys."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _checked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    checked = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputError("headers must map header names to string values")
        if any(c in key + value for c in "\r\n\0"):
            # The value is a secret: name the header, never show what it holds.
            raise InputError(f"header {key.strip()!r} contains a line break or NUL; remove it")
        checked[key] = value
    return checked


def _error_body(exc: urllib.error.HTTPError) -> str:
    try:
        return _excerpt(exc.read(4 * ERROR_EXCERPT_CHARS))
    except (OSError, http.client.HTTPException):
        return "(body unreadable)"
    finally:
        exc.close()


def _numbers(data: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise TargetError(f"{name} answered predictions that are not numbers") from None
    return array


def _scores_or_labels(data: Any, kind: Output | None, name: str) -> tuple[np.ndarray, Output]:
    array = data if isinstance(data, np.ndarray) else _numbers(data, name)
    if kind is None:
        kind = "labels" if array.ndim == 1 else "probabilities"
    if kind == "probabilities" and array.ndim != 2:
        raise TargetError(
            f"{name} answered shape {array.shape}; expected (n, n_classes) probabilities"
        )
    return array, kind


def _excerpt(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    if len(text) > ERROR_EXCERPT_CHARS:
        return text[:ERROR_EXCERPT_CHARS] + "..."
    return text or "(empty body)"
