"""JSON configs and Hugging Face model folders: auto_map remote code, chat templates, .py files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlwarden.findings import Finding, Severity
from mlwarden.scan.formats.huggingface import inspect_python
from mlwarden.scan.limits import Limits

from ._models import (
    by_rule,
    evil_pickle,
    formats,
    rules,
    scan_bytes,
    scan_folder,
    scan_path,
)

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n'}}{% endfor %}"
)


def _json(document: Any) -> bytes:
    return json.dumps(document, indent=2).encode()


def _hf_config(**extra: Any) -> dict[str, Any]:
    return {
        "architectures": ["TinyModel"],
        "model_type": "tiny",
        "hidden_size": 8,
        "transformers_version": "4.46.0",
        **extra,
    }


# --- JSON documents ---------------------------------------------------------------------------


def test_plain_hf_config_is_clean() -> None:
    state = scan_bytes(_json(_hf_config()))
    assert formats(state) == {None: "hf-config"}
    assert state.findings == []


def test_auto_map_is_remote_code_high() -> None:
    config = _hf_config(
        auto_map={
            "AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModel": "modeling_tiny.TinyModel",
        }
    )
    [finding] = by_rule(scan_bytes(_json(config)), "hf.remote-code")
    assert finding.severity is Severity.HIGH
    assert finding.evidence["python_files"] == ["configuration_tiny.py", "modeling_tiny.py"]
    assert finding.evidence["auto_map"]["AutoModel"] == "modeling_tiny.TinyModel"
    assert finding.evidence["other_repositories"] == []


def test_auto_map_into_another_repository_says_so() -> None:
    config = _hf_config(auto_map={"AutoModel": "someone/else--modeling_x.Model"})
    [finding] = by_rule(scan_bytes(_json(config)), "hf.remote-code")
    assert finding.evidence["other_repositories"] == ["someone/else"]
    assert "ANOTHER repository" in finding.detail
    assert finding.evidence["python_files"] == ["someone/else:modeling_x.py"]


def test_tokenizer_auto_map_lists_slow_and_fast_classes() -> None:
    config = {
        "tokenizer_class": "TinyTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_tiny.TinyTokenizer", None]},
    }
    [finding] = by_rule(scan_bytes(_json(config)), "hf.remote-code")
    assert finding.evidence["auto_map"] == {"AutoTokenizer[0]": "tokenization_tiny.TinyTokenizer"}


def test_custom_pipeline_is_remote_code() -> None:
    config = _hf_config(custom_pipelines={"text-x": {"impl": "pipe.MyPipeline"}})
    assert "hf.remote-code" in rules(scan_bytes(_json(config)))


def test_benign_tokenizer_config_is_clean() -> None:
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "chat_template": CHATML,
    }
    state = scan_bytes(_json(config))
    assert formats(state) == {None: "tokenizer-config"}
    assert state.findings == []


def test_malicious_chat_template_in_tokenizer_config_is_critical(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    template = f"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}"
    state = scan_bytes(_json({"chat_template": template}))
    [finding] = by_rule(state, "template.sandbox-escape")
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["origin"] == "tokenizer config 'chat_template'"
    assert not marker.exists()


def test_named_chat_templates_are_each_analysed() -> None:
    config = {
        "chat_template": [
            {"name": "default", "template": CHATML},
            {"name": "rag", "template": "{{ x.__class__ }}"},
        ]
    }
    [finding] = by_rule(scan_bytes(_json(config)), "template.sandbox-escape")
    assert finding.evidence["origin"] == "tokenizer config chat template 'rag'"


def test_keras_config_json_is_routed_to_keras_analysis() -> None:
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {
            "layers": [
                {
                    "module": "os",
                    "class_name": "function",
                    "config": "system",
                    "registered_name": None,
                }
            ]
        },
    }
    state = scan_bytes(_json(config))
    assert formats(state) == {None: "keras-config"}
    assert "keras.arbitrary-module" in rules(state)


def test_other_json_is_just_json() -> None:
    state = scan_bytes(_json({"weight_map": {"a": "model-00001.safetensors"}}))
    assert formats(state) == {None: "json"}
    assert state.findings == []


def test_json_lines_are_recognised() -> None:
    state = scan_bytes(b'{"text": "a"}\n{"text": "b"}\n')
    assert formats(state) == {None: "jsonl"}
    assert state.findings == []


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": 1,',
        b'{"a": "\xff\xfe"}',
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'\xef\xbb\xbf{"a": tru}',
    ],
)
def test_broken_json_is_low_not_an_exception(data: bytes) -> None:
    state = scan_bytes(data)
    assert rules(state) == {"json.malformed"}
    assert all(f.severity is Severity.LOW for f in state.findings)


def test_utf8_bom_is_accepted() -> None:
    state = scan_bytes(b"\xef\xbb\xbf" + _json(_hf_config()))
    assert formats(state) == {None: "hf-config"}


def test_pickle_hidden_in_broken_json_is_found(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = b'{"note": "x"} garbage \x80\x02' + evil_pickle(marker)
    state = scan_bytes(data)
    assert any(f.severity is Severity.CRITICAL for f in state.findings)
    assert not marker.exists()


def test_json_over_the_metadata_limit_is_a_limit_finding() -> None:
    state = scan_bytes(_json({"a": "x" * 5000}), Limits(max_metadata_bytes=1000))
    assert "scan.limit-exceeded" in rules(state)


# --- Hugging Face folders -----------------------------------------------------------------------


def _model_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (root / name).write_bytes(data)
    return root


def _python_findings(findings: list[Finding]) -> dict[str, Finding]:
    return {
        Path(f.location.path).name: f
        for f in findings
        if f.rule == "hf.python-file" and f.location is not None
    }


def test_model_folder_python_files_are_reported_by_how_they_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    config = _hf_config(auto_map={"AutoModel": "modeling_tiny.TinyModel"})
    folder = _model_folder(
        tmp_path / "model",
        {
            "config.json": json.dumps(config),
            "model.safetensors": b"",
            "modeling_tiny.py": "import torch\nclass TinyModel:\n    pass\n",
            "helpers.py": "def f(x):\n    return x\n",
            "setup_hook.py": f"import os\nos.system('touch {marker}')\n",
        },
    )
    found = _python_findings(scan_folder(folder))
    assert found["modeling_tiny.py"].severity is Severity.HIGH
    assert found["modeling_tiny.py"].evidence["referenced_by"] == [
        "config.json: AutoModel -> modeling_tiny.TinyModel"
    ]
    assert found["helpers.py"].severity is Severity.MEDIUM
    assert found["setup_hook.py"].severity is Severity.CRITICAL
    assert found["setup_hook.py"].evidence["risky_calls"] == [
        {"call": "os.system", "line": 2, "at_import": True}
    ]
    assert not marker.exists()


def test_folder_without_a_model_is_left_alone(tmp_path: Path) -> None:
    folder = _model_folder(
        tmp_path / "project",
        {
            "config.json": json.dumps({"debug": True}),
            "main.py": "import subprocess\nsubprocess.run(['ls'])\n",
        },
    )
    assert _python_findings(scan_folder(folder)) == {}


def test_readme_asking_for_trust_remote_code_is_a_hint(tmp_path: Path) -> None:
    folder = _model_folder(
        tmp_path / "m",
        {
            "tokenizer.json": "{}",
            "README.md": "---\ntags:\n- custom_code\n---\n"
            "model = AutoModel.from_pretrained('x', trust_remote_code=True)\n",
        },
    )
    hints = [f for f in scan_folder(folder) if f.rule == "hf.trust-remote-code-hint"]
    assert len(hints) == 1 and hints[0].severity is Severity.LOW


def _look(tmp_path: Path, source: str) -> list[dict[str, Any]]:
    path = tmp_path / "code.py"
    path.write_text(source)
    return inspect_python(str(path)).calls


def test_calls_inside_functions_do_not_run_at_import(tmp_path: Path) -> None:
    calls = _look(
        tmp_path,
        "import subprocess as sp\n"
        "def go():\n    sp.check_output(['id'])\n"
        "class M:\n    def f(self):\n        eval('1')\n",
    )
    assert [(c["call"], c["at_import"]) for c in calls] == [
        ("subprocess.check_output", False),
        ("eval", False),
    ]


def test_class_bodies_decorators_and_defaults_run_at_import(tmp_path: Path) -> None:
    calls = _look(
        tmp_path,
        "from os import system as s\nimport requests\n"
        "class M:\n    token = requests.get('http://x')\n"
        "def f(x=s('id')):\n    pass\n"
        "@__import__('os').popen\ndef g():\n    pass\n",
    )
    assert {(c["call"], c["at_import"]) for c in calls} == {
        ("requests.get", True),
        ("os.system", True),
        ("__import__", True),
    }


def test_main_guard_does_not_run_at_import(tmp_path: Path) -> None:
    calls = _look(tmp_path, "import os\nif __name__ == '__main__':\n    os.system('x')\n")
    assert calls == [{"call": "os.system", "line": 3, "at_import": False}]


def test_common_os_helpers_are_not_risky(tmp_path: Path) -> None:
    assert (
        _look(
            tmp_path,
            "import os\nos.path.join('a', 'b')\nos.environ.get('X')\n"
            "os.makedirs('d', exist_ok=True)\n",
        )
        == []
    )


@pytest.mark.parametrize("source", ["def (:\n", "x = 1\0\n", "(" * 10_000 + ")" * 10_000])
def test_unparseable_python_is_reported_without_crashing(tmp_path: Path, source: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source)
    look = inspect_python(str(path))
    assert look.error


def test_unparseable_python_in_a_model_folder_is_still_reported(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m", {"model.onnx": b"", "broken.py": "def (:\n"})
    finding = _python_findings(scan_folder(folder))["broken.py"]
    assert finding.severity is Severity.MEDIUM
    assert "does not parse" in finding.evidence["not_analysed"]


def test_scan_of_a_single_config_file_reports_remote_code(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_hf_config(auto_map={"AutoModel": "m.M"})))
    assert "hf.remote-code" in rules(scan_path(path))
