"""Property-based runs (hypothesis) of everything that reaches edgecv from outside: a few hundred
generated cases per target through the real code path (scripts/fuzz.py runs 100,000 and more)."""

from __future__ import annotations

import json

import pytest
from helpers.scripts import load_script

from edgecv.errors import RejectedFile
from edgecv.ingest import read_sidecar
from edgecv.records import check_wire_json

fuzz = load_script("fuzz")

CASES = {"sidecar": 600, "config": 800, "manifest": 800, "metadata": 400, "multipart": 400}


@pytest.mark.parametrize("target", sorted(CASES))
def test_generated_input_gets_an_answer_or_edgecvs_own_error(target, models_root):
    assert fuzz.run_target(target, CASES[target], models_root) == CASES[target]


@pytest.mark.parametrize(
    "text, why",
    [
        ('{"a": NaN}', "NaN or Infinity"),
        ('{"a": 1e999}', "NaN or Infinity"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ("[" * 5000 + "]" * 5000, "too deep"),
    ],
)
def test_what_fuzzing_found_in_sidecars_is_refused_with_the_reason(tmp_path, text, why):
    path = tmp_path / "photo.json"
    path.write_text(text)
    with pytest.raises(RejectedFile, match=why):
        read_sidecar(path)


def test_standard_json_passes_the_wire_check():
    check_wire_json(json.loads('{"a": [1, 2.5, "é", null, true], "b": {"c": -1e300}}'))
