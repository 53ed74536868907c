"""A privacy report renders in every format: figures in HTML, tables in Markdown, valid JSON and
SARIF carrying the privacy rules."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import numpy as np
import pytest

import mlwarden.targets
from mlwarden.audit.registry import get_check
from mlwarden.audit.runner import record_result
from mlwarden.privacy.check import (
    INVERSION_CHECK,
    MEMBERSHIP_CHECK,
    assess_inversion,
    assess_membership,
)
from mlwarden.privacy.defences import defence_row
from mlwarden.privacy.results import DefenceComparison
from mlwarden.report import render
from mlwarden.report.model import Report

from .samples import inversion_result, membership_audit, outcome, reconstruction


@pytest.fixture(scope="module")
def report() -> Report:
    deployed = membership_audit(
        outcome("lira-offline", tpr_low=0.04, auc=0.85, epsilon_lower=2.1),
        outcome("loss", tpr_low=0.002, auc=0.7),
        n_non_members=2000,
    )
    defended = membership_audit(outcome("loss", tpr_low=0.001, auc=0.52), non_member_accuracy=0.8)
    comparison = DefenceComparison(
        baseline=defence_row("none", deployed, 0.8),
        rows=(defence_row("label-only", defended, 0.8),),
    )
    target = mlwarden.targets.target(
        lambda x: np.full((len(x), 10), 0.1, np.float32),
        input_shape=(1, 8, 8),
        n_classes=10,
        name="digits <cnn>",
    )
    inverted = inversion_result(
        reconstruction(0, confidence=0.99, distance=1.0, baseline=2.0),
        reconstruction(1, confidence=0.3, distance=3.0, baseline=2.0),
    )
    x = np.random.default_rng(0).random((10, 1, 8, 8)).astype(np.float32)
    built = Report()
    record_result(
        built,
        get_check(MEMBERSHIP_CHECK),
        assess_membership(deployed, name="digits <mlp>", comparison=comparison),
    )
    record_result(
        built,
        get_check(INVERSION_CHECK),
        assess_inversion(inverted, target=target, reference=(x, np.arange(10) % 2)),
    )
    return built


def test_html_embeds_the_roc_chart_and_inversion_grid_escaped(report: Report) -> None:
    html = render(report, "html")
    for figure_id in ("privacy-roc-digits-mlp", "privacy-defences-digits-mlp"):
        assert f'id="{figure_id}-title"' in html
    assert "privacy-inversion-grid-digits-cnn" in html
    assert "data:image/png;base64," in html
    assert "<cnn>" not in html and "&lt;cnn&gt;" in html
    assert "TPR @ 0.1% FPR" in html and "utility cost" in html


def test_markdown_shows_the_tables_and_findings(report: Report) -> None:
    text = render(report, "markdown")
    assert "membership.low-fpr-leak" in text and "inversion.class-reconstructed" in text
    assert "epsilon lower bound" in text and "member index" in text


def test_json_is_valid_against_the_schema(report: Report) -> None:
    document = json.loads(render(report, "json"))
    schema = json.loads(
        resources.files("mlwarden.report").joinpath("schema/report.schema.json").read_text()
    )
    jsonschema.validate(document, schema)
    rules = {f["rule"] for f in document["findings"]}
    assert rules == {
        "membership.low-fpr-leak",
        "membership.epsilon",
        "inversion.class-reconstructed",
    }
    assert document["metrics"]["ml04.membership"]["defence_results"][1]["defence"] == "label-only"


def test_sarif_names_each_privacy_rule(report: Report) -> None:
    sarif = json.loads(render(report, "sarif"))
    rules = {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert {
        "membership.low-fpr-leak",
        "membership.epsilon",
        "inversion.class-reconstructed",
    } <= rules


def test_console_names_both_risks(report: Report) -> None:
    text = render(report, "console")
    assert "Membership Inference Attack" in text and "Model Inversion Attack" in text
