"""Which advisories are ML-specific, and what kind of ML risk they are.

An advisory is ML-specific when it concerns a package of the ML stack (`ML_PACKAGES`) or its
text describes an ML attack surface (model loading, ``trust_remote_code``, chat templates).
Its category comes from the patterns its summary and details match (`CATEGORIES`, first match
wins). One that means code execution when a model or file is loaded is raised to at least high
severity: loading a model is what every ML system does with files it did not write. Not for:
matching versions (`osv`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from mlwarden.scan.deps.osv import Advisory

ML_PACKAGES: Mapping[str, str] = {
    "torch": "PyTorch",
    "torchvision": "PyTorch",
    "torchaudio": "PyTorch",
    "pytorch-lightning": "PyTorch Lightning",
    "lightning": "PyTorch Lightning",
    "tensorflow": "TensorFlow",
    "tensorflow-cpu": "TensorFlow",
    "tensorflow-gpu": "TensorFlow",
    "tf-nightly": "TensorFlow",
    "tensorflow-hub": "TensorFlow",
    "keras": "Keras",
    "tf-keras": "Keras",
    "jax": "JAX",
    "jaxlib": "JAX",
    "flax": "JAX",
    "transformers": "Hugging Face",
    "huggingface-hub": "Hugging Face",
    "datasets": "Hugging Face",
    "tokenizers": "Hugging Face",
    "accelerate": "Hugging Face",
    "peft": "Hugging Face",
    "diffusers": "Hugging Face",
    "safetensors": "Hugging Face",
    "sentence-transformers": "Hugging Face",
    "onnx": "ONNX",
    "onnxruntime": "ONNX",
    "onnxruntime-gpu": "ONNX",
    "llama-cpp-python": "llama.cpp",
    "gguf": "llama.cpp",
    "vllm": "vLLM",
    "mlflow": "MLflow",
    "ray": "Ray",
    "joblib": "joblib",
    "numpy": "NumPy",
    "scikit-learn": "scikit-learn",
    "skops": "scikit-learn",
    "xgboost": "XGBoost",
    "lightgbm": "LightGBM",
    "catboost": "CatBoost",
    "pandas": "pandas",
    "dill": "pickle",
    "cloudpickle": "pickle",
    "langchain": "LangChain",
    "langchain-core": "LangChain",
    "langchain-community": "LangChain",
    "langchain-experimental": "LangChain",
    "llama-index": "LlamaIndex",
    "llama-index-core": "LlamaIndex",
    "gradio": "Gradio",
    "bentoml": "BentoML",
    "openai": "LLM client",
    "litellm": "LLM gateway",
    "deepspeed": "DeepSpeed",
    "paddlepaddle": "PaddlePaddle",
    "mxnet": "MXNet",
    "wandb": "Weights & Biases",
    "clearml": "ClearML",
    "kserve": "KServe",
    "triton": "Triton",
    "tritonclient": "Triton",
    "timm": "PyTorch",
    "fairseq": "PyTorch",
    "nltk": "NLP",
    "spacy": "NLP",
    "gensim": "NLP",
}
"""Canonical project name -> the ML stack it belongs to."""

ML_PACKAGE_PREFIXES = ("langchain-", "llama-index-", "tensorflow-", "torch-", "onnxruntime-")
"""Families of ML packages whose members are too many to list."""


@dataclass(frozen=True)
class Category:
    """A kind of ML-specific advisory and the patterns that recognise it."""

    name: str
    sources: tuple[str, ...]
    """Regular expressions, matched case-insensitively."""
    loads_untrusted: bool
    """Whether it is about loading a model or file: code execution then means on load."""

    @functools.cached_property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        """`sources` compiled on first use: every `mlwarden scan` imports this module, few
        judge an advisory."""
        return tuple(re.compile(p, re.IGNORECASE) for p in self.sources)


CATEGORIES: tuple[Category, ...] = (
    Category(
        "template injection",
        (
            r"template injection",
            r"\bSSTI\b",
            r"jinja",
            r"chat[ _-]?template",
        ),
        loads_untrusted=True,
    ),
    Category(
        "remote code loading",
        (r"trust_remote_code", r"torch\.hub", r"remote code from (the )?hub"),
        loads_untrusted=True,
    ),
    Category(
        "unsafe deserialisation",
        (
            r"torch\.load",
            r"weights_only",
            r"\bpickl",
            r"unpickl",
            r"deseriali[sz]",
            r"joblib\.load",
            r"numpy\.load|np\.load|allow_pickle",
            r"safe_mode",
            r"\blambda layer",
            r"\bload_model\b",
            r"marshal",
            r"yaml\.load|unsafe yaml",
            r"malicious (model|checkpoint)",
            r"(model|checkpoint) file",
        ),
        loads_untrusted=True,
    ),
    Category(
        "model file parsing",
        (r"\bGGUF\b", r"\bONNX\b model", r"safetensors", r"\bh5\b|hdf5", r"\.keras\b"),
        loads_untrusted=True,
    ),
    Category(
        "prompt injection",
        (r"prompt injection", r"\bLLM\b.*(execut|inject)"),
        loads_untrusted=False,
    ),
)
"""Kinds of ML-specific advisories, tried in this order: the most specific first (a template
injection advisory often also says "malicious model")."""


@functools.cache
def _code_execution() -> re.Pattern[str]:
    return re.compile(
        r"arbitrary code|code execution|remote code|\bRCE\b|execute (arbitrary )?(python|code|"
        r"commands?)|command injection|execut\w* (of )?(malicious|attacker)",
        re.IGNORECASE,
    )


@dataclass(frozen=True)
class MlAssessment:
    """Why an advisory is ML-specific."""

    category: str
    """The `CATEGORIES` name that matched, else the package's stack (``ML framework``)."""
    stack: str | None
    """The ML stack of the package (``PyTorch``), None when only the text made it ML-specific."""
    code_execution_on_load: bool
    """Whether it means code execution when a model or file is loaded."""
    matched: tuple[str, ...]
    """The patterns that matched, for the evidence."""


