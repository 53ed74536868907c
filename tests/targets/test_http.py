"""HttpTarget: remote endpoints (JSON and KServe v2) on a loopback server, well- and misbehaving."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest

import mlwarden.targets
from mlwarden.errors import InputError, QueryBudgetExceeded, TargetError
from mlwarden.targets.http import HttpTarget

WEIGHTS = np.random.default_rng(0).normal(size=(4, 3))
SAMPLES = np.random.default_rng(1).uniform(size=(10, 4)).astype(np.float32)
TOKEN = "Bearer s3cret-token"
RELEASE_SLOW = threading.Event()


def probabilities(x: np.ndarray) -> np.ndarray:
    scores = np.asarray(x, dtype=np.float64).reshape(len(x), -1) @ WEIGHTS
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def kserve_outputs(x: np.ndarray, labels_only: bool) -> list[dict[str, Any]]:
    probs = probabilities(x)
    labels = {
        "name": "label",
        "shape": [len(x)],
        "datatype": "INT64",
        "data": probs.argmax(axis=1).tolist(),
    }
    if labels_only:
        return [labels]
    scores = {
        "name": "probabilities",
        "shape": list(probs.shape),
        "datatype": "FP32",
        "data": probs.reshape(-1).tolist(),
    }
    return [scores, labels]


class Handler(BaseHTTPRequestHandler):
    """A tiny numpy softmax model behind many routes, most of them broken on purpose."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def reply(
        self, status: int, body: bytes | str | Any, content_type: str = "application/json"
    ) -> None:
        data = (
            body
            if isinstance(body, bytes)
            else (body if isinstance(body, str) else json.dumps(body)).encode()
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.path = self.path.split("?")[0]
        Handler.requests.append({"path": self.path, "body": payload, "headers": dict(self.headers)})
        if self.path.startswith("/v2/models/"):
            request = payload["inputs"][0]
            x = np.asarray(request["data"], dtype=np.float32).reshape(request["shape"])
            labels_only = self.path == "/v2/models/labeller/infer"
            self.reply(200, {"model_name": "tiny", "outputs": kserve_outputs(x, labels_only)})
            return
        x = np.asarray(payload.get("instances", payload.get("data")), dtype=np.float32)
        probs = probabilities(x)
        routes = {
            "/predict": lambda: (200, {"predictions": probs.tolist()}),
            "/labels": lambda: (200, {"predictions": probs.argmax(axis=1).tolist()}),
            "/custom": lambda: (200, {"scores": probs.tolist()}),
            "/garbage": lambda: (200, "<html>not json at all</html>"),
            "/error": lambda: (500, "Traceback: " + "boom " * 300),
            "/wrong-shape": lambda: (200, {"predictions": probs[:-1].tolist()}),
            "/nan": lambda: (200, {"predictions": np.full_like(probs, np.nan).tolist()}),
            "/strings": lambda: (200, {"predictions": ["cat"] * len(x)}),
            "/no-key": lambda: (200, {"outputs": []}),
        }
        if self.path == "/slow":
            RELEASE_SLOW.wait(timeout=5)
            self.reply(200, {"predictions": probs.tolist()})
        elif self.path == "/auth":
            if self.headers.get("Authorization") == TOKEN:
                self.reply(200, {"predictions": probs.tolist()})
            else:
                self.reply(401, {"error": "unauthorised"})
        elif self.path == "/redirect":
            self.send_response(307)
            self.send_header("Location", "/predict")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            status, body = routes[self.path]()
            self.reply(status, body)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out closes its end: writing then fails, as expected."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        RELEASE_SLOW.set()
        httpd.shutdown()
        httpd.server_close()


def test_json_endpoint_is_probed_and_answers_probabilities(server: str) -> None:
    target = mlwarden.targets.target(f"{server}/predict", input_shape=(4,))
    assert isinstance(target, HttpTarget)
    assert (target.n_classes, target.output) == (3, "probabilities")
    assert target.queries == 0  # the probe is not a query
    np.testing.assert_allclose(target.predict_proba(SAMPLES), probabilities(SAMPLES), rtol=1e-5)


def test_json_request_and_response_keys_are_configurable(server: str) -> None:
    target = HttpTarget(
        f"{server}/custom", input_shape=(4,), request_key="data", response_key="scores"
    )
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES[:3]), probabilities(SAMPLES[:3]), rtol=1e-5
    )


