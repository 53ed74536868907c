"""Reports built by hand for the renderer tests: a typical one, a hostile one and an empty one."""

from __future__ import annotations

from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.report.model import ErrorEntry, Figure, NotAssessed, Report, ScannedFile

CALL_CHAIN = "builtins.getattr(builtins.__import__('os'), 'system')('touch marker')"
FIXED_CREATED = "2025-01-02T03:04:05+00:00"

HOSTILE = "<script>alert('x')</script> | `tick` [bold red]markup[/] @everyone \x1b[2J\u202e"
"""A string a scanned file could carry: HTML, Markdown table and code breakers, rich markup,
a GitHub mention, a terminal escape and a right-to-left override."""

TINY_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
    "awAAAABJRU5ErkJggg=="
)


def critical_pickle_call() -> Finding:
    return Finding(
        risk=Risk.ML06,
        check="ml06.model_files",
        rule="pickle.dangerous-call",
        severity=Severity.CRITICAL,
        title="Pickle calls os.system when loaded",
        detail="REDUCE calls builtins.getattr on the result of __import__('os').",
        location=Location("models/model.pt", member="archive/data.pkl", offset=57),
        evidence={"call": CALL_CHAIN, "opcode": "REDUCE", "globals": ["builtins.getattr"]},
        remediation="Do not load this file. Re-export the weights as safetensors.",
    )


def medium_auto_map() -> Finding:
    return Finding(
        risk=Risk.ML06,
        check="ml06.model_files",
        rule="hf.auto-map",
        severity=Severity.MEDIUM,
        title="config.json loads custom code through auto_map",
        detail="AutoModel resolves to modeling_custom.MyModel, shipped beside the weights.",
        location=Location("models/config.json", line=12, column=5),
        evidence={"auto_map": {"AutoModel": "modeling_custom.MyModel"}},
        remediation="Review modeling_custom.py; load with trust_remote_code=False.",
    )


def info_zip_flags() -> Finding:
    return Finding(
        risk=Risk.ML06,
        check="ml06.model_files",
        rule="zip.odd-flags",
        severity=Severity.INFO,
        title="Zip entry has unusual flags",
        location=Location("models/weights.zip", member="inner.tar!data.bin", offset=0),
        evidence={"flags": 8, "ratio": float("nan")},
        remediation="Nothing to do unless the archive was not expected.",
    )


def scanned_inventory() -> list[ScannedFile]:
    return [
        ScannedFile("models/model.pt", None, "pytorch-zip", 2048, Severity.CRITICAL),
        ScannedFile("models/model.pt", "archive/data.pkl", "pickle", 700, Severity.CRITICAL),
        ScannedFile("models/config.json", None, "hf-config", 321, Severity.MEDIUM),
        ScannedFile("models/weights.zip", None, "zip", 4096, Severity.INFO),
        ScannedFile("models/weights.zip", "inner.tar", "tar", 3072, Severity.INFO),
        ScannedFile("models/weights.zip", "inner.tar!data.bin", "unknown", 1000, Severity.INFO),
        ScannedFile("models/README.md", None, "unknown", 12, None),
    ]


def build_sample_report() -> Report:
    return Report(
        findings=[info_zip_flags(), critical_pickle_call(), medium_auto_map()],
        scanned=scanned_inventory(),
        errors=[ErrorEntry("models/broken.7z", "cannot open: bad 7z header")],
        checks_run=["ml06.model_files"],
        risks_assessed={"ml06.model_files": [Risk.ML06]},
        not_assessed=[NotAssessed("ml01.evasion", (Risk.ML01,), "needs target, data")],
        metrics={"files": 4, "items": 7, "recognised": 5, "policy": "built-in"},
        figures=[
            Figure(
                "svg-1",
                "A bar",
                "svg",
                '<svg xmlns="http://www.w3.org/2000/svg" '
                'width="10" height="10"><rect width="10" height="10"/></svg>',
                Risk.ML06,
            ),
            Figure("png-1", "A dot", "png", TINY_PNG_BASE64, None, "one pixel"),
        ],
        inputs=["models/"],
        created=FIXED_CREATED,
        duration_s=0.25,
    )


def build_hostile_report() -> Report:
    finding = Finding(
        risk=Risk.ML06,
        check="ml06.model_files",
        rule="pickle.dangerous-call",
        severity=Severity.CRITICAL,
        title=f"Pickle calls {HOSTILE}",
        detail=f"detail {HOSTILE}",
        location=Location(f"models/{HOSTILE}.pt", member=f"archive/{HOSTILE}", offset=3),
        evidence={"call": f"os.system('{HOSTILE}')", HOSTILE: HOSTILE},
        remediation=f"fix {HOSTILE}",
    )
    return Report(
        findings=[finding],
        scanned=[
            ScannedFile(
                f"models/{HOSTILE}.pt", f"archive/{HOSTILE}", "pickle", 10, Severity.CRITICAL
            )
        ],
        errors=[ErrorEntry(f"models/{HOSTILE}", f"error {HOSTILE}", member=HOSTILE)],
        checks_run=["ml06.model_files"],
        risks_assessed={"ml06.model_files": [Risk.ML06]},
        not_assessed=[NotAssessed("ml01.evasion", (Risk.ML01,), f"reason {HOSTILE}")],
        inputs=[HOSTILE],
        created=FIXED_CREATED,
    )
