"""The pickle analyser judges what a loader would run, opcode by opcode, without running it."""

from __future__ import annotations

import base64
import collections
import io
import os
import pickle
import zlib

import numpy as np
import pytest

from mlwarden.findings import Severity
from mlwarden.scan.policy import Policy

from .conftest import by_rule, rules, worst

CMD = "touch /nonexistent-dir/MARKER"


class Reduce:
    """Pickles as a call of `func(*args)`; never instantiated by the scanner."""

    def __init__(self, func: object, *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.mark.parametrize("protocol", range(6))
def test_os_system_call_is_critical_at_every_protocol(scan_bytes, protocol):
    state = scan_bytes(pickle.dumps(Reduce(os.system, CMD), protocol=protocol))
    [finding] = by_rule(state, "pickle.dangerous-call")
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["call"] == f"posix.system({CMD!r})"
    assert finding.location is not None and finding.location.offset is not None


def test_py2_builtin_name_is_judged_as_builtins(scan_bytes):
    data = b"c__builtin__\neval\n(S'1+1'\ntR."
    state = scan_bytes(data)
    assert by_rule(state, "pickle.dangerous-call")[0].evidence["global"] == "__builtin__.eval"
    assert worst(state) is Severity.CRITICAL


def test_getattr_import_chain_is_rendered_as_evidence(scan_bytes):
    data = b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'id'\ntR."
    state = scan_bytes(data)
    chains = {f.evidence.get("call") for f in by_rule(state, "pickle.dangerous-call")}
    assert "builtins.getattr(builtins.__import__('os'), 'system')('id')" in chains


def test_inst_and_obj_opcodes_are_calls(scan_bytes):
    inst = b"(S'id'\nios\nsystem\n."
    obj = b"(cos\nsystem\nS'id'\no."
    for data in (inst, obj):
        assert "pickle.dangerous-call" in rules(scan_bytes(data))


def test_names_assembled_through_the_memo_are_resolved(scan_bytes):
    # "os" and "system" are memoised, then fetched with BINGET for STACK_GLOBAL.
    data = (
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x8c\x04junk\x940h\x00h\x01\x93\x8c\x02id\x85R."
    )
    state = scan_bytes(data)
    assert by_rule(state, "pickle.dangerous-call")[0].evidence["global"] == "os.system"


def test_dotted_name_through_innocent_module_is_dangerous(scan_bytes):
    data = b"\x80\x04\x8c\x09posixpath\x8c\x09os.system\x93\x8c\x02id\x85R."
    assert worst(scan_bytes(data)) is Severity.CRITICAL
    data = b"\x80\x04\x8c\x05numpy\x8c\x11__builtins__.eval\x93\x8c\x011\x85R."
    assert worst(scan_bytes(data)) is Severity.CRITICAL


def test_discarded_call_result_is_still_reported(scan_bytes):
    # POP throws the call's result away and a harmless value is returned (fickling bypass).
    data = b"cos\nsystem\n(S'id'\ntR0I1\n."
    assert worst(scan_bytes(data)) is Severity.CRITICAL


def test_unknown_callable_is_high_and_unknown_class_is_medium(scan_bytes):
    call = b"cmypkg.tools\nbuild\n(I1\ntR."
    new = b"\x80\x02cmypkg.models\nNet\n)\x81}b."
    assert by_rule(scan_bytes(call), "pickle.unknown-call")[0].severity is Severity.HIGH
    state = scan_bytes(new)
    assert by_rule(state, "pickle.unknown-class")[0].severity is Severity.MEDIUM
    assert worst(state) is Severity.MEDIUM


def test_unknown_global_reference_is_medium(scan_bytes):
    state = scan_bytes(b"\x80\x02cmypkg\nthing\n\x85.")
    assert by_rule(state, "pickle.unknown-global")[0].severity is Severity.MEDIUM


def test_policy_file_allows_the_users_own_classes(scan_bytes):
    data = b"\x80\x02cmypkg.models\nNet\n)\x81}b."
    policy = Policy.from_mapping({"pickle": {"allow": ["mypkg.models.*"]}})
    assert scan_bytes(data, policy).findings == []


def test_user_wildcard_never_allows_a_path_through_os(scan_bytes):
    data = b"\x80\x04\x8c\x05torch\x8c\x17serialization.os.system\x93\x8c\x02id\x85R."
    policy = Policy.from_mapping({"pickle": {"allow": ["torch.*"]}})
    assert worst(scan_bytes(data, policy)) is Severity.CRITICAL


def test_indirect_call_of_computed_callable_is_high(scan_bytes):
    data = b"cmypkg\nfactory\n)R)R."
    assert "pickle.indirect-call" in rules(scan_bytes(data), Severity.HIGH)


def test_build_on_a_module_global_is_a_mutation(scan_bytes):
    data = b"\x80\x02cmypkg\nsettings\n}S'x'\nI1\nsb."
    assert by_rule(scan_bytes(data), "pickle.global-mutation")[0].severity is Severity.HIGH


def test_setitem_on_os_environ_is_critical(scan_bytes):
    data = b"cos\nenviron\nS'LD_PRELOAD'\nS'/tmp/x.so'\nsN."
    assert worst(scan_bytes(data)) is Severity.CRITICAL


def test_extension_code_registered_in_the_same_pickle_is_resolved(scan_bytes):
    data = b"\x80\x02ccopyreg\nadd_extension\n(S'os'\nS'system'\nK\x07tR0\x82\x07(S'id'\ntR."
    found = {f.evidence.get("global") for f in by_rule(scan_bytes(data), "pickle.dangerous-call")}
    assert {"copyreg.add_extension", "os.system"} <= found


def test_unregistered_extension_code_is_high(scan_bytes):
    assert "pickle.extension-code" in rules(scan_bytes(b"\x80\x02\x82\x2a."), Severity.HIGH)


def test_second_pickle_in_a_stream_is_analysed(scan_bytes):
    data = pickle.dumps({"ok": 1}) + pickle.dumps(Reduce(os.system, CMD), protocol=4)
    assert worst(scan_bytes(data)) is Severity.CRITICAL


def test_payload_before_a_break_is_reported_and_the_break_is_a_finding(scan_bytes):
    data = pickle.dumps(Reduce(os.system, CMD), protocol=2)[:-1] + b"\xff\xfe garbage"
    state = scan_bytes(data)
    assert "pickle.dangerous-call" in rules(state)
    [broken] = by_rule(state, "pickle.malformed")
    assert broken.severity is Severity.HIGH
    assert broken.evidence["events_before_break"] >= 1


def test_truncated_stream_without_payload_is_only_medium(scan_bytes):
    state = scan_bytes(pickle.dumps([1, 2, 3], protocol=2)[:-2])
    assert [f.severity for f in by_rule(state, "pickle.malformed")] == [Severity.MEDIUM]


def test_nested_pickle_loads_payload_is_analysed(scan_bytes):
    inner = pickle.dumps(Reduce(os.system, CMD), protocol=2)
    state = scan_bytes(pickle.dumps(Reduce(pickle.loads, inner), protocol=2))
    nested = [f for f in state.findings if f.location and f.location.member]
    assert any(f.evidence.get("global") == "posix.system" for f in nested)


def test_nested_payload_behind_base64_and_zlib_is_analysed(scan_bytes):
    inner = zlib.compress(pickle.dumps(Reduce(os.system, CMD), protocol=2))
    encoded = base64.b64encode(inner).decode()
    outer = Reduce(pickle.loads, Reduce(zlib.decompress, Reduce(base64.b64decode, encoded)))
    state = scan_bytes(pickle.dumps(outer, protocol=2))
    assert any(f.evidence.get("global") == "posix.system" for f in state.findings)


def test_allowlisted_torch_loader_with_malicious_inner_pickle_is_caught(scan_bytes):
    inner = pickle.dumps(Reduce(os.system, CMD), protocol=2)
    data = b"\x80\x02ctorch.storage\n_load_from_bytes\nC" + bytes([len(inner)]) + inner + b"\x85R."
    state = scan_bytes(data)
    assert worst(state) is Severity.CRITICAL
    assert not by_rule(state, "pickle.unknown-call")


def test_pickle_hidden_after_junk_in_unknown_data_is_found(scan_bytes):
    data = os.urandom(3000).replace(b"\x80", b"\x00") + pickle.dumps(
        Reduce(os.system, CMD), protocol=2
    )
    state = scan_bytes(data)
    assert "pickle.hidden" in rules(state)
    assert worst(state) is Severity.CRITICAL


def test_data_after_a_pickle_is_scanned_too(scan_bytes):
    data = (
        pickle.dumps({"a": 1}, protocol=2)
        + b"JUNK"
        + pickle.dumps(Reduce(os.system, CMD), protocol=2)
    )
    assert worst(scan_bytes(data)) is Severity.CRITICAL


def test_benign_containers_and_numpy_give_no_finding(scan_bytes):
    value = {
        "weights": np.arange(12, dtype=np.float32).reshape(3, 4),
        "order": collections.OrderedDict(a=1),
        "counts": collections.Counter("abc"),
        "queue": collections.deque([1, 2]),
        "default": collections.defaultdict(list),
        "scalar": np.float64(1.5),
        "rng": np.random.default_rng(0),
        "legacy_rng": np.random.RandomState(0),
        "set": {1, 2},
        "frozen": frozenset({3}),
        "bytes": b"\x00\x01",
        "complex": 1 + 2j,
        "slice": slice(1, 2),
    }
    for protocol in range(6):
        assert scan_bytes(pickle.dumps(value, protocol=protocol)).findings == [], protocol


def test_joblib_array_blocks_are_skipped_and_a_payload_after_them_is_found(tmp_path, scan_bytes):
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "model.joblib"
    joblib.dump({"w": np.arange(1000.0), "names": np.array(["a", None], dtype=object)}, path)
    clean = path.read_bytes()
    assert scan_bytes(clean).findings == []
    evil = clean + pickle.dumps(Reduce(os.system, CMD), protocol=2)
    assert worst(scan_bytes(evil)) is Severity.CRITICAL


def test_torch_legacy_format_is_recognised_and_clean(scan_bytes):
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    torch.save(model, buffer, _use_new_zipfile_serialization=False)
    state = scan_bytes(buffer.getvalue())
    assert state.scanned[0].format == "pytorch-legacy"
    assert state.findings == []


def test_opcode_limit_is_a_finding_not_a_hang(scan_bytes):
    import dataclasses

    from mlwarden.scan.limits import Limits

    policy = dataclasses.replace(Policy(), limits=Limits(max_opcodes=70_000))
    data = b"\x80\x02(" + b"N0" * 200_000 + b"1N."
    state = scan_bytes(data, policy)
    assert "scan.limit-exceeded" in rules(state)
