"""Output hardening: what each wrapper shows, that the model's decision never changes (property
tests), that queries are counted once against the wrapped target's budget, and bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlwarden.defenses.output import LabelOnly, Rounding, Temperature, TopK, harden
from mlwarden.errors import InputError, QueryBudgetExceeded, UsageError
from mlwarden.targets import target
from mlwarden.targets.base import Target


def table_target(scores: np.ndarray, *, query_budget: int | None = None) -> Target:
    """A black-box target answering row ``i`` of `scores` for the input ``[i]``."""
    table = np.asarray(scores, dtype=np.float32)
    return target(
        lambda x: table[x[:, 0].astype(np.int64)],
        input_shape=(1,),
        n_classes=table.shape[1],
        output="probabilities",
        input_range=(0.0, float(max(len(table) - 1, 1))),
        query_budget=query_budget,
    )


def rows_of(target_: Target, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)[:, None]


PROBS = np.array(
    [
        [0.05, 0.60, 0.25, 0.10],
        [0.499, 0.501, 0.0, 0.0],
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.0, 0.3, 0.7],
    ],
    dtype=np.float32,
)


# -- the decision never changes (property) ----------------------------------------------------


@st.composite
def probability_tables(draw: st.DrawFn) -> np.ndarray:
    """Rows of class scores: normalised, often with exact ties, sometimes all zero."""
    n_classes = draw(st.integers(2, 12))
    n_rows = draw(st.integers(1, 12))
    coarse = draw(st.booleans())
    if coarse:  # small integers make ties and zero rows common
        raw = draw(arrays(np.float64, (n_rows, n_classes), elements=st.integers(0, 4)))
    else:
        raw = draw(
            arrays(
                np.float64,
                (n_rows, n_classes),
                elements=st.floats(0.0, 1.0, allow_subnormal=False),
            )
        )
    total = raw.sum(axis=1, keepdims=True)
    return np.asarray(np.where(total > 0, raw / np.where(total > 0, total, 1), 0.0))


@st.composite
def defences(draw: st.DrawFn, n_classes: int) -> dict[str, object]:
    options: dict[str, object] = {}
    if draw(st.booleans()):
        options["top_k"] = draw(st.integers(1, n_classes))
    if draw(st.booleans()):
        options["decimals"] = draw(st.integers(0, 6))
    if draw(st.booleans()):
        options["temperature"] = draw(st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False))
    if not options or draw(st.integers(0, 5)) == 0:
        options["label_only"] = True
    return options


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_defence_ever_changes_the_predicted_class(data: st.DataObject) -> None:
    table = data.draw(probability_tables())
    options = data.draw(defences(table.shape[1]))
    inner = table_target(table)
    x = rows_of(inner, len(table))
    defended = harden(inner, **options)  # type: ignore[arg-type]

    answer = defended.predict_proba(x)
    assert np.array_equal(defended.predict(x), inner.predict(x))
    assert np.isfinite(answer).all() and answer.min() >= 0.0
    assert np.allclose(answer.sum(axis=1), 1.0, atol=1e-5)


@settings(max_examples=80, deadline=None)
@given(table=probability_tables(), k=st.integers(1, 12))
def test_top_k_keeps_at_most_k_classes_including_the_decision(table: np.ndarray, k: int) -> None:
    inner = table_target(table)
    x = rows_of(inner, len(table))
    k = min(k, table.shape[1])
    answer = TopK(inner, k).predict_proba(x)

    assert ((answer > 0).sum(axis=1) <= k).all()
    assert np.array_equal(answer.argmax(axis=1), inner.predict(x))


@settings(max_examples=80, deadline=None)
@given(table=probability_tables(), decimals=st.integers(0, 4))
def test_rounding_reveals_no_more_than_the_rounded_row(table: np.ndarray, decimals: int) -> None:
    inner = table_target(table)
    x = rows_of(inner, len(table))
    answer = Rounding(inner, decimals).predict_proba(x)
    probs = inner.predict_proba(x)

    # rows that round alike answer alike: nothing finer than 10**-decimals gets through
    rounded = np.round(probs.astype(np.float64), decimals)
    for i in range(len(table)):
        for j in range(len(table)):
            same_rounding = np.array_equal(rounded[i], rounded[j])
            same_decision = probs[i].argmax() == probs[j].argmax()
            if same_rounding and same_decision:
                assert np.array_equal(answer[i], answer[j])


# -- what each wrapper shows --------------------------------------------------------------------


def test_top_k_renormalises_the_kept_probabilities():
    inner = table_target(PROBS)
    answer = TopK(inner, 2).predict_proba(rows_of(inner, 4))

    assert answer[0] == pytest.approx([0.0, 0.60 / 0.85, 0.25 / 0.85, 0.0], abs=1e-6)
    assert answer[2] == pytest.approx([0.5, 0.5, 0.0, 0.0])  # ties: the lowest classes kept


def test_rounding_keeps_a_strict_lead_and_renormalises():
    inner = table_target(PROBS)
    answer = Rounding(inner, 1).predict_proba(rows_of(inner, 4))

    assert answer[0] == pytest.approx([0.1, 0.6, 0.2, 0.1], abs=1e-6)  # 0.25: half to even
    # 0.499 and 0.501 both round to 0.5: the loser is rounded one step lower
    assert answer[1] == pytest.approx(np.array([0.4, 0.5, 0.0, 0.0]) / 0.9, abs=1e-6)
    assert answer[1].argmax() == 1


def test_rounding_a_row_to_all_zeros_answers_one_hot_of_the_decision():
    spread = np.full((1, 10), 0.1, dtype=np.float32)
    spread[0, 6] = 0.1 + 1e-3
    spread /= spread.sum()
    inner = table_target(spread)
    answer = Rounding(inner, 0).predict_proba(rows_of(inner, 1))

    assert answer.tolist() == [[0, 0, 0, 0, 0, 0, 1, 0, 0, 0]]


def test_label_only_answers_one_hot_labels():
    inner = table_target(PROBS)
    defended = LabelOnly(inner)
    answer = defended.predict_proba(rows_of(inner, 4))

    assert defended.output == "labels"
    assert answer.tolist() == np.eye(4)[[1, 1, 0, 3]].tolist()


def test_temperature_one_changes_nothing_and_others_flatten_or_sharpen():
    inner = table_target(PROBS[:1])
    x = rows_of(inner, 1)

    def entropy(p: np.ndarray) -> float:
        return float(-(p * np.log(np.maximum(p, 1e-30))).sum())

    assert Temperature(inner, 1.0).predict_proba(x) == pytest.approx(PROBS[:1], abs=1e-6)
    hot = Temperature(inner, 5.0).predict_proba(x)[0]
    cold = Temperature(inner, 0.2).predict_proba(x)[0]
    assert entropy(cold) < entropy(PROBS[0]) < entropy(hot)
    expected = PROBS[0] ** (1 / 5.0) / (PROBS[0] ** (1 / 5.0)).sum()
    assert hot == pytest.approx(expected, abs=1e-6)


def test_extreme_temperature_keeps_the_decision_despite_float_ties():
    inner = table_target(PROBS[1:2])  # 0.499 against 0.501
    answer = Temperature(inner, 1e6).predict_proba(rows_of(inner, 1))

    assert answer[0, 0] == pytest.approx(answer[0, 1])  # flattened to a float32 tie ...
    assert answer.argmax(axis=1).tolist() == [1]  # ... that still shows the decision first


def test_harden_applies_temperature_then_top_k_then_rounding():
    inner = table_target(PROBS)
    x = rows_of(inner, 4)
    chained = Rounding(TopK(Temperature(inner, 2.0), 2), 2).predict_proba(x)

    assert np.array_equal(
        harden(inner, temperature=2.0, top_k=2, decimals=2).predict_proba(x), chained
    )


# -- queries, budgets, gradients -----------------------------------------------------------


def test_queries_are_counted_once_by_the_wrapped_target():
    inner = table_target(PROBS)
    defended = harden(inner, top_k=2, decimals=1, temperature=3.0, label_only=True)
    defended.predict_proba(rows_of(inner, 4))
    defended.predict(rows_of(inner, 3))

    assert inner.queries == defended.queries == 7
    with defended.unmetered():
        defended.predict_proba(rows_of(inner, 4))
    assert inner.queries == 7
    defended.queries = 0
    assert inner.queries == 0


def test_the_wrapped_targets_budget_holds_through_the_wrapper():
    inner = table_target(PROBS, query_budget=5)
    defended = TopK(inner, 1)
    defended.predict_proba(rows_of(inner, 4))

    assert defended.query_budget == 5
    with pytest.raises(QueryBudgetExceeded):
        defended.predict_proba(rows_of(inner, 2))
    assert inner.queries == 4


def test_hardened_torch_model_is_black_box():
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(3, 4)
    white = target(model, input_shape=(3,))
    defended = harden(white, decimals=2)

    assert white.white_box and not defended.white_box
    assert not hasattr(defended, "logits")
    x = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    assert np.array_equal(defended.predict(x), white.predict(x))
    assert white.queries == 40


def test_wrapper_accepts_anything_target_wraps():
    linear_model = pytest.importorskip("sklearn.linear_model")
    x = np.array([[0.1], [0.2], [0.8], [0.9]], dtype=np.float32)
    model = linear_model.LogisticRegression().fit(x, [0, 0, 1, 1])
    defended = harden(model, label_only=True)

    assert defended.n_classes == 2 and defended.output == "labels"
    assert defended.predict(x).tolist() == [0, 0, 1, 1]
    assert defended.queries == 4


def test_wrapper_rejects_inputs_of_the_wrong_shape():
    inner = table_target(PROBS)
    with pytest.raises(InputError, match="expects"):
        TopK(inner, 1).predict_proba(np.zeros((2, 3), dtype=np.float32))


# -- bad parameters ----------------------------------------------------------------------------


def test_harden_without_a_defence_is_a_usage_error():
    with pytest.raises(UsageError, match="at least one defence"):
        harden(table_target(PROBS))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_k": 0}, "top_k must be in"),
        ({"top_k": 5}, "top_k must be in"),
        ({"top_k": "2"}, "whole number"),
        ({"top_k": True}, "whole number"),
        ({"decimals": -1}, "decimals must be >= 0"),
        ({"decimals": 1.5}, "whole number"),
        ({"temperature": 0.0}, "temperature must be"),
        ({"temperature": float("nan")}, "temperature must be"),
        ({"temperature": float("inf")}, "temperature must be"),
        ({"temperature": "hot"}, "temperature must be a number"),
    ],
)
def test_bad_parameters_are_refused(options, message):
    with pytest.raises(InputError, match=message):
        harden(table_target(PROBS), **options)


def test_temperature_on_a_label_only_target_is_refused():
    with pytest.raises(InputError, match="labels only"):
        Temperature(LabelOnly(table_target(PROBS)), 2.0)
