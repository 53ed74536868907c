"""Unsafe deserialisation: pickle and friends, torch.load, numpy allow_pickle, YAML, Keras."""

from __future__ import annotations

import pytest

from mlwarden.findings import Risk, Severity
from tests.scan.code._helpers import only, rules


@pytest.mark.parametrize(
    ("source", "called"),
    [
        ("import pickle\npickle.load(f)", "pickle.load"),
        ("import pickle as pk\npk.loads(b)", "pickle.loads"),
        ("from pickle import loads\nloads(b)", "pickle.loads"),
        ("from pickle import loads as l\nl(b)", "pickle.loads"),
        ("import pickle\npickle.Unpickler(f).load()", "pickle.Unpickler"),
        ("import cPickle\ncPickle.loads(b)", "cPickle.loads"),
        ("import _pickle\n_pickle.loads(b)", "_pickle.loads"),
        ("import dill\ndill.load(f)", "dill.load"),
        ("import cloudpickle\ncloudpickle.loads(b)", "cloudpickle.loads"),
        ("from joblib import load as jl\njl('m.joblib')", "joblib.load"),
        ("import joblib\nmodel = joblib.load(path)", "joblib.load"),
        ("import pandas as pd\npd.read_pickle('x.pkl')", "pandas.read_pickle"),
        ("pd.read_pickle('x.pkl')", "pandas.read_pickle"),
        ("import shelve\nshelve.open('db')", "shelve.open"),
        ("__import__('pickle').loads(b)", "pickle.loads"),
        ("import importlib\nimportlib.import_module('pickle').loads(b)", "pickle.loads"),
        ("import pickle\ngetattr(pickle, 'loads')(b)", "pickle.loads"),
        ("import pickle\nload = pickle.loads\nload(b)", "pickle.loads"),
        (
            "try:\n    import cPickle as pickle\nexcept ImportError:\n    import pickle\n"
            "pickle.load(f)",
            "pickle.load",
        ),
        ("def read(f):\n    return pickle.load(f)\nimport pickle", "pickle.load"),
    ],
)
def test_pickle_loaders_are_found_through_aliases(audit, source, called):
    findings = audit(source)
    assert rules(findings) == ["code.pickle-load"]
    finding = findings[0]
    assert finding.severity is Severity.HIGH
    assert finding.risk is Risk.ML06 and finding.check == "ml06.code"
    assert finding.evidence["call"] == called
    assert finding.remediation


@pytest.mark.parametrize(
    "source",
    [
        "import json\njson.loads(b)",
        "import pickle\npickle.dumps(obj)",
        "import joblib\njoblib.dump(model, 'm.joblib')",
        "import torch\nmodel.load_state_dict(state)",
        "def loads(b):\n    return b\nloads(b)",
        "import marshmallow\nschema.load(data)",
    ],
)
def test_other_loads_are_not_pickle(audit, source):
    assert audit(source) == []


def test_location_is_line_and_column_of_the_call(audit):
    findings = audit("import pickle\n\nx = 1;  pickle.loads(b)\n")
    location = findings[0].location
    assert (location.line, location.column) == (3, 9)


def test_column_counts_characters_not_bytes(audit):
    findings = audit("import pickle\nétiquette = 'é'; pickle.loads(b)\n")
    assert findings[0].location.column == 18


def test_torch_load_without_weights_only_is_medium_with_the_version_caveat(audit):
    findings = audit("import torch\nstate = torch.load('m.pt', map_location='cpu')")
    assert rules(findings) == ["code.torch-load"]
    assert findings[0].severity is Severity.MEDIUM
    assert "2.6" in findings[0].detail
    assert "weights_only=True" in findings[0].remediation


def test_torch_load_weights_only_false_is_high(audit):
    findings = audit("from torch import load\nload(path, weights_only=False)")
    assert [(f.rule, f.severity) for f in findings] == [("code.torch-load", Severity.HIGH)]