def test_a_labels_only_endpoint_is_a_decision_only_target(server: str) -> None:
    target = HttpTarget(f"{server}/labels", input_shape=(4,), n_classes=3)
    assert target.output == "labels"
    probs = target.predict_proba(SAMPLES)
    np.testing.assert_array_equal(probs.argmax(axis=1), probabilities(SAMPLES).argmax(axis=1))
    assert set(np.unique(probs)) <= {0.0, 1.0}
    with pytest.raises(InputError, match="answers labels only; pass n_classes="):
        HttpTarget(f"{server}/labels", input_shape=(4,))


def test_kserve_v2_endpoint_speaks_the_inference_protocol(server: str) -> None:
    Handler.requests.clear()
    target = HttpTarget(
        server, protocol="kserve-v2", model_name="tiny", input_shape=(2, 2), batch_size=4
    )
    probs = target.predict_proba(SAMPLES.reshape(10, 2, 2))
    np.testing.assert_allclose(probs, probabilities(SAMPLES), rtol=1e-5)
    sent = Handler.requests[-1]
    assert sent["path"] == "/v2/models/tiny/infer"
    (tensor,) = sent["body"]["inputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input", "FP32", [2, 2, 2])
    assert len(tensor["data"]) == 8


def test_kserve_v2_output_is_chosen_by_name(server: str) -> None:
    target = HttpTarget(
        server,
        protocol="kserve-v2",
        model_name="tiny",
        input_shape=(4,),
        output_name="label",
        n_classes=3,
    )
    assert target.output == "labels"
    np.testing.assert_array_equal(target.predict(SAMPLES), probabilities(SAMPLES).argmax(axis=1))
    with pytest.raises(TargetError, match="has no output 'logits'; it gave: probabilities, label"):
        HttpTarget(
            server, protocol="kserve-v2", model_name="tiny", input_shape=(4,), output_name="logits"
        )


def test_kserve_v2_labels_only_model(server: str) -> None:
    target = HttpTarget(
        server, protocol="kserve-v2", model_name="labeller", input_shape=(4,), n_classes=3
    )
    assert target.output == "labels"
    np.testing.assert_array_equal(target.predict(SAMPLES), probabilities(SAMPLES).argmax(axis=1))


def test_kserve_v2_needs_a_model_name(server: str) -> None:
    with pytest.raises(InputError, match="model_name="):
        HttpTarget(server, protocol="kserve-v2", input_shape=(4,))


def test_a_slow_endpoint_times_out(server: str) -> None:
    with pytest.raises(TargetError, match=r"endpoint did not answer within 0\.2 s"):
        HttpTarget(
            f"{server}/slow", input_shape=(4,), n_classes=3, output="probabilities", timeout_s=0.2
        ).predict(SAMPLES)


def test_a_refused_connection_is_a_target_error() -> None:
    with socket.socket() as sock:  # bound, never listening: refused, and no one else's port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(TargetError, match="connection refused"):
            HttpTarget(f"http://127.0.0.1:{port}/predict", input_shape=(4,))


def test_garbage_json_is_a_target_error(server: str) -> None:
    with pytest.raises(TargetError, match="answered invalid JSON: <html>not json at all</html>"):
        HttpTarget(f"{server}/garbage", input_shape=(4,))


def test_http_errors_carry_status_and_a_short_body(server: str) -> None:
    with pytest.raises(TargetError, match="answered HTTP 500: Traceback: boom") as caught:
        HttpTarget(f"{server}/error", input_shape=(4,))
    message = str(caught.value)
    assert len(message) < 400
    assert "\n" not in message
    assert message.endswith("...")


def test_a_wrong_number_of_rows_is_a_target_error(server: str) -> None:
    target = HttpTarget(
        f"{server}/wrong-shape", input_shape=(4,), n_classes=3, output="probabilities"
    )
    with pytest.raises(TargetError, match=r"answered shape \(9, 3\) for 10 inputs"):
        target.predict_proba(SAMPLES)


