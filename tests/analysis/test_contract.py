"""The analysis contract: loading files and modules, parameters, result checks."""

import numpy as np
import pytest
from analysis_helpers import SUM_ANALYSIS

from exfel_data.analysis import (
    AnalysisError,
    check_result,
    load_analysis,
    parse_param,
    resolve_params,
)


def test_load_file_and_hash(write_analysis):
    import hashlib

    path = write_analysis(SUM_ANALYSIS)
    ana = load_analysis(path)
    assert ana.spec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ana.can_merge and ana.defaults["none_on"] == []
    assert ana.spec.label == "ana"


def test_load_importable_module():
    with pytest.raises(AnalysisError, match="Analysis json has no function process"):
        load_analysis("json")  # importable, but lacks the contract


@pytest.mark.parametrize("text, match", [
    ("x = 1\n", "has no function process"),
    ("def process(t, d, p): pass\n", "has no class Reducer"),
    ("def process(t, d, p): pass\nclass Reducer:\n    def add(self, t, r): pass\n",
     r"Reducer has no method partial\(\)"),
    ("import no_such_module_xyz\n", "(?s)Loading analysis .* failed.*no_such_module_xyz"),
    ("PARAMS = [1]\ndef process(t, d, p): pass\nclass Reducer:\n    add = partial = print\n",
     "PARAMS must be a dict"),
])
def test_broken_analysis_files(write_analysis, text, match):
    with pytest.raises(AnalysisError, match=match):
        load_analysis(write_analysis(text, name=f"broken{abs(hash(text))}.py"))


def test_missing_file_and_module(tmp_path):
    with pytest.raises(AnalysisError, match="does not exist"):
        load_analysis(tmp_path / "nope.py")
    with pytest.raises(AnalysisError, match="neither a .py file nor an importable module"):
        load_analysis("no_such_module_xyz")


@pytest.mark.parametrize("text, value", [
    ("a=3", 3), ("a=0.5", 0.5), ("a=True", True), ("a=[0, 10]", [0, 10]),
    ("a=None", None), ("a=hello", "hello"), ("a='x y'", "x y"), ("a = 2e3", 2000.0),
])
def test_parse_param_typed(text, value):
    name, parsed = parse_param(text)
    assert name == "a" and parsed == value and type(parsed) is type(value)


def test_parse_param_refuses_non_assignments():
    with pytest.raises(AnalysisError, match="is not name=value"):
        parse_param("threshold")


def test_resolve_params_against_defaults(write_analysis):
    ana = load_analysis(write_analysis(
        "PARAMS = {'t': 0.5, 'n': 3, 'roi': [0, 1], 'name': 'x'}\n"
        "def process(t, d, p): pass\nclass Reducer:\n    add = partial = print\n",
        name="params_ana.py"))
    params = resolve_params(ana, ["t=1", "roi=(2, 3)", "name=7"])
    assert params == {"t": 1.0, "n": 3, "roi": [2, 3], "name": "7"}
    assert type(params["t"]) is float
    with pytest.raises(AnalysisError, match="Unknown parameter 'tt'.*t, n, roi, name"):
        resolve_params(ana, {"tt": 1})
    with pytest.raises(AnalysisError, match="n='many': expected int like its default 3"):
        resolve_params(ana, ["n=many"])


def test_check_result_flattens_and_refuses_objects():
    flat = check_result({"a": {"b": np.arange(3)}, "c": 1.5, "s": "text"}, "partial()")
    assert list(flat) == ["a.b", "c", "s"]
    np.testing.assert_array_equal(flat["a.b"], [0, 1, 2])
    with pytest.raises(AnalysisError, match="partial\\(\\) must return a dict"):
        check_result([1], "partial()")
    with pytest.raises(AnalysisError, match="'x' is a set"):
        check_result({"x": {1}}, "partial()")
    with pytest.raises(AnalysisError, match="'y' holds object values"):
        check_result({"y": np.array([None])}, "partial()")
