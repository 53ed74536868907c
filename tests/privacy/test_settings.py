"""Privacy settings are validated once: defence specs, record pairs, the user's train_fn."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlwarden.errors import InputError, UsageError
from mlwarden.privacy.settings import (
    InversionSettings,
    PrivacySettings,
    load_train_fn,
    parse_defence,
    parse_defences,
    resolve_cache_dir,
)

RECORDS = (np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]))


@pytest.mark.parametrize(
    ("text", "kind", "value", "normalised"),
    [
        ("top-k:1", "top-k", 1.0, "top-k:1"),
        (" Top-K: 3 ", "top-k", 3.0, "top-k:3"),
        ("round:2", "round", 2.0, "round:2"),
        ("round:0", "round", 0.0, "round:0"),
        ("label-only", "label-only", None, "label-only"),
        ("temperature:2.5", "temperature", 2.5, "temperature:2.5"),
    ],
)
def test_output_defences_parse(text: str, kind: str, value: float | None, normalised: str) -> None:
    spec = parse_defence(text)
    assert (spec.kind, spec.value, spec.text) == (kind, value, normalised)
    assert not spec.retrains


def test_dp_defence_parses_its_options_with_a_default_delta() -> None:
    spec = parse_defence("dp:epsilon=1")
    assert spec.retrains and spec.dp == {"epsilon": 1.0, "delta": 1e-5}
    full = parse_defence("dp:epsilon=0.5,delta=1e-6,max_grad_norm=2,epochs=5")
    assert full.dp == {"epsilon": 0.5, "delta": 1e-6, "max_grad_norm": 2.0, "epochs": 5.0}
    assert full.text == "dp:epsilon=0.5,delta=1e-06,max_grad_norm=2,epochs=5"


@pytest.mark.parametrize(
    "text",
    [
        "top-k:0",
        "top-k:x",
        "top-k",
        "round:-1",
        "temperature:0",
        "temperature:inf",
        "label-only:2",
        "dp",
        "dp:epsilon=0",
        "dp:delta=0.1",
        "dp:epsilon=1,delta=2",
        "dp:epsilon=1,epochs=0.5",
        "dp:epsilon=1,noise=3",
        "blur:3",
        "",
    ],
)
def test_bad_defences_name_the_syntax(text: str) -> None:
    with pytest.raises(InputError, match="top-k:K"):
        parse_defence(text)


def test_a_defence_listed_twice_is_refused() -> None:
    with pytest.raises(InputError, match="twice"):
        PrivacySettings(defences=parse_defences(["top-k:1", "top-k: 1"]))


def test_members_need_non_members() -> None:
    with pytest.raises(UsageError, match="give both members"):
        PrivacySettings(members=RECORDS)
    with pytest.raises(UsageError, match="non_members alone"):
        PrivacySettings(non_members=RECORDS)
    assert PrivacySettings(members=RECORDS, non_members=RECORDS).measures_membership
    assert not PrivacySettings().measures_membership


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([np.zeros((2, 3)), np.zeros(2)], "pair"),
        ((np.zeros((3, 3)), np.zeros(2)), "one class index per input"),
        ((np.zeros((0, 3)), np.zeros(0)), "empty"),
    ],
)
def test_records_must_be_labelled_pairs(records: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        PrivacySettings(members=records, non_members=RECORDS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_reference": 0}, "n_reference"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"attacks": ()}, "attacks is empty"),
        ({"reference_mode": "sideways"}, "reference_mode"),
        ({"confidence": 1.0}, "confidence"),
        ({"n_exposed": -1}, "n_exposed"),
        ({"attribute_feature": -2}, "attribute_feature"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        PrivacySettings(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "telepathy"}, "unknown inversion method"),
        ({"steps": 0}, "steps"),
        ({"classes": ()}, "classes is empty"),
        ({"classes": (1, -1)}, "class indices"),
        ({"reference": (np.zeros((2, 3)), np.zeros(3))}, "inversion reference"),
    ],
)
def test_bad_inversion_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        InversionSettings(**options)  # type: ignore[arg-type]


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "usertrain.py").write_text(
        textwrap.dedent(
            """
            from sklearn.linear_model import LinearRegression, LogisticRegression

            ESTIMATOR = LogisticRegression()
            REGRESSOR = LinearRegression()
            NOT_A_FUNCTION = 3

            def train(x, y, seed):
                return LogisticRegression(random_state=seed).fit(x, y)
            """
        )
    )
    (tmp_path / "explodes.py").write_text("raise RuntimeError('import-time failure')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "usertrain", raising=False)
    return tmp_path


def test_train_fn_is_imported_from_the_current_folder(user_folder: Path) -> None:
    train = load_train_fn("usertrain:train")
    model = train(np.eye(4, dtype=np.float32), np.array([0, 1, 0, 1]), 0)
    assert model.predict(np.eye(4)).shape == (4,)
    assert pickle.loads(pickle.dumps(train)) is train  # by reference: workers can import it


def test_an_estimator_is_used_as_it_is(user_folder: Path) -> None:
    assert type(load_train_fn("usertrain:ESTIMATOR")).__name__ == "LogisticRegression"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("usertrain", "must look like package.module:function"),
        ("no_such_module_here:train", "cannot import no_such_module_here"),
        ("explodes:train", "raised RuntimeError: import-time failure"),
        ("usertrain:missing", "usertrain has no missing"),
        ("usertrain:NOT_A_FUNCTION", "is a int, not a function"),
        ("usertrain:REGRESSOR", "not a classifier"),
    ],
)
def test_bad_train_fn_specs_say_what_is_wrong(user_folder: Path, spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_train_fn(spec)


def test_cache_dir_must_not_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        resolve_cache_dir(tmp_path / "file")
    assert resolve_cache_dir(tmp_path / "new") == tmp_path / "new"
    assert resolve_cache_dir(None) is None
