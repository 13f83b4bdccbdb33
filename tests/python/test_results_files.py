"""The committed benchmark results under benchmarks/results/ are whole: every JSON file parses, and the
Google Benchmark runs that the README quotes hold a timed entry for every benchmark they list (a run cut
off mid-way leaves a file that does not parse)."""
import glob
import json
import os

import pytest

from conftest import ROOT

RESULTS = os.path.join(ROOT, "benchmarks", "results")
JSON_FILES = sorted(glob.glob(os.path.join(RESULTS, "*.json")))


def test_results_directory_holds_json_runs():
    assert len(JSON_FILES) >= 10, RESULTS


@pytest.mark.parametrize("path", JSON_FILES, ids=os.path.basename)
def test_result_file_parses(path):
    with open(path) as f:
        data = json.load(f)
    assert isinstance(data, dict) and data, path
    if "benchmarks" in data:  # Google Benchmark's format
        assert data["context"]["num_cpus"] >= 1
        assert len(data["benchmarks"]) > 0
        timed = 0
        for b in data["benchmarks"]:
            assert b["name"] and b["time_unit"] in ("ns", "us", "ms", "s"), b
            if b.get("error_occurred"):  # a twin this CPU cannot run (e.g. AMX) says why instead of a time
                assert b["error_message"].strip(), b
            else:
                assert b["real_time"] > 0, b
                timed += 1
        assert timed > 0, path