def test_nan_answers_are_a_target_error(server: str) -> None:
    target = HttpTarget(f"{server}/nan", input_shape=(4,), n_classes=3, output="probabilities")
    with pytest.raises(TargetError, match="NaN"):
        target.predict_proba(SAMPLES)


def test_non_numeric_predictions_are_a_target_error(server: str) -> None:
    with pytest.raises(TargetError, match="not numbers"):
        HttpTarget(f"{server}/strings", input_shape=(4,))


def test_a_missing_response_key_names_the_option(server: str) -> None:
    with pytest.raises(
        TargetError, match="without 'predictions' \\(got outputs\\); set response_key="
    ):
        HttpTarget(f"{server}/no-key", input_shape=(4,))


def test_an_answer_kind_that_changes_is_a_target_error(server: str) -> None:
    target = HttpTarget(f"{server}/labels", input_shape=(4,), n_classes=3, output="probabilities")
    with pytest.raises(TargetError, match="answered labels but the target expects probabilities"):
        target.predict_proba(SAMPLES)


def test_redirects_are_not_followed(server: str) -> None:
    with pytest.raises(TargetError, match="HTTP 307"):
        HttpTarget(f"{server}/redirect", input_shape=(4,))


def test_headers_authenticate_and_their_values_are_never_shown(server: str) -> None:
    target = HttpTarget(f"{server}/auth", input_shape=(4,), headers={"Authorization": TOKEN})
    assert target.predict(SAMPLES[:2]).shape == (2,)
    assert "s3cret" not in repr(target)
    assert "Authorization" in repr(target)
    with pytest.raises(TargetError, match="HTTP 401") as caught:
        HttpTarget(f"{server}/auth", input_shape=(4,), headers={"Authorization": "Bearer wrong"})
    assert "wrong" not in str(caught.value)
    with pytest.raises(InputError, match="'X-Key' contains a line break") as bad:
        HttpTarget(f"{server}/auth", input_shape=(4,), headers={"X-Key": "s3cret\r\nInjected: 1"})
    assert "s3cret" not in str(bad.value)


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(InputError, match="put credentials in headers="):
        HttpTarget("http://user:pw@127.0.0.1:9/predict", input_shape=(4,))


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://host/x", "http://", "http://host/a b"]
)
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(InputError, match="expected an http"):
        HttpTarget(url, input_shape=(4,), n_classes=3, output="probabilities")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"protocol": "grpc"}, "protocol must be"),
        ({"timeout_s": 0}, "timeout_s must be a positive"),
        ({"timeout_s": float("nan")}, "timeout_s must be a positive"),
        ({"output": "scores"}, "output must be"),
        ({"input_shape": None}, "needs input_shape="),
    ],
)
def test_nonsense_options_are_input_errors(options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"input_shape": (4,), "n_classes": 3, "output": "probabilities"}
    with pytest.raises(InputError, match=message):
        HttpTarget("http://127.0.0.1:9/predict", **(arguments | options))


def test_queries_are_counted_per_sample_and_budgeted(server: str) -> None:
    Handler.requests.clear()
    target = HttpTarget(
        f"{server}/predict",
        input_shape=(4,),
        n_classes=3,
        output="probabilities",
        batch_size=4,
        query_budget=12,
    )
    target.predict_proba(SAMPLES)
    assert target.queries == 10
    assert len(Handler.requests) == 3  # batches of 4, 4 and 2
    with pytest.raises(QueryBudgetExceeded):
        target.predict_proba(SAMPLES[:3])
    assert len(Handler.requests) == 3  # nothing sent past the budget


def test_the_query_string_is_kept_out_of_the_name(server: str) -> None:
    target = HttpTarget(f"{server}/predict?api_key=hunter2", input_shape=(4,))
    assert target.name == f"{server}/predict"
    assert "hunter2" not in repr(target)
    assert target.predict(SAMPLES[:2]).shape == (2,)


def test_kserve_v2_base_url_may_end_with_a_slash(server: str) -> None:
    Handler.requests.clear()
    HttpTarget(f"{server}/", protocol="kserve-v2", model_name="tiny", input_shape=(4,))
    assert Handler.requests[-1]["path"] == "/v2/models/tiny/infer"
