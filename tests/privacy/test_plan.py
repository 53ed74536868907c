"""audit.yaml's privacy section: validated strictly, paths relative to the plan, loaded lazily."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlwarden.audit.context import context_from_plan, privacy_settings
from mlwarden.audit.plan import load_plan
from mlwarden.errors import ConfigError, UsageError
from mlwarden.privacy.settings import PrivacySettings

PLAN = """\
version: 1
privacy:
  members: data/members.npz
  non_members:
    path: data/non-members.npz
    limit: 3
  population: data/population.npz
  train_fn: plantrain:train
  attacks: [loss, rmia]
  n_reference: 4
  reference_mode: offline
  cache_dir: cache
  dask: tcp://127.0.0.1:8786
  seed: 3
  defences: ["top-k:1", label-only, "dp:epsilon=2"]
  n_exposed: 5
  inversion:
    classes: [0, 1]
    method: black-box
    steps: 20
    reference: data/members.npz
  attribute:
    feature: 2
  thresholds:
    high: 20
"""


def write(folder: Path, text: str) -> Path:
    path = folder / "audit.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def plan_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in ("members", "non-members", "population"):
        np.savez(data / f"{name}.npz", x=rng.random((6, 4)), y=np.arange(6) % 2)
    (tmp_path / "plantrain.py").write_text(
        "def train(x, y, seed):\n    raise RuntimeError('not called here')\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_privacy_section_resolves_paths_against_the_plan(plan_folder: Path) -> None:
    plan = load_plan(write(plan_folder, PLAN))
    privacy = plan.privacy
    assert privacy is not None
    assert privacy.members is not None and privacy.members.path == plan_folder / "data/members.npz"
    assert privacy.non_members is not None and privacy.non_members.limit == 3
    assert privacy.cache_dir == plan_folder / "cache"
    assert privacy.inversion.reference is not None
    assert privacy.inversion.reference.path == plan_folder / "data/members.npz"


def test_privacy_section_becomes_settings_with_data_loaded(plan_folder: Path) -> None:
    plan = load_plan(write(plan_folder, PLAN))
    context = context_from_plan(plan)
    settings = context.privacy
    assert isinstance(settings, PrivacySettings)
    assert settings.members is not None and settings.members[0].shape == (6, 4)
    assert settings.non_members is not None and len(settings.non_members[1]) == 3
    assert callable(settings.train_fn) and settings.train_fn.__name__ == "train"
    assert settings.attacks == ("loss", "rmia") and settings.n_reference == 4
    assert settings.dask == "tcp://127.0.0.1:8786" and settings.seed == 3
    assert [d.text for d in settings.defences] == [
        "top-k:1",
        "label-only",
        "dp:epsilon=2,delta=1e-05",
    ]
    assert settings.inversion is not None and settings.inversion.classes == (0, 1)
    assert settings.inversion.method == "black-box" and settings.inversion.steps == 20
    assert settings.attribute_feature == 2
    assert settings.thresholds.high == 20 and settings.thresholds.medium == 3
    assert settings.n_jobs == 1


def test_jobs_default_to_the_audits(plan_folder: Path) -> None:
    plan = load_plan(
        write(
            plan_folder,
            "privacy:\n  members: data/members.npz\n  non_members: data/non-members.npz\n",
        )
    )
    assert plan.privacy is not None
    settings = privacy_settings(plan.privacy, jobs=3)
    assert settings.n_jobs == 3 and settings.train_fn is None
    assert settings.inversion is not None  # on by default


def test_inversion_can_be_turned_off(plan_folder: Path) -> None:
    plan = load_plan(write(plan_folder, "privacy:\n  inversion:\n    enabled: false\n"))
    assert plan.privacy is not None
    assert privacy_settings(plan.privacy).inversion is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  members: data/members.npz\n", "members and non_members go together"),
        ("  defences: [blur]\n", "privacy.defences"),
        ("  train_fn: not a function\n", "privacy.train_fn"),
        ("  n_reference: 0\n", "privacy.n_reference"),
        ("  reference_mode: sideways\n", "privacy.reference_mode"),
        ("  inversion:\n    method: telepathy\n", "privacy.inversion.method"),
        ("  thresholds:\n    low: 5\n", "low <= medium <= high"),
        ("  surprise: 1\n", "privacy.surprise"),
    ],
)
def test_bad_privacy_sections_are_config_errors(
    plan_folder: Path, section: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_plan(write(plan_folder, "privacy:\n" + section))


def test_a_missing_records_file_is_a_usage_error(plan_folder: Path) -> None:
    plan = load_plan(
        write(plan_folder, "privacy:\n  members: nope.npz\n  non_members: data/members.npz\n")
    )
    with pytest.raises(UsageError, match=r"nope\.npz"):
        context_from_plan(plan)


def test_plan_without_privacy_leaves_the_context_without_it(plan_folder: Path) -> None:
    plan = load_plan(write(plan_folder, textwrap.dedent("version: 1\n")))
    assert context_from_plan(plan).privacy is None
