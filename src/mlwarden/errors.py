"""Errors a user can cause, each with a message that says what to do.

The CLI prints these as one line and exits with `exit_code`; anything else escaping is a bug.
"""

from __future__ import annotations


class MlwardenError(Exception):
    """Base class of every error mlwarden raises on purpose."""

    exit_code = 2


class UsageError(MlwardenError):
    """The command or call was malformed: a missing file, a bad flag value, a bad policy file."""

    exit_code = 4


class PolicyError(UsageError):
    """A policy file could not be read or says something that makes no sense."""


class ConfigError(UsageError):
    """An audit plan (``audit.yaml``) is invalid."""


class ScanError(MlwardenError):
    """Scanning could not be completed (I/O failure, internal error)."""


class InputError(UsageError):
    """Data or parameters given to an attack are invalid (shape, NaN, range, labels, eps)."""


class TargetError(MlwardenError):
    """The model under test failed: it raised, timed out, or answered something unusable."""


class QueryBudgetExceeded(TargetError):
    """The target's query budget is spent; attacks stop and return what they found so far."""


class IntegrityError(MlwardenError):
    """A model could not be hashed, signed or verified (unreadable file, refused link, bad key)."""


class VerificationError(IntegrityError):
    """A signature did not verify: the model, signature or signer is not what was trusted."""

    exit_code = 1