def test_torch_load_weights_only_true_is_clean(audit):
    assert audit("import torch\ntorch.load(path, weights_only=True)") == []


def test_torch_load_weights_only_from_a_variable_cannot_be_verified(audit):
    findings = audit("import torch\ntorch.load(path, weights_only=flag)")
    assert findings[0].severity is Severity.MEDIUM
    assert findings[0].evidence["weights_only"] == "flag"


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nnp.load('a.npz', allow_pickle=True)",
        "import numpy\nnumpy.load('a.npy', None, True)",
        "from numpy import load\nload(f, allow_pickle=True)",
    ],
)
def test_numpy_allow_pickle_true_is_high(audit, source):
    findings = audit(source)
    assert [(f.rule, f.severity) for f in findings] == [("code.numpy-allow-pickle", Severity.HIGH)]


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nnp.load('a.npy')",
        "import numpy as np\nnp.load('a.npy', allow_pickle=False)",
        "import numpy as np\nnp.save('a.npy', x, allow_pickle=True)",
    ],
)
def test_numpy_without_pickles_is_clean(audit, source):
    assert audit(source) == []


@pytest.mark.parametrize(
    ("source", "severity"),
    [
        ("import yaml\nyaml.unsafe_load(s)", Severity.HIGH),
        ("import yaml\nyaml.load(s, Loader=yaml.Loader)", Severity.HIGH),
        ("import yaml\nyaml.load(s, yaml.UnsafeLoader)", Severity.HIGH),
        ("from yaml import load, CLoader\nload(s, Loader=CLoader)", Severity.HIGH),
        ("import yaml\nyaml.load(s)", Severity.MEDIUM),
        ("import yaml\nyaml.full_load(s)", Severity.MEDIUM),
        ("import yaml\nyaml.load(s, Loader=yaml.FullLoader)", Severity.MEDIUM),
        ("import yaml\nyaml.load(s, Loader=my_loader)", Severity.MEDIUM),
    ],
)
def test_unsafe_yaml_loaders(audit, source, severity):
    findings = audit(source)
    assert [(f.rule, f.severity) for f in findings] == [("code.yaml-unsafe-load", severity)]
    assert "safe_load" in findings[0].remediation


@pytest.mark.parametrize(
    "source",
    [
        "import yaml\nyaml.safe_load(s)",
        "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.load(s, yaml.CSafeLoader)",
        "from yaml import load, BaseLoader\nload(s, Loader=BaseLoader)",
        "import yaml\nyaml.load_all(s, Loader=yaml.SafeLoader)",
    ],
)
def test_safe_yaml_loaders_are_clean(audit, source):
    assert audit(source) == []


@pytest.mark.parametrize(
    "source",
    [
        "import tensorflow as tf\ntf.keras.models.load_model(p, safe_mode=False)",
        "import keras\nkeras.saving.load_model(p, safe_mode=False)",
        "from keras.models import load_model\nload_model(p, compile=False, safe_mode=False)",
        "import keras\nkeras.config.enable_unsafe_deserialization()",
    ],
)
def test_keras_safe_mode_off_is_high(audit, source):
    findings = audit(source)
    assert [(f.rule, f.severity) for f in findings] == [("code.keras-unsafe-mode", Severity.HIGH)]


@pytest.mark.parametrize(
    "source",
    [
        "import tensorflow as tf\ntf.keras.models.load_model(p)",
        "import keras\nkeras.saving.load_model(p, safe_mode=True)",
        "def enable_unsafe_deserialization():\n    pass\nenable_unsafe_deserialization()",
    ],
)
def test_keras_safe_mode_on_is_clean(audit, source):
    assert audit(source) == []


def test_each_call_is_reported_once(audit):
    findings = audit("import pickle, torch\npickle.load(f)\ntorch.load(f)\npickle.loads(b)")
    assert len(only(findings, "code.pickle-load")) == 2
    assert len(only(findings, "code.torch-load")) == 1