def ml_stack(package: str) -> str | None:
    """The ML stack a canonical project name belongs to, or None."""
    if package in ML_PACKAGES:
        return ML_PACKAGES[package]
    for prefix in ML_PACKAGE_PREFIXES:
        if package.startswith(prefix):
            return ML_PACKAGES.get(prefix.rstrip("-"), "ML framework")
    return None


def assess(advisory: Advisory, package: str) -> MlAssessment | None:
    """Why `advisory` about `package` is ML-specific, or None when it is not."""
    text = f"{advisory.summary}\n{advisory.details}"
    stack = ml_stack(package)
    for category in CATEGORIES:
        matched = tuple(p.pattern for p in category.patterns if p.search(text))
        if matched and (stack is not None or _text_alone_is_ml(matched)):
            execution = category.loads_untrusted and bool(_code_execution().search(text))
            return MlAssessment(category.name, stack, execution, matched)
    if stack is None:
        return None
    return MlAssessment("ML framework", stack, False, ())


_GENERIC = frozenset(
    {
        r"\bpickl",
        r"unpickl",
        r"deseriali[sz]",
        r"marshal",
        r"yaml\.load|unsafe yaml",
        r"template injection",
        r"\bSSTI\b",
        r"jinja",
        r"\bh5\b|hdf5",
    }
)
"""Patterns any web or data library's advisory may match: alone they do not make an advisory
about a package outside the ML stack ML-specific."""


def _text_alone_is_ml(matched: tuple[str, ...]) -> bool:
    """Outside the ML stack, only patterns that name ML surfaces count (``torch.load``,
    ``trust_remote_code``, chat templates)."""
    return any(p not in _GENERIC for p in matched)
