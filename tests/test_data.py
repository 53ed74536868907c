"""load_data and save_adversarial: evaluation data in, adversarial examples out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlwarden.attacks.evasion.base import AttackResult, ThreatModel
from mlwarden.data import load_data, save_adversarial
from mlwarden.errors import InputError

X = np.random.default_rng(0).uniform(size=(6, 3)).astype(np.float32)
Y = np.array([0, 1, 2, 1, 0, 2])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- .npz ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_key", "y_key"), [("x", "y"), ("X", "y"), ("data", "labels"), ("inputs", "targets")]
)
def test_npz_conventional_keys_are_found(tmp_path: Path, x_key: str, y_key: str) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **{x_key: X.astype(np.float64), y_key: Y.astype(np.int32)})
    x, y = load_data(path)
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)


def test_npz_named_keys(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, images=X, classes=Y)
    x, y = load_data(path, x_key="images", y_key="classes")
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)
    with pytest.raises(
        InputError, match="no inputs under x, X, data, inputs \\(keys: images, classes\\)"
    ):
        load_data(path)
    with pytest.raises(
        InputError, match="no key 'labels' for the labels; its keys: images, classes"
    ):
        load_data(path, x_key="images", y_key="labels")
    with pytest.raises(InputError, match="no labels under y, Y, labels, targets"):
        load_data(path, x_key="images")


def test_npz_labels_can_come_from_a_separate_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=X)
    write(tmp_path / "labels.txt", "label\n" + "\n".join(map(str, Y)) + "\n")
    _, y = load_data(tmp_path / "d.npz", labels=tmp_path / "labels.txt")
    np.testing.assert_array_equal(y, Y)


def test_npz_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.array([{"a": 1}] * 6, dtype=object), y=Y)
    with pytest.raises(InputError, match="Python objects, which mlwarden never unpickles"):
        load_data(path)


# -- .npy ------------------------------------------------------------------------------------


def test_npy_inputs_with_npy_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", X.reshape(6, 1, 3))
    np.save(tmp_path / "y.npy", Y.astype(np.float64))
    x, y = load_data(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    assert x.shape == (6, 1, 3)
    np.testing.assert_array_equal(y, Y)


def test_npy_inputs_need_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(InputError, match="holds inputs only; give the labels file"):
        load_data(tmp_path / "x.npy")


def test_npy_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.array([object()] * 3, dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", Y[:3])
    with pytest.raises(InputError, match="never unpickles"):
        load_data(tmp_path / "x.npy", labels=tmp_path / "y.npy")


# -- .csv ------------------------------------------------------------------------------------


def test_csv_with_header_and_label_last(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b,c,label\n1,2,3,0\n4,5,6,1\n")
    x, y = load_data(path)
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(y, [0, 1])


def test_csv_without_header(tmp_path: Path) -> None:
    x, y = load_data(write(tmp_path / "d.csv", "0.5,1.5,1\n2.5,3.5,0\n"))
    np.testing.assert_allclose(x, [[0.5, 1.5], [2.5, 3.5]])
    np.testing.assert_array_equal(y, [1, 0])


@pytest.mark.parametrize("column", ["label", 0, "0", -3])
def test_csv_label_column_by_name_or_index(tmp_path: Path, column: int | str) -> None:
    path = write(tmp_path / "d.csv", "label,a,b\n2,1,1\n0,3,4\n")
    x, y = load_data(path, label_column=column)
    np.testing.assert_array_equal(x, [[1, 1], [3, 4]])
    np.testing.assert_array_equal(y, [2, 0])


def test_csv_unknown_label_column_lists_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b\n1,0\n")
    with pytest.raises(InputError, match="no column 'class' \\(a, b\\)"):
        load_data(path, label_column="class")
    with pytest.raises(InputError, match="label column 5 is outside the 2 columns"):
        load_data(path, label_column=5)


def test_csv_non_numeric_cell_names_row_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "age,income,label\n30,100,0\n41,lots,1\n")
    with pytest.raises(InputError, match=r"line 3, column 2 \(income\): 'lots' is not a number"):
        load_data(path)


def test_csv_string_labels_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,label\n1,cat\n")
    with pytest.raises(
        InputError, match="line 2 \\(label\\): label 'cat' is not an integer class index"
    ):
        load_data(path)


def test_csv_ragged_rows_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="line 3 has 2 columns; expected 3"):
        load_data(write(tmp_path / "d.csv", "a,b,label\n1,2,0\n1,0\n"))


def test_tsv_is_read_too(tmp_path: Path) -> None:
    x, y = load_data(write(tmp_path / "d.tsv", "a\tb\tlabel\n1\t2\t1\n"))
    np.testing.assert_array_equal(x, [[1, 2]])
    np.testing.assert_array_equal(y, [1])


# -- bad data ----------------------------------------------------------------------------------


def test_nan_inputs_say_how_many_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b,label\n1,nan,0\n2,3,1\nnan,inf,1\n")
    with pytest.raises(InputError, match=r"2 samples in .* contain NaN or infinite values"):
        load_data(path)


def test_mismatched_lengths(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=X, y=Y[:4])
    with pytest.raises(InputError, match="6 inputs but 4 labels"):
        load_data(tmp_path / "d.npz")


def test_non_integer_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=X, y=Y + 0.5)
    with pytest.raises(InputError, match=r"6 labels in .* are not integer class indices"):
        load_data(tmp_path / "d.npz")


def test_empty_inputs(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((0, 3)), y=np.zeros(0, dtype=int))
    with pytest.raises(InputError, match="holds no samples"):
        load_data(tmp_path / "d.npz")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="is empty"):
        load_data(tmp_path / "empty.csv")
    with pytest.raises(InputError, match="has a header but no samples"):
        load_data(write(tmp_path / "h.csv", "a,b,label\n"))


def test_inputs_need_a_sample_dimension(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=X[:, 0], y=Y)
    with pytest.raises(InputError, match=r"expected \(n_samples, features\.\.\.\)"):
        load_data(tmp_path / "d.npz")


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no data file at"):
        load_data(tmp_path / "absent.npz")
    (tmp_path / "d.parquet").write_bytes(b"PAR1....")
    with pytest.raises(InputError, match=r"not an \.npz, \.npy or \.csv file"):
        load_data(tmp_path / "d.parquet")


def test_limit_keeps_the_first_samples(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    x, y = load_data(tmp_path / "d.npz", limit=2)
    np.testing.assert_array_equal(x, X[:2])
    np.testing.assert_array_equal(y, Y[:2])
    for bad in (0, -1, 1.5):
        with pytest.raises(InputError, match="limit must be a positive number"):
            load_data(tmp_path / "d.npz", limit=bad)  # type: ignore[arg-type]


# -- save_adversarial ---------------------------------------------------------------------------


def attack_result(targeted: bool = False) -> AttackResult:
    x_adv = np.clip(X + 0.05, 0, 1)
    return AttackResult(
        attack="fgsm",
        threat=ThreatModel(norm="linf", eps=0.05, input_range=(0.0, 1.0)),
        x=X,
        y=Y,
        x_adv=x_adv,
        success=np.array([True, False, True, True, False, False]),
        predictions=np.array([1, 1, 0, 0, 0, 2]),
        confidence=np.full(6, 0.9, dtype=np.float32),
        clean_predictions=Y,
        clean_confidence=np.full(6, 0.8, dtype=np.float32),
        norms=np.abs(x_adv - X).max(axis=1),
        queries=12,
        elapsed_s=0.1,
        y_target=np.array([1, 2, 0, 0, 1, 1]) if targeted else None,
    )


def test_save_adversarial_writes_every_array(tmp_path: Path) -> None:
    result = attack_result()
    written = save_adversarial(tmp_path / "adv.npz", result)
    with np.load(written, allow_pickle=False) as saved:
        assert sorted(saved.files) == ["norms", "predictions", "success", "x", "x_adv", "y"]
        for key in saved.files:
            np.testing.assert_array_equal(saved[key], getattr(result, key))
    assert [p.name for p in tmp_path.iterdir()] == ["adv.npz"]


def test_save_adversarial_keeps_target_labels_of_targeted_attacks(tmp_path: Path) -> None:
    result = attack_result(targeted=True)
    with np.load(save_adversarial(tmp_path / "adv.npz", result)) as saved:
        np.testing.assert_array_equal(saved["y_target"], result.y_target)


def test_save_adversarial_never_leaves_a_half_written_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "adv.npz"
    target.write_bytes(b"previous results")

    def fails_half_way(file: Any, **arrays: Any) -> None:
        file.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fails_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_adversarial(target, attack_result())
    assert target.read_bytes() == b"previous results"
    assert [p.name for p in tmp_path.iterdir()] == ["adv.npz"]


def test_save_adversarial_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist; create it first"):
        save_adversarial(tmp_path / "missing" / "adv.npz", attack_result())


def test_save_adversarial_refuses_a_folder_as_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder; give a file name"):
        save_adversarial(tmp_path, attack_result())


def test_save_adversarial_creates_files_like_any_other(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    written = save_adversarial(tmp_path / "adv.npz", attack_result())
    assert written.stat().st_mode & 0o777 == 0o666 & ~umask
