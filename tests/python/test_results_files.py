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
        for b in data["benchmarks"]:
            assert b["name"] and b["real_time"] > 0 and b["time_unit"] in ("ns", "us", "ms", "s"), b
