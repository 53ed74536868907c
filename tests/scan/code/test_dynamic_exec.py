"""Dynamic execution: eval/exec/compile/shell on non-literal input, higher on model output."""

from __future__ import annotations

import pytest

from mlwarden.findings import Severity
from tests.scan.code._helpers import only

RULE = "code.dynamic-exec"


def severities(findings):
    return [f.severity for f in only(findings, RULE)]


@pytest.mark.parametrize(
    "source",
    [
        "eval(expression)",
        "exec(code, {})",
        "compile(text, '<x>', 'exec')",
        "import builtins\nbuiltins.eval(x)",
        "import os\nos.system('ls ' + folder)",
        "import os\nos.system(f'ls {folder}')",
        "import os\nos.popen(cmd)",
        "import subprocess\nsubprocess.run(cmd, shell=True)",
        "import subprocess as sp\nsp.check_output(args=cmd, shell=True)",
        "from subprocess import Popen\nPopen(cmd, shell=True)",
        "import subprocess\nsubprocess.getoutput(cmd)",
        "exec(open('setup.py').read())",
    ],
)
def test_non_literal_input_is_medium(audit, source):
    assert severities(audit(source)) == [Severity.MEDIUM]


@pytest.mark.parametrize(
    "source",
    [
        "eval('1 + 1')",
        "exec('import this')",
        "import os\nos.system('ls -l')",
        "import os\nos.system('ls' + ' -l')",
        "COMMAND = 'nvidia-smi'\nimport os\nos.system(COMMAND)",
        "import subprocess\nsubprocess.run(cmd)",
        "import subprocess\nsubprocess.run(['ls', folder])",
        "import subprocess\nsubprocess.run('ls -l', shell=True)",
        "model.eval()",
        "import pandas as pd\npd.eval(expression)",
        "literal_eval(text)",
    ],
)
def test_literals_and_lookalikes_are_clean(audit, source):
    assert severities(audit(source)) == []


@pytest.mark.parametrize(
    "source",
    [
        # OpenAI client, answer taken apart over several assignments
        """
        from openai import OpenAI
        def run(prompt):
            client = OpenAI()
            response = client.chat.completions.create(model="m", messages=prompt)
            answer = response.choices[0].message.content
            code = answer.strip().removeprefix("```python")
            exec(code)
        """,
        # LangChain
        """
        def run(chain, question):
            result = chain.invoke({"question": question})
            eval(result.content)
        """,
        # transformers generate + decode
        """
        def run(model, tokenizer, inputs):
            output_ids = model.generate(**inputs)
            text = tokenizer.decode(output_ids[0])
            exec(text)
        """,
        # a transformers pipeline called like a function
        """
        from transformers import pipeline
        generator = pipeline("text-generation", model="./local")
        out = generator("write code")
        exec(out[0]["generated_text"])
        """,
        # directly, and through a shell
        """
        import os
        def run(llm, prompt):
            os.system(llm.predict(prompt))
        """,
        # augmented assignment and a for loop
        """
        def run(client, prompt):
            script = ""
            for chunk in client.messages.create(model="m", messages=prompt):
                script += chunk.text
            exec(script)
        """,
        # walrus
        """
        def run(model, p):
            if (reply := model.chat(p)):
                eval(reply)
        """,
    ],
)
def test_model_output_reaching_execution_is_high(audit, source):
    findings = only(audit(source), RULE)
    assert [f.severity for f in findings] == [Severity.HIGH]
    assert "model output" in findings[0].title
    assert findings[0].evidence["model_output"] is True


def test_taint_is_cleared_by_reassignment(audit):
    source = """
    def run(model, p):
        text = model.generate(p)
        text = read_config()
        exec(text)
    """
    assert severities(audit(source)) == [Severity.MEDIUM]


def test_taint_stays_inside_its_function(audit):
    source = """
    def produce(model, p):
        text = model.generate(p)
        return text

    def consume(text):
        exec(text)
    """
    assert severities(audit(source)) == [Severity.MEDIUM]


def test_taint_survives_a_later_unrelated_assignment(audit):
    source = """
    def run(model, p):
        first = model.generate(p)
        second = first
        first = "print(1)"
        exec(second)
    """
    assert severities(audit(source)) == [Severity.HIGH]


def test_model_output_that_is_not_executed_is_clean(audit):
    source = """
    import json
    def run(client, p):
        answer = client.chat.completions.create(model="m", messages=p)
        return json.loads(answer.choices[0].message.content)
    """
    assert severities(audit(source)) == []
