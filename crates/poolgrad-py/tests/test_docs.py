"""The examples in the docstrings and in README.md's Python section run as written."""

import doctest
import importlib
import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "..", "README.md")


@pytest.mark.parametrize("module", ["poolgrad", "poolgrad._explain", "poolgrad.torch", "poolgrad.torch.nn"])
def test_docstring_examples(module):
    if module.startswith("poolgrad.torch"):
        pytest.importorskip("torch")
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0, f"{module} has no examples"


def python_examples():
    """The ```python blocks of README.md's "poolgrad for Python" section."""
    text = open(README, encoding="utf-8").read()
    section = text.split("## poolgrad for Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_has_python_examples():
    assert len(python_examples()) >= 3


@pytest.mark.parametrize("index", range(len(python_examples())))
def test_readme_python_example(index, tmp_path, monkeypatch):
    code = python_examples()[index]
    if "torch" in code:
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md python example {index}", "exec"), {"__name__": "__readme__"})
