"""Remote code: trust_remote_code=True anywhere, torch.hub importing a repository's hubconf.py."""

from __future__ import annotations

import pytest

from mlwarden.findings import Severity
from tests.scan.code._helpers import only


@pytest.mark.parametrize(
    "source",
    [
        "from transformers import AutoModel as A\nA.from_pretrained('./m', trust_remote_code=True)",
        "import datasets\ndatasets.load_dataset('./d', trust_remote_code=True)",
        "anything(trust_remote_code=True)",
        "kwargs = dict(trust_remote_code=True)",
        "kwargs = {'trust_remote_code': True}\nload(**kwargs)",
    ],
)
def test_trust_remote_code_true_is_high_wherever_it_is_passed(audit, source):
    findings = only(audit(source), "code.trust-remote-code")
    assert [f.severity for f in findings] == [Severity.HIGH]
    assert "revision" in findings[0].remediation


def test_trust_remote_code_is_located_at_the_keyword(audit):
    source = "model = AutoModel.from_pretrained(\n    './m',\n    trust_remote_code=True,\n)\n"
    finding = only(audit(source), "code.trust-remote-code")[0]
    assert (finding.location.line, finding.location.column) == (3, 5)


def test_trust_remote_code_from_a_variable_is_low(audit):
    findings = only(audit("f('./m', trust_remote_code=args.trust)"), "code.trust-remote-code")
    assert [f.severity for f in findings] == [Severity.LOW]


@pytest.mark.parametrize(
    "source",
    [
        "f('./m', trust_remote_code=False)",
        "f('./m')",
        "trust_remote_code = True",
        "{'trust_remote_code': False}",
    ],
)
def test_no_remote_code_is_clean(audit, source):
    assert only(audit(source), "code.trust-remote-code") == []


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.hub.load('pytorch/vision', 'resnet18', pretrained=True)",
        "import torch\ntorch.hub.load('pytorch/vision:v0.10.0', 'resnet18')",
        "from torch import hub\nhub.load(repo, 'm', trust_repo=True)",
        "import torch\ntorch.hub.list('owner/repo')",
    ],
)
def test_torch_hub_from_github_is_high(audit, source):
    findings = only(audit(source), "code.torch-hub-load")
    assert [f.severity for f in findings] == [Severity.HIGH]


def test_torch_hub_from_a_computed_repository_is_medium(audit):
    findings = only(audit("import torch\ntorch.hub.load(repo, name)"), "code.torch-hub-load")
    assert [f.severity for f in findings] == [Severity.MEDIUM]


def test_torch_hub_from_a_local_folder_is_low(audit):
    source = "import torch\ntorch.hub.load('./hub', 'm', source='local')"
    findings = only(audit(source), "code.torch-hub-load")
    assert [f.severity for f in findings] == [Severity.LOW]


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.hub.load_state_dict_from_url(url)",
        "import torch\ntorch.load('m.pt', weights_only=True)",
        "hub.load('a/b', 'm')",
    ],
)
def test_other_torch_calls_are_not_torch_hub(audit, source):
    assert only(audit(source), "code.torch-hub-load") == []
