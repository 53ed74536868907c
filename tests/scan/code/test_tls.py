"""TLS verification turned off, in all the ways Python code does it."""

from __future__ import annotations

import pytest

from mlwarden.findings import Severity
from tests.scan.code._helpers import only

RULE = "code.tls-verify-disabled"


def tls(findings):
    return [f.severity for f in only(findings, RULE)]


@pytest.mark.parametrize(
    ("source", "severity"),
    [
        ("import requests\nrequests.get(url, verify=False)", Severity.HIGH),
        ("session.post(url, json=body, verify=False)", Severity.HIGH),
        ("import httpx\nhttpx.Client(verify=False)", Severity.HIGH),
        ("import aiohttp\naiohttp.TCPConnector(ssl=False)", Severity.HIGH),
        ("async def f(s):\n    await s.get(url, ssl=False)", Severity.HIGH),
        ("s.get(url, verify_ssl=False)", Severity.HIGH),
        ("import urllib3\nurllib3.PoolManager(cert_reqs='CERT_NONE')", Severity.HIGH),
        ("import ssl\nctx = ssl._create_unverified_context()", Severity.HIGH),
        (
            "import ssl\nssl._create_default_https_context = ssl._create_unverified_context",
            Severity.HIGH,
        ),
        ("import ssl\nctx.verify_mode = ssl.CERT_NONE", Severity.HIGH),
        ("from ssl import CERT_NONE", Severity.HIGH),
        ("ctx.check_hostname = False", Severity.MEDIUM),
        ("session.verify = False", Severity.HIGH),
        ("import urllib3\nurllib3.disable_warnings()", Severity.LOW),
        ("import os\nos.environ['PYTHONHTTPSVERIFY'] = '0'", Severity.HIGH),
        ("import os\nos.environ['CURL_CA_BUNDLE'] = ''", Severity.HIGH),
        ("import os\nos.environ.setdefault('REQUESTS_CA_BUNDLE', '')", Severity.HIGH),
        ("import os\nos.environ.update(PYTHONHTTPSVERIFY='0')", Severity.HIGH),
        ("import os\nos.environ.update({'CURL_CA_BUNDLE': ''})", Severity.HIGH),
    ],
)
def test_verification_off_is_found(audit, source, severity):
    findings = only(audit(source), RULE)
    assert [f.severity for f in findings] == [severity]
    assert findings[0].remediation


@pytest.mark.parametrize(
    "source",
    [
        "import requests\nrequests.get(url)",
        "import requests\nrequests.get(url, verify=True)",
        "import requests\nrequests.get(url, verify='/etc/ca.pem')",
        "import ssl\nctx = ssl.create_default_context()",
        "import ssl\nctx.verify_mode = ssl.CERT_REQUIRED",
        "ctx.check_hostname = True",
        "db.connect(ssl=False)",
        "import os\nos.environ['PYTHONHTTPSVERIFY'] = '1'",
        "import os\nos.environ['REQUESTS_CA_BUNDLE'] = '/etc/ca.pem'",
        "cert_none = 'CERT_NONE'",
    ],
)
def test_verification_on_is_clean(audit, source):
    assert tls(audit(source)) == []
