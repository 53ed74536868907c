"""Rule for model-hub downloads not pinned to a commit: ``from_pretrained``, ``hf_hub_download``,
``snapshot_download``, ``datasets.load_dataset``, ``transformers.pipeline``, sentence-transformers
and ``timm.create_model(pretrained=True)``.

A repository's branch (and even a tag) can be moved: without ``revision=`` set to a full 40-hex
commit sha, each run downloads whatever the repository holds that day. Only a repository named
by a string the audit can see is judged; a local path (``./model``, ``/models/x``, a folder that
exists next to the file or in the audited folder) is not a download. A name or revision computed
at run time cannot be judged and is not reported.
Not for: remote code (``trust_remote_code``, see `remote_code`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from mlwarden.findings import Severity
from mlwarden.scan.code.context import FileContext, argument, is_true, keyword, last_name
from mlwarden.scan.code.imports import attribute_chain
from mlwarden.scan.code.rules import register_rule

UNPINNED_RULE = "code.unpinned-hub-download"
RULES = (UNPINNED_RULE,)

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
"""A full commit sha: the only revision that names fixed content."""

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?$")
"""What a hub repository id looks like (``gpt2``, ``org/name``)."""

DATASET_BUILDERS = frozenset(
    {
        "csv",
        "json",
        "parquet",
        "text",
        "arrow",
        "pandas",
        "sql",
        "generator",
        "imagefolder",
        "audiofolder",
        "videofolder",
        "webdataset",
        "xml",
        "spark",
        "cache",
    }
)
"""``datasets.load_dataset`` names that read local data with a packaged builder."""

REPO_KEYWORDS = (
    "pretrained_model_name_or_path",
    "model_id",
    "repo_id",
    "model_name_or_path",
    "model_name",
)
_HUB_FUNCTIONS = frozenset({"hf_hub_download", "snapshot_download"})
_HUB_LOADERS = frozenset(
    {"huggingface_hub.from_pretrained_keras", "huggingface_hub.from_pretrained_fastai"}
)
_SENTENCE_TRANSFORMERS = frozenset(
    {"sentence_transformers.SentenceTransformer", "sentence_transformers.CrossEncoder"}
)
_TIMM_HUB_PREFIXES = ("hf-hub:", "hf_hub:")


@dataclass(frozen=True)
class _Download:
    call: str
    """The called name (``transformers.AutoModel.from_pretrained``)."""
    repo: ast.expr | None
    revision: ast.expr | None
    timm: bool = False
    """timm names the revision inside the model name (``hf-hub:org/name@<sha>``)."""
    default_model: bool = False
    """No repository named: the library downloads its own default (``pipeline(task)``)."""


def _repo_argument(node: ast.Call, ctx: FileContext) -> ast.expr | None:
    for name in REPO_KEYWORDS:
        value = keyword(node, name)
        if value is not None:
            return value
    # PeftModel.from_pretrained(base_model, "org/adapter") names the repository second.
    for value in node.args[:2]:
        if ctx.string_value(value) is not None:
            return value
    return node.args[0] if node.args else None


def _download(node: ast.Call, ctx: FileContext) -> _Download | None:
    name = ctx.qualname(node.func) or ".".join(attribute_chain(node.func))
    last = last_name(name)
    revision = keyword(node, "revision")
    if last == "from_pretrained":
        return _Download(name, _repo_argument(node, ctx), revision)
    if last in _HUB_FUNCTIONS or name in _HUB_LOADERS:
        return _Download(name, argument(node, 0, "repo_id"), revision)
    if name in _SENTENCE_TRANSFORMERS:
        return _Download(name, argument(node, 0, "model_name_or_path"), revision)
    if name == "datasets.load_dataset":
        path = argument(node, 0, "path")
        if (ctx.string_value(path) or "").lower() in DATASET_BUILDERS:
            return None
        return _Download(name, path, revision)
    if name == "transformers.pipeline":
        model = argument(node, 1, "model")
        return _Download(name, model, revision, default_model=model is None)
    if name == "timm.create_model" and is_true(argument(node, 1, "pretrained")):
        if keyword(node, "pretrained_cfg_overlay") is not None:
            return None
        return _Download(name, argument(node, 0, "model_name"), None, timm=True)
    return None


def _is_local(text: str, ctx: FileContext) -> bool:
    if text.startswith(("./", "../", ".\\", "..\\", "/", "~")) or text in (".", ".."):
        return True
    return not HUB_ID.match(text) or ctx.path_exists(text)


@register_rule(ast.Call)
def unpinned_hub_download(node: ast.Call, ctx: FileContext) -> None:
    """Report hub downloads whose revision is not a full commit sha."""
    download = _download(node, ctx)
    if download is None:
        return
    if download.default_model:
        _report(ctx, node, download, "the task's default model", None)
        return
    if download.repo is None:
        return
    repo = ctx.string_value(download.repo)
    if repo is None:
        return
    revision: str | None
    if download.timm:
        if repo.startswith("local-dir:"):
            return
        for prefix in _TIMM_HUB_PREFIXES:
            repo = repo.removeprefix(prefix)
        repo, _, revision = repo.replace("#", "@").partition("@")
        revision = revision or None
    else:
        if download.revision is not None:
            revision = ctx.string_value(download.revision)
            if revision is None:
                return  # computed at run time: it may well be a commit
        else:
            revision = None
        if _is_local(repo, ctx):
            return
    if revision is not None and COMMIT_SHA.match(revision):
        return
    _report(ctx, node, download, repo, revision)


def _report(
    ctx: FileContext, node: ast.Call, download: _Download, repo: str, revision: str | None
) -> None:
    if download.timm:
        fix = f'Name the model as "hf-hub:<org>/<name>@<40-hex commit sha>" ({repo} today).'
    else:
        fix = (
            'Pass revision="<40-hex commit sha>" of the version you reviewed; '
            "huggingface_hub.HfApi().model_info(repo_id).sha (dataset_info for datasets) gives "
            "the current one."
        )
    fix += " Better still, download once, scan it with `mlwarden scan`, and load that copy."
    evidence = {"call": download.call, "repository": repo, "revision": revision}
    if revision is None:
        ctx.report(
            UNPINNED_RULE,
            Severity.MEDIUM,
            node,
            title=f"{download.call}() downloads {repo} without pinning a commit",
            detail="Without a commit sha, every run fetches whatever the repository holds that "
            "day: an update, or a takeover of the account, changes the model (or its code) "
            "with no trace in yours.",
            remediation=fix,
            evidence=evidence,
        )
    else:
        ctx.report(
            UNPINNED_RULE,
            Severity.LOW,
            node,
            title=f"{download.call}() pins {repo} to {revision!r}, a branch or tag, not a commit",
            detail=f"{revision!r} is not a 40-hex commit sha: branches move and tags can be "
            "re-pointed, so the files downloaded can change without any change to this code.",
            remediation=fix,
            evidence=evidence,
        )
