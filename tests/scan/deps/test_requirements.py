"""Requirements files: pins, ranges, includes, URLs and everything pip allows in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.scan.deps.inputs import InputProblem
from mlwarden.scan.deps.inputs._text import MAX_DEPENDENCY_FILE_BYTES
from mlwarden.scan.deps.inputs.requirements import MAX_INCLUDE_DEPTH, parse, recognise

from .conftest import write


def read(folder: Path, text: str, name: str = "requirements.txt"):  # type: ignore[no-untyped-def]
    path = write(folder, name, text)
    return parse(path, str(path))


def by_name(parsed) -> dict:  # type: ignore[no-untyped-def]
    return {d.name: d for d in parsed.dependencies}


def test_pins_ranges_extras_markers_and_hashes(tmp_path: Path) -> None:
    parsed = read(
        tmp_path,
        "# comment line\n"
        "Torch==2.5.1 --hash=sha256:aaaa --hash=sha256:bbbb\n"
        "keras>=3.0,<4  # inline comment\n"
        "transformers[torch]~=4.30\n"
        'llama_cpp.python==0.2.50 ; sys_platform == "linux"\n'
        "numpy\n"
        "scipy===1.11.0-custom\n"
        "\n",
    )
    deps = by_name(parsed)
    assert deps["torch"].version == "2.5.1" and deps["torch"].line == 2
    assert deps["keras"].version is None and deps["keras"].specifier == "<4,>=3.0"
    assert deps["transformers"].specifier == "~=4.30"
    assert deps["llama-cpp-python"].version == "0.2.50"
    assert deps["llama-cpp-python"].marker == 'sys_platform == "linux"'
    assert deps["numpy"].version is None and deps["numpy"].specifier == ""
    assert deps["scipy"].version == "1.11.0-custom"
    assert parsed.errors == []


def test_wildcard_equality_is_a_range_not_a_pin(tmp_path: Path) -> None:
    deps = by_name(read(tmp_path, "torch==2.*\n"))
    assert deps["torch"].version is None and deps["torch"].specifier == "==2.*"


def test_continuation_lines_are_joined_like_pip(tmp_path: Path) -> None:
    parsed = read(
        tmp_path,
        "torch==2.5.1 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bb\nnumpy==1.26.0\n",
    )
    deps = by_name(parsed)
    assert deps["torch"].version == "2.5.1" and deps["torch"].line == 1
    assert deps["numpy"].line == 4


def test_includes_are_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path, "reqs/base.txt", "numpy==1.26.0\n-c ../constraints.txt\n")
    write(tmp_path, "constraints.txt", "torch==2.5.1\nunrelated==1.0\n")
    parsed = read(tmp_path, "-r reqs/base.txt\ntorch>=2\n--requirement=reqs/extra.txt\n")
    deps = by_name(parsed)
    assert deps["numpy"].source.endswith("base.txt")
    # the constraint's pin fixes the version of the required torch, at the constraint's line
    assert deps["torch"].version == "2.5.1" and deps["torch"].source.endswith("constraints.txt")
    assert "unrelated" not in deps
    assert any("extra.txt" in e.path for e in parsed.errors)  # it does not exist


def test_include_cycle_ends_and_is_noted(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "-r requirements.txt\nnumpy==1.0\n")
    parsed = read(tmp_path, "-r a.txt\ntorch==2.0\n")
    assert set(by_name(parsed)) == {"numpy", "torch"}
    assert any("already read" in s for s in parsed.skipped)
    assert parsed.errors == []


def test_self_include_ends(tmp_path: Path) -> None:
    parsed = read(tmp_path, "-r requirements.txt\ntorch==2.0\n")
    assert [d.name for d in parsed.dependencies] == ["torch"]


def test_too_deep_include_chain_is_an_error(tmp_path: Path) -> None:
    for level in range(MAX_INCLUDE_DEPTH + 2):
        write(tmp_path, f"r{level}.txt", f"-r r{level + 1}.txt\npkg{level}==1.0\n")
    parsed = read(tmp_path, "-r r0.txt\n")
    assert any("deeper than" in e.message for e in parsed.errors)


def test_missing_include_is_an_error_naming_it(tmp_path: Path) -> None:
    parsed = read(tmp_path, "-r nothere.txt\ntorch==2.0\n")
    assert [d.name for d in parsed.dependencies] == ["torch"]
    assert parsed.errors[0].path.endswith("nothere.txt")
    assert "included from" in parsed.errors[0].message


def test_remote_include_is_never_fetched(tmp_path: Path) -> None:
    parsed = read(tmp_path, "-r https://user:verysecrettoken@example.invalid/r.txt\n")
    assert "never fetched" in parsed.errors[0].message
    assert "verysecrettoken" not in parsed.errors[0].message


def test_urls_and_vcs_are_unknown_versions_with_credentials_redacted(tmp_path: Path) -> None:
    parsed = read(
        tmp_path,
        "git+https://ghp_abcdefghijklmnop@github.com/org/repo@v1#egg=mylib\n"
        "other @ git+https://github.com/org/other\n"
        "-e git+https://github.com/org/edit#egg=edit\n",
    )
    deps = by_name(parsed)
    assert deps["mylib"].version is None and deps["mylib"].direct_url is not None
    assert "ghp_abcdefghijklmnop" not in deps["mylib"].direct_url
    assert deps["mylib"].direct_url.startswith("git+https://ghp_…op@")
    assert deps["other"].direct_url == "git+https://github.com/org/other"
    assert "edit" in deps


def test_wheel_and_sdist_names_give_exact_versions(tmp_path: Path) -> None:
    parsed = read(
        tmp_path,
        "https://files.example/torch-2.5.1-cp311-cp311-linux_x86_64.whl\n"
        "./dist/keras-3.8.0.tar.gz\n"
        "onnx @ https://files.example/onnx-1.16.0-cp311-cp311-manylinux_2_17_x86_64.whl\n",
    )
    deps = by_name(parsed)
    assert deps["torch"].version == "2.5.1"
    assert deps["keras"].version == "3.8.0"
    assert deps["onnx"].version == "1.16.0"


def test_editable_and_local_paths_are_skipped_not_audited(tmp_path: Path) -> None:
    parsed = read(tmp_path, "-e .\n--editable ./libs/core\n./vendored/pkg\n")
    assert parsed.dependencies == []
    assert len(parsed.skipped) == 3
    assert parsed.errors == []


def test_url_without_a_name_is_an_error(tmp_path: Path) -> None:
    parsed = read(tmp_path, "git+https://github.com/org/repo\n")
    assert parsed.dependencies == []
    assert "names no project" in parsed.errors[0].message


def test_malformed_requirement_is_an_error_with_its_line(tmp_path: Path) -> None:
    parsed = read(tmp_path, "torch==2.0\nthis is not ! a requirement\nnumpy==1.0\n")
    assert {d.name for d in parsed.dependencies} == {"torch", "numpy"}
    assert parsed.errors[0].message.startswith("line 2:")


def test_pip_options_are_accepted(tmp_path: Path) -> None:
    parsed = read(
        tmp_path,
        "--index-url https://mirror.example/simple\n--extra-index-url https://x.example\n"
        "--pre\n--only-binary :all:\n-f ./wheels\ntorch==2.0\n",
    )
    assert [d.name for d in parsed.dependencies] == ["torch"] and parsed.errors == []


def test_empty_file_has_no_dependencies(tmp_path: Path) -> None:
    parsed = read(tmp_path, "")
    assert parsed.dependencies == [] and parsed.errors == []


def test_binary_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"\xff\xfe\x00torch")
    with pytest.raises(InputProblem, match="not UTF-8"):
        parse(path, str(path))


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    with path.open("wb") as handle:
        handle.truncate(MAX_DEPENDENCY_FILE_BYTES + 1)
    with pytest.raises(InputProblem, match="MiB"):
        parse(path, str(path))


def test_many_lines_are_read_quickly(tmp_path: Path) -> None:
    parsed = read(tmp_path, "".join(f"pkg{i}=={i}.0\n" for i in range(20000)))
    assert len(parsed.dependencies) == 20000


@pytest.mark.parametrize(
    ("name", "text", "explicit", "expected"),
    [
        ("requirements.txt", "", False, True),
        ("requirements-dev.txt", "", False, True),
        ("dev_requirements.txt", "", False, True),
        ("requirements.in", "", False, True),
        ("constraints.txt", "", False, True),
        ("notes.txt", "torch==2.0\n", False, False),
        ("notes.txt", "torch==2.0\n", True, True),
        ("notes.txt", "Some prose, not requirements.\n", True, False),
        ("deps.in", "torch>=2\n# c\n", False, True),
        ("MANIFEST.in", "include README.md\n", False, False),
        ("other.in", "include README.md\ngraft docs\n", False, False),
    ],
)
def test_recognised_by_name_then_content(
    tmp_path: Path, name: str, text: str, explicit: bool, expected: bool
) -> None:
    assert recognise(tmp_path / name, text, explicit) is expected


def test_files_in_a_requirements_folder_are_recognised(tmp_path: Path) -> None:
    assert recognise(tmp_path / "requirements" / "base.txt", "", False)
