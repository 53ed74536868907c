"""Hardcoded secrets: shaped tokens in strings and comments, named credentials; always redacted.

Every credential-shaped value here is assembled at run time (`fake_token`), so this file holds
none itself.
"""

from __future__ import annotations

import string

import pytest

from mlwarden.findings import Severity
from mlwarden.scan.code.rules.hardcoded_secrets import redact
from tests.scan.code._helpers import fake_token, only

RULE = "code.hardcoded-secret"
HF = fake_token("hf_", 34)
OPENAI = fake_token("sk-", 48)
OPENAI_PROJECT = fake_token("sk-proj-", 120, string.ascii_letters + string.digits + "_-")
ANTHROPIC = fake_token("sk-ant-api03-", 90, string.ascii_letters + string.digits + "_-")
AWS_ID = fake_token("AKIA", 16, string.ascii_uppercase + string.digits)
AWS_SECRET = fake_token("", 40, string.ascii_letters + string.digits + "/+")
GENERIC = fake_token("", 24)


def secrets_found(findings):
    return [(f.evidence["kind"], f.severity) for f in only(findings, RULE)]


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        (f"TOKEN = '{HF}'", "Hugging Face token"),
        (f"login(token='{HF}')", "Hugging Face token"),
        (f"client = OpenAI(api_key='{OPENAI}')", "OpenAI API key"),
        (f"key = '{OPENAI_PROJECT}'", "OpenAI API key"),
        (f"key = '{ANTHROPIC}'", "Anthropic API key"),
        (f"boto3.client('s3', aws_access_key_id='{AWS_ID}')", "AWS access key id"),
        (f"headers = {{'Authorization': 'Bearer {HF}'}}", "Hugging Face token"),
        (f"url = f'https://x/?t={HF}&q={{q}}'", "Hugging Face token"),
        (f"data = b'{HF}'", "Hugging Face token"),
        (f'"""Docs.\n\nUse {HF} to log in.\n"""', "Hugging Face token"),
        (f"x = 1  # old token: {HF}", "Hugging Face token"),
        (f"aws_secret_access_key = '{AWS_SECRET}'", "AWS secret access key"),
        (f"session(aws_secret_access_key='{AWS_SECRET}')", "AWS secret access key"),
        (f"config = {{'client_secret': '{AWS_SECRET}'}}", "AWS secret access key"),
        (f"# aws_secret_access_key = {AWS_SECRET}", "AWS secret access key"),
    ],
)
def test_shaped_secrets_are_high(audit, source, kind):
    assert secrets_found(audit(source)) == [(kind, Severity.HIGH)]


@pytest.mark.parametrize(
    "source",
    [
        f"requests.get(url, auth=a, password='{GENERIC}')",
        f"API_KEY = '{GENERIC}'",
        f"settings.hf_token = '{GENERIC}'",
        f"os.environ['OPENAI_API_KEY'] = '{GENERIC}'",
        f"cfg = {{'api_key': '{GENERIC}'}}",
    ],
)
def test_long_literals_under_credential_names_are_medium(audit, source):
    findings = only(audit(source), RULE)
    assert [f.severity for f in findings] == [Severity.MEDIUM]
    assert findings[0].evidence["kind"].startswith("credential (")


@pytest.mark.parametrize(
    "source",
    [
        "TOKEN = 'hf_" + "x" * 34 + "'",
        "TOKEN = 'hf_" + "X" * 34 + "'",
        "login(token='<token>')",
        "login(token='hf_...')",
        "client = OpenAI(api_key='your-api-key-here')",
        "client = OpenAI(api_key='sk-" + "0" * 48 + "')",
        "import os\nlogin(token=os.environ['HF_TOKEN'])",
        "import os\nlogin(token=os.getenv('HF_TOKEN'))",
        "aws_access_key_id = 'AKIAIOSFODNN7EXAMPLE'",
        "aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
        "password = 'short'",
        "password = 'correct horse battery staple'",
        "tokenizer.pad_token = '<|endoftext|>'",
        "bos_token = '[BOS]'",
        "token_path = '/home/user/.cache/huggingface/token'",
        "token = '/run/secrets/hf_token_file'",
        "SECRET_NAME = 'projects/p/secrets/s/versions/1'",
        f"not_a_credential = '{GENERIC}'",
        "# no secret here",
    ],
)
def test_placeholders_and_environment_reads_are_not_flagged(audit, source):
    assert only(audit(source), RULE) == []


def test_evidence_shows_only_first_four_and_last_two_characters(audit):
    findings = only(audit(f"TOKEN = '{HF}'  # {OPENAI}"), RULE)
    assert len(findings) == 2
    for finding in findings:
        text = repr(finding)
        assert HF not in text and OPENAI not in text
        assert HF[4:-2] not in text and OPENAI[4:-2] not in text
    assert findings[0].evidence["secret"] == HF[:4] + "…" + HF[-2:]


def test_redact_hides_short_values_entirely():
    assert redact("abcdefgh") == "********"
    assert redact("abcdefghijk") == "abcd…jk"


def test_secret_is_located_exactly(audit):
    source = f'x = 1\nDOC = """\nline\n   {HF}\n"""\n# ok {HF}\n'
    locations = [(f.location.line, f.location.column) for f in only(audit(source), RULE)]
    assert sorted(locations) == [(4, 4), (6, 6)]


def test_the_same_token_twice_on_a_line_is_reported_per_place(audit):
    findings = only(audit(f"a, b = '{HF}', 'x'  # {HF}"), RULE)
    assert len(findings) == 2
