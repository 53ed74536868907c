"""Chat template analysis: parsed with Jinja, never rendered; escapes to Python are critical."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.findings import Severity
from mlwarden.scan.blob import BytesBlob
from mlwarden.scan.context import FileScan, ScanContext
from mlwarden.scan.limits import Limits
from mlwarden.scan.policy import Policy
from mlwarden.scan.templates import (
    ESCAPE_RULE,
    SUSPICIOUS_RULE,
    UNPARSEABLE_RULE,
    analyse_template,
    inspect_template,
)

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% if loop.index == loop.length %}{% endif %}{% endfor %}"
)

TOOLS = """
{%- set ns = namespace(system='', found=false) -%}
{%- for message in messages -%}
  {%- if message.role == 'system' -%}
    {%- set ns.system = message.content -%}{%- set ns.found = true -%}
  {%- endif -%}
{%- endfor -%}
{{- '<|system|>' ~ ns.system ~ '\\nToday is ' ~ strftime_now('%d %b %Y') -}}
{%- for message in messages if message.role != 'system' -%}
  {%- if message.tool_calls is defined -%}
    {%- for call in message.tool_calls -%}
      {{- '<tool_call>' ~ call.function.name ~ ' ' ~ (call.function.arguments | tojson) -}}
      {%- if loop.last %}{% break %}{% endif -%}
    {%- endfor -%}
  {%- elif message.role == 'assistant' -%}
    {% generation %}{{- message.content | default('', true) -}}{% endgeneration %}
  {%- else -%}
    {{- '<|' ~ message.role ~ '|>' ~ (message.content if message.content is string
        else message.content | map(attribute='text') | join('')) -}}
  {%- endif -%}
{%- endfor -%}
{%- set sep = joiner(', ') -%}{%- for t in tools or [] -%}{{ sep() }}{{ t.name | upper }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}
"""


@pytest.mark.parametrize(
    "template", [CHATML, LLAMA3, MISTRAL, TOOLS], ids=["chatml", "llama3", "mistral", "tools"]
)
def test_benign_chat_templates_give_no_issue(template: str) -> None:
    analysis = inspect_template(template)
    assert analysis.parse_error is None
    assert analysis.issues == ()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # The "Llama Drama" payload (CVE-2024-34359).
        (
            "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
            "{{ x()._module.__builtins__['__import__']('os').popen('touch /tmp/m') }}"
            "{% endif %}{% endfor %}",
            "__subclasses__",
        ),
        ("{{ self.__init__.__globals__.__builtins__ }}", "__globals__"),
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "__init__"),
        ("{{ lipsum['__globals__'] }}", "__globals__"),
        ("{{ x | attr('__class__') }}", "__class__"),
        ("{{ x | attr('\\x5f\\x5fclass\\x5f\\x5f') }}", "__class__"),
        ("{{ x['_' ~ '_class_' ~ '_'] }}", "__class__"),
        ("{{ x['_' + '_cla' + 'ss__'] }}", "__class__"),
        ("{% set u = '_' * 2 %}{{ x[u ~ 'class' ~ u] }}", "__class__"),
        ("{{ x[['__cla', 'ss__'] | join] }}", "__class__"),
        ("{{ x['%c%c%s%c%c' | format(95, 95, 'class', 95, 95)] }}", "__class__"),
        ("{{ x['{}{}class{}{}'.format('_', '_', '_', '_')] }}", "__class__"),
        ("{{ x['__CLASS__'.lower()] }}", "__class__"),
        ("{{ messages | map(attribute='__class__') | list }}", "__class__"),
        ("{{ messages | selectattr('__class__.__name__') | list }}", "__class__"),
        ("{{ (lipsum | string)[0] }}", "text form"),
        ("{{ (() | select | string | list)[24] }}", "text form"),
        ("{{ lipsum.func_globals }}", "func_globals"),
        ("{{ request.application }}", "request"),
        ("{{ os.popen('id') }}", "popen"),
        ("{{ __import__('os') }}", "__import__"),
        ("{{ getattr(x, 'y') }}", "getattr"),
        ("{{ dict(__class__=1) }}", "__class__"),
        ("{% set ns = namespace() %}{% set ns.__class__ = 1 %}", "__class__"),
    ],
)
def test_escape_constructs_are_critical(template: str, expected: str) -> None:
    analysis = inspect_template(template)
    assert analysis.parse_error is None
    critical = [i for i in analysis.issues if i.severity is Severity.CRITICAL]
    assert critical, analysis
    assert all(i.rule == ESCAPE_RULE for i in critical)
    assert any(expected in i.reason or expected in i.expression for i in critical)


def test_one_chain_is_one_issue_with_every_step_named() -> None:
    analysis = inspect_template("{{ self.__init__.__globals__.__builtins__.eval('1') }}")
    assert len(analysis.issues) == 1
    issue = analysis.issues[0]
    assert issue.expression.startswith("self.__init__.__globals__.__builtins__")
    for step in ("__init__", "__globals__", "__builtins__"):
        assert step in issue.reason


def test_issue_carries_the_template_line() -> None:
    analysis = inspect_template("line one\n{{ ok }}\n{{ x.__class__ }}")
    assert analysis.issues[0].line == 3


@pytest.mark.parametrize(
    "template",
    [
        "{{ x | attr(name) }}",
        "{% include 'other.j2' %}",
        "{% import 'macros.j2' as m %}",
    ],
)
def test_unusual_but_unproven_constructs_are_medium(template: str) -> None:
    issues = inspect_template(template).issues
    assert [i.rule for i in issues] == [SUSPICIOUS_RULE]
    assert issues[0].severity is Severity.MEDIUM


@pytest.mark.parametrize(
    "template",
    [
        "{% set config = {'a': 1} %}{{ config.a }}",
        "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ cycler.next }}",
        "{% macro getattr(x) %}{{ x }}{% endmacro %}{{ getattr(1) }}",
        "{{ name.replace(' ', '_') }}{{ '<__media__>' }}{{ x.snake_case_name }}",
        "{{ messages[0]['content'][:100] }}{{ (message.content | string)[0] }}",
    ],
)
def test_lookalikes_of_escape_constructs_are_not_flagged(template: str) -> None:
    assert inspect_template(template).issues == ()


@pytest.mark.parametrize(
    "template",
    [
        "{% for %}",
        "{{ unclosed",
        "{% if x %}no end",
        "{{ x" + "(" * 5000 + ")" * 5000 + " }}",
    ],
)
def test_unparseable_templates_are_reported_not_raised(template: str) -> None:
    analysis = inspect_template(template)
    assert analysis.parse_error


def test_huge_template_is_not_parsed() -> None:
    assert inspect_template("a" * (5 * 1024 * 1024)).parse_error


def test_folding_stays_bounded() -> None:
    analysis = inspect_template("{{ x['_' * 1000000000] }}{{ '%999999999d' | format(1) }}")
    assert analysis.parse_error is None


def _ctx() -> ScanContext:
    state = FileScan("sample.gguf", Policy(), Limits())
    return ScanContext(state, BytesBlob(b""))


def test_analyse_reports_findings_with_origin_and_cve() -> None:
    ctx = _ctx()
    analyse_template(
        ctx, "{{ x.__class__ }}", origin="GGUF metadata 'tokenizer.chat_template'", offset=42
    )
    [finding] = ctx.state.findings
    assert finding.rule == ESCAPE_RULE
    assert finding.severity is Severity.CRITICAL
    assert finding.location is not None and finding.location.offset == 42
    assert finding.evidence["cve"] == "CVE-2024-34359"
    assert finding.evidence["expression"] == "x.__class__"
    assert finding.remediation


def test_analyse_reports_unparseable_as_medium() -> None:
    ctx = _ctx()
    analyse_template(ctx, "{% for %}", origin="tokenizer config")
    [finding] = ctx.state.findings
    assert finding.rule == UNPARSEABLE_RULE
    assert finding.severity is Severity.MEDIUM


def test_template_is_never_rendered(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = f"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}"
    ctx = _ctx()
    analyse_template(ctx, payload, origin="test")
    assert ctx.state.findings
    assert not marker.exists()
