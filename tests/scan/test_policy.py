"""The policy is allowlist first: exact names safe, dangerous ones critical, the rest unknown."""

from __future__ import annotations

import pytest

from mlwarden.errors import PolicyError
from mlwarden.scan.policy import Policy, Verdict


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch._utils", "_rebuild_tensor_v2"),
        ("collections", "OrderedDict"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("sklearn.ensemble._forest", "RandomForestClassifier"),
        ("torch.nn.modules.linear", "Linear"),
        ("sklearn._loss._loss", "__pyx_unpickle_CyHalfBinomialLoss"),
    ],
)
def test_framework_names_are_safe(module, name):
    assert Policy().classify(module, name).verdict is Verdict.SAFE


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("__builtin__", "eval"),
        ("builtins", "getattr"),
        ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
        ("pkgutil", "resolve_name"),
        ("torch.serialization", "load"),
        ("torch", "serialization.os.system"),
        ("numpy", "__builtins__.eval"),
        ("operator", "attrgetter"),
        ("_operator", "methodcaller"),
        ("torch.utils.collect_env", "run"),
        ("idlelib.pyshell", "ModifiedInterpreter.runcode"),
    ],
)
def test_code_execution_primitives_are_dangerous(module, name):
    assert Policy().classify(module, name).verdict is Verdict.DANGEROUS


def test_anything_else_is_unknown_not_allowed():
    verdict = Policy().classify("somepkg.models", "Net")
    assert verdict.verdict is Verdict.UNKNOWN


def test_allowlist_is_exact_not_by_module():
    # numpy is allowlisted for arrays, but numpy.load is a nested unpickler.
    assert Policy().classify("numpy", "load").verdict is Verdict.DANGEROUS
    assert Policy().classify("numpy", "frombuffer").verdict is Verdict.UNKNOWN


def test_policy_file_allows_and_denies(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        '[pickle]\nallow = ["mypkg.Net", "mypkg.layers.*"]\ndeny = ["collections.Counter"]\n'
        "[limits]\nfile_timeout_s = 5\n"
    )
    policy = Policy.from_file(path)
    assert policy.classify("mypkg", "Net").verdict is Verdict.SAFE
    assert policy.classify("mypkg.layers.conv", "Block").verdict is Verdict.SAFE
    assert policy.classify("mypkg", "Other").verdict is Verdict.UNKNOWN
    assert policy.classify("collections", "Counter").verdict is Verdict.DANGEROUS
    assert policy.limits.file_timeout_s == 5.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pickle\n", "not valid TOML"),
        ("[nope]\n", "unknown section"),
        ("[pickle]\nallow = 'x'\n", "must be a list"),
        ("[pickle]\nallow = ['*']\n", "not a qualified name"),
        ("[pickle]\nextra = []\n", "unknown key"),
        ("[limits]\nmax_depth = -1\n", "positive number"),
        ("[limits]\nspeed = 3\n", "unknown limit"),
    ],
)
def test_bad_policy_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message):
        Policy.from_file(path)


def test_missing_policy_file_is_a_usage_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy file"):
        Policy.from_file(tmp_path / "absent.toml")
