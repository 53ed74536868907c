"""Build the `AuditContext` an audit plan describes: load its model and data, read its settings.

`context_from_plan` is the one place where a validated `AuditPlan` becomes live objects. The
model loader (which needs torch, onnxruntime or scikit-learn for the file at hand) and the data
loader are imported only when the plan names a model or data, so a plan that only scans files
loads no framework. Not for: validating the plan (`mlwarden.audit.plan`) or running checks
(`mlwarden.audit.runner`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwarden.audit.plan import AuditPlan, DataPlan, EvasionPlan, ModelPlan, PrivacyPlan
from mlwarden.audit.runner import AuditContext, ProgressFn

if TYPE_CHECKING:
    import numpy as np

    from mlwarden.evaluate.check import EvasionSettings
    from mlwarden.privacy.settings import PrivacySettings
    from mlwarden.scan.policy import Policy
    from mlwarden.targets.base import Target


def context_from_plan(plan: AuditPlan, *, progress: ProgressFn | None = None) -> AuditContext:
    """The context for `plan`: scan paths and policy, the model as a target, the data, the
    evasion and privacy settings; sections the plan leaves out stay None (their checks are not
    assessed).

    Raises:
        UsageError: a model or data file is missing or cannot be loaded (from the loaders), or
            the scan policy file is invalid.
    """
    policy = _policy(plan)
    jobs = plan.scan.jobs if plan.scan is not None else 1
    return AuditContext(
        paths=list(plan.scan.paths) if plan.scan is not None else None,
        policy=policy,
        jobs=jobs,
        progress=progress,
        target=None if plan.model is None else load_model(plan.model, policy=policy),
        data=None if plan.data is None else load_samples(plan.data),
        evasion=None if plan.evasion is None else evasion_settings(plan.evasion),
        privacy=None if plan.privacy is None else privacy_settings(plan.privacy, jobs=jobs),
    )


def load_model(model: ModelPlan, *, policy: Policy | None = None) -> Target:
    """The target a plan's ``model:`` section names; the file is vetted with `policy` first."""
    from mlwarden.targets.loading import load_target

    http: dict[str, Any] = {} if model.http is None else model.http.model_dump(exclude_none=True)
    return load_target(
        model.path,
        factory=model.factory,
        input_shape=None if model.input_shape is None else tuple(model.input_shape),
        n_classes=model.n_classes,
        input_range=model.input_range,
        mean=model.mean,
        std=model.std,
        model_output=model.model_output,
        query_budget=model.query_budget,
        policy=policy,
        **http,
    )


def load_samples(data: DataPlan) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (float32) and labels (int64) from a plan's ``data:`` section."""
    from mlwarden.data import load_data

    return load_data(
        data.path,
        labels=data.labels,
        x_key=data.x_key,
        y_key=data.y_key,
        label_column=data.label_column,
        limit=data.limit,
    )


def evasion_settings(evasion: EvasionPlan) -> EvasionSettings:
    """The ``ml01.evasion`` check's settings from a plan's ``evasion:`` section."""
    from mlwarden.evaluate.check import EvasionSettings

    return EvasionSettings(
        norm=evasion.norm,
        eps=None if evasion.eps is None else tuple(evasion.eps),
        suite=evasion.suite,
        attacks=None if evasion.attacks is None else tuple(evasion.attacks),
        n_samples=evasion.n_samples,
        seed=evasion.seed,
        sanity_checks=evasion.sanity_checks,
    )


def privacy_settings(privacy: PrivacyPlan, *, jobs: int = 1) -> PrivacySettings:
    """The privacy checks' settings from a plan's ``privacy:`` section: its records loaded,
    its ``train_fn`` imported (from the current folder), its defences parsed. `jobs` is used
    when the section gives none."""
    from mlwarden.privacy.settings import (
        InversionSettings,
        PrivacySettings,
        PrivacyThresholds,
        load_train_fn,
        parse_defences,
    )

    inversion = privacy.inversion
    return PrivacySettings(
        members=None if privacy.members is None else load_samples(privacy.members),
        non_members=None if privacy.non_members is None else load_samples(privacy.non_members),
        population=None if privacy.population is None else load_samples(privacy.population),
        train_fn=None if privacy.train_fn is None else load_train_fn(privacy.train_fn),
        attacks=None if privacy.attacks is None else tuple(privacy.attacks),
        n_reference=privacy.n_reference,
        reference_mode=privacy.reference_mode,
        cache_dir=privacy.cache_dir,
        n_jobs=privacy.jobs if privacy.jobs is not None else jobs,
        dask=privacy.dask,
        seed=privacy.seed,
        defences=parse_defences(privacy.defences),
        n_exposed=privacy.n_exposed,
        confidence=privacy.confidence,
        inversion=(
            InversionSettings(
                classes=None if inversion.classes is None else tuple(inversion.classes),
                method=inversion.method,
                steps=inversion.steps,
                reference=(
                    None if inversion.reference is None else load_samples(inversion.reference)
                ),
                seed=inversion.seed,
            )
            if inversion.enabled
            else None
        ),
        attribute_feature=None if privacy.attribute is None else privacy.attribute.feature,
        attribute_values=(
            None
            if privacy.attribute is None or privacy.attribute.values is None
            else tuple(privacy.attribute.values)
        ),
        thresholds=PrivacyThresholds(**privacy.thresholds.model_dump()),
    )


def _policy(plan: AuditPlan) -> Policy | None:
    if plan.scan is None or plan.scan.policy is None:
        return None
    from mlwarden.scan.policy import Policy

    return Policy.from_file(plan.scan.policy)
