"""Fixtures for the renderer tests; the reports themselves are built in `report_samples`."""

from __future__ import annotations

import pytest
from report_samples import FIXED_CREATED, build_hostile_report, build_sample_report

from mlwarden.report.model import Report


@pytest.fixture
def sample_report() -> Report:
    return build_sample_report()


@pytest.fixture
def hostile_report() -> Report:
    return build_hostile_report()


@pytest.fixture
def empty_report() -> Report:
    return Report(created=FIXED_CREATED)
