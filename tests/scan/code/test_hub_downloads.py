"""Hub downloads must be pinned to a full commit sha; local paths are not downloads."""

from __future__ import annotations

import pytest

from mlwarden.findings import Severity
from tests.scan.code._helpers import only

SHA = "0123456789abcdef0123456789abcdef01234567"
RULE = "code.unpinned-hub-download"


@pytest.mark.parametrize(
    "source",
    [
        "from transformers import AutoModel\nAutoModel.from_pretrained('bert-base-uncased')",
        "from transformers import AutoTokenizer as T\nT.from_pretrained('org/name', use_fast=True)",
        "MODEL_ID = 'meta-llama/Llama-2-7b-hf'\nm = AutoModelForCausalLM.from_pretrained(MODEL_ID)",
        "from peft import PeftModel\nPeftModel.from_pretrained(base, 'org/adapter')",
        "from huggingface_hub import hf_hub_download\nhf_hub_download('org/m', 'w.safetensors')",
        "import huggingface_hub\nhuggingface_hub.snapshot_download(repo_id='org/m')",
        "from huggingface_hub import HfApi\nHfApi().hf_hub_download(repo_id='org/m', filename='f')",
        "from huggingface_hub import from_pretrained_keras\nfrom_pretrained_keras('org/m')",
        "from datasets import load_dataset\nload_dataset('imdb')",
        "import datasets\ndatasets.load_dataset('org/data', split='train')",
        "from transformers import pipeline\npipeline('text-generation', model='gpt2')",
        "from transformers import pipeline\npipeline('sentiment-analysis')",
        "from sentence_transformers import SentenceTransformer as ST\nST('all-MiniLM-L6-v2')",
        "import timm\ntimm.create_model('resnet50', pretrained=True)",
        "import timm\ntimm.create_model('hf-hub:timm/vit_base', pretrained=True)",
    ],
)
def test_unpinned_downloads_are_medium(audit, source):
    findings = only(audit(source), RULE)
    assert [f.severity for f in findings] == [Severity.MEDIUM]
    assert "commit" in findings[0].remediation


def test_branch_or_tag_revision_is_low_and_says_why(audit):
    findings = only(audit("AutoModel.from_pretrained('gpt2', revision='v1.0')"), RULE)
    assert [f.severity for f in findings] == [Severity.LOW]
    assert "'v1.0'" in findings[0].title and "branch" in findings[0].detail
    assert findings[0].evidence == {
        "call": "AutoModel.from_pretrained",
        "repository": "gpt2",
        "revision": "v1.0",
    }


@pytest.mark.parametrize(
    "source",
    [
        f"AutoModel.from_pretrained('gpt2', revision='{SHA}')",
        f"REV = '{SHA}'\nAutoModel.from_pretrained('gpt2', revision=REV)",
        f"from huggingface_hub import hf_hub_download as d\nd('o/m', 'f', revision='{SHA}')",
        f"from datasets import load_dataset\nload_dataset('imdb', revision='{SHA}')",
        f"from transformers import pipeline\npipeline('t', model='gpt2', revision='{SHA}')",
        f"import timm\ntimm.create_model('hf-hub:timm/vit@{SHA}', pretrained=True)",
        "AutoModel.from_pretrained('gpt2', revision=config.revision)",
    ],
)
def test_pinned_or_unknowable_revisions_are_clean(audit, source):
    assert only(audit(source), RULE) == []


@pytest.mark.parametrize(
    "source",
    [
        "AutoModel.from_pretrained('./checkpoints/best')",
        "AutoModel.from_pretrained('/models/llama')",
        "AutoModel.from_pretrained('~/models/llama')",
        "AutoModel.from_pretrained('C:\\\\models\\\\llama')",
        "AutoModel.from_pretrained('../shared/model')",
        "AutoModel.from_pretrained(path)",
        "AutoModel.from_pretrained(args.model_name_or_path)",
        "def load(MODEL_ID):\n    return AutoModel.from_pretrained(MODEL_ID)\nMODEL_ID = 'gpt2'",
        "from datasets import load_dataset\nload_dataset('csv', data_files='train.csv')",
        "from datasets import load_dataset\nload_dataset('./data')",
        "import timm\ntimm.create_model('resnet50')",
        "import timm\ntimm.create_model('resnet50', pretrained=False)",
        "from transformers import pipeline\npipeline('text-generation', model=model, tokenizer=t)",
    ],
)
def test_local_paths_and_unknown_names_are_not_downloads(audit, source):
    assert only(audit(source), RULE) == []


def test_a_folder_that_exists_beside_the_file_is_local(audit, tmp_path):
    (tmp_path / "models" / "bert").mkdir(parents=True)
    assert only(audit("AutoModel.from_pretrained('models/bert')"), RULE) == []
    assert only(audit("AutoModel.from_pretrained('models/other')"), RULE) != []
