"""JSON documents next to or inside models: Keras configs, Hugging Face configs, tokenizer configs.

Recognised by content (a JSON object), then routed by its keys:

- a Keras model config (``.keras`` archives' ``config.json``) goes to `keras_config`;
- a Hugging Face config with ``auto_map`` names Python files that
  ``from_pretrained(trust_remote_code=True)`` imports and runs (``hf.remote-code``);
- a tokenizer or processor config with ``chat_template`` goes to `templates`.

Not for: JSON that is none of these (it is recorded as ``json`` and otherwise left alone), or
weights index files beyond recognising them.
"""

from __future__ import annotations

import json
from typing import Any

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats import FormatHandler, register
from mlwarden.scan.pickle.analyser import find_hidden_pickles

_UTF8_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
HF_CONFIG_KEYS = frozenset(
    {
        "model_type",
        "architectures",
        "transformers_version",
        "_name_or_path",
        "auto_map",
        "tokenizer_class",
    }
)
"""Keys that mark a Hugging Face configuration file."""
MAX_AUTO_MAP_ENTRIES = 100


def _body_start(head: bytes) -> bytes:
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    return head.lstrip(_WHITESPACE)


class JsonHandler(FormatHandler):
    name = "json"
    # After pickle: a pickle never starts with "{", but a JSON sniff must not take one that
    # does something cleverer.
    priority = 70

    def sniff(self, head: bytes, blob: Blob) -> bool:
        body = _body_start(head)
        return body[:1] == b"{" and b'"' in body[:4096]

    def scan(self, ctx: ScanContext) -> None:
        limit = ctx.limits.max_metadata_bytes
        if ctx.blob.size > limit:
            raise LimitExceeded("max_metadata_bytes", f"JSON document of {ctx.blob.size} bytes")
        raw = ctx.blob.read_all(limit)
        document = _parse(ctx, raw)
        if document is None:
            return
        ctx.format = route(ctx, document)


def _parse(ctx: ScanContext, raw: bytes) -> dict[str, Any] | None:
    text = raw[len(_UTF8_BOM) :] if raw.startswith(_UTF8_BOM) else raw
    try:
        document = json.loads(text)
    except RecursionError:
        problem = "nested too deeply for JSON parsers"
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and _is_json_lines(text):
            ctx.format = "jsonl"
            return None
        problem = str(exc)
    except ValueError as exc:
        problem = str(exc)
    else:
        if isinstance(document, dict):
            return document
        problem = f"top-level value is a {type(document).__name__}"
    ctx.format = "text"
    ctx.add(
        "json.malformed",
        Severity.LOW,
        "File looks like JSON but does not parse",
        f"{problem[:300]}. Loaders reject it; it is searched for hidden pickles instead.",
        evidence={"error": problem[:300]},
        remediation="Check where the file came from if it should be a config.",
    )
    if find_hidden_pickles(ctx, ctx.blob):
        ctx.format = "data-with-pickle"
    return None


def _is_json_lines(text: bytes) -> bool:
    """One JSON value per line (datasets and logs kept beside models)."""
    try:
        for line in text.splitlines():
            if line.strip():
                json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def route(ctx: ScanContext, document: dict[str, Any]) -> str:
    """Analyse a parsed JSON object by what it is; returns the format name to record."""
    from mlwarden.scan.keras_config import analyse_keras_config, looks_like_keras_config

    if looks_like_keras_config(document):
        analyse_keras_config(ctx, document, origin="Keras config (JSON)")
        return "keras-config"
    kind = "json"
    if "auto_map" in document or "custom_pipelines" in document:
        _report_remote_code(ctx, document)
    if HF_CONFIG_KEYS & document.keys():
        kind = "hf-config"
    if "chat_template" in document:
        _analyse_chat_templates(ctx, document["chat_template"])
        kind = "tokenizer-config"
    return kind


def _report_remote_code(ctx: ScanContext, document: dict[str, Any]) -> None:
    entries = _code_references(document)
    if not entries:
        return
    elsewhere = sorted({ref.split("--", 1)[0] for ref in entries.values() if "--" in ref})
    files = sorted({_python_file(ref) for ref in entries.values()})
    detail = (
        "Loading this model with trust_remote_code=True imports and runs "
        f"{', '.join(files)} from the model's repository."
    )
    if elsewhere:
        detail += (
            f" Entries with '--' fetch code from ANOTHER repository: "
            f"{', '.join(elsewhere)}; that code can change after you review this one."
        )
    ctx.add(
        "hf.remote-code",
        Severity.HIGH,
        "Hugging Face config runs custom Python code (auto_map)",
        detail,
        evidence={
            "auto_map": dict(list(entries.items())[:MAX_AUTO_MAP_ENTRIES]),
            "python_files": files,
            "other_repositories": elsewhere,
        },
        remediation="Load without trust_remote_code, or review the named Python files first "
        "and pin the revision (from_pretrained(..., revision=<commit>)).",
    )


def _code_references(document: dict[str, Any]) -> dict[str, str]:
    """``auto_map`` class -> reference, flattened (tokenizers list a slow and a fast class)."""
    found: dict[str, str] = {}
    auto_map = document.get("auto_map")
    if isinstance(auto_map, dict):
        for key, value in auto_map.items():
            refs = value if isinstance(value, list) else [value]
            for i, ref in enumerate(refs):
                if isinstance(ref, str) and ref:
                    found[key if len(refs) == 1 else f"{key}[{i}]"] = ref
    elif isinstance(auto_map, list):
        found.update(
            {f"auto_map[{i}]": r for i, r in enumerate(auto_map) if isinstance(r, str) and r}
        )
    pipelines = document.get("custom_pipelines")
    if isinstance(pipelines, dict):
        for task, spec in pipelines.items():
            impl = spec.get("impl") if isinstance(spec, dict) else None
            if isinstance(impl, str) and impl:
                found[f"custom_pipelines.{task}"] = impl
    return found


def _python_file(reference: str) -> str:
    """``org/repo--modeling_x.Model`` -> ``org/repo:modeling_x.py``."""
    repo, _, path = reference.rpartition("--")
    module = path.rsplit(".", 1)[0] if "." in path else path
    file = module.replace(".", "/") + ".py"
    return f"{repo}:{file}" if repo else file


def _analyse_chat_templates(ctx: ScanContext, value: Any) -> None:
    from mlwarden.scan.templates import analyse_template  # jinja2 only when templates exist

    if isinstance(value, str):
        analyse_template(ctx, value, origin="tokenizer config 'chat_template'")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                name = str(item.get("name", "?"))[:100]
                analyse_template(
                    ctx, item["template"], origin=f"tokenizer config chat template {name!r}"
                )
    elif isinstance(value, dict):
        for name, template in value.items():
            if isinstance(template, str):
                analyse_template(
                    ctx, template, origin=f"tokenizer config chat template {str(name)[:100]!r}"
                )


register(JsonHandler())
