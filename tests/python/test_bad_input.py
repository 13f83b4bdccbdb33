"""Bad-input suite (issue 7): every row of bad_input_cases.ROWS, run in a child process.

The table lives in bad_input_cases.py (it is the documentation of the error contract: per op,
class and config, what a wrong input raises and what the message says). The rows run in a
child Python process (the same module run as a script), so a row that crashes (segfault,
abort) fails its own test instead of killing pytest:

  - the child appends a JSON line to a file before and after each row;
  - when the child dies, the row with a "start" line and no "end" line is the crashing one:
    it is recorded as crashed (with the signal), and a new child resumes at the next row;
  - a row that runs longer than ROW_TIMEOUT_S is killed the same way.

The whole table normally runs in one child (import torch costs ~2 s).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import pytest

import bad_input_cases as cases

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad_input_cases.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROW_TIMEOUT_S = 120.0


def _signal_name(rc: int) -> str:
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return f"signal {-rc}"
    return f"exit status {rc}"


def _read(path: str) -> List[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def run_table(table: str, ids: List[str]) -> Dict[str, dict]:
    """Runs every row of `table` in as few child processes as crashes allow: {row id: outcome}."""
    results: Dict[str, dict] = {}
    start, children = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        while start < len(ids):
            children += 1
            out = os.path.join(tmp, f"rows.{children}.jsonl")
            err_path = os.path.join(tmp, f"stderr.{children}.txt")
            with open(err_path, "w") as err:
                proc = subprocess.Popen(
                    [sys.executable, WORKER, "--table", table, "--start", str(start), "--out", out],
                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
                # Progress is the output file growing; a row that stalls it for ROW_TIMEOUT_S is killed.
                size, progressed, hung = -1, time.monotonic(), False
                while proc.poll() is None:
                    time.sleep(0.05)
                    now_size = os.path.getsize(out) if os.path.exists(out) else 0
                    if now_size != size:
                        size, progressed = now_size, time.monotonic()
                    elif time.monotonic() - progressed > ROW_TIMEOUT_S:
                        hung = True
                        proc.kill()
                        proc.wait()
                        break
            recs = _read(out) if os.path.exists(out) else []
            with open(err_path, encoding="utf-8", errors="replace") as f:
                stderr_tail = f.read()[-3000:]
            for r in recs:
                if r["event"] == "end":
                    results[r["id"]] = r
            started = [r for r in recs if r["event"] == "start" and r["id"] not in results]
            if proc.returncode == 0 and not started:
                break
            if started:  # this row killed the child (or hung): record it and resume after it
                bad = started[-1]
                how = f"no progress for {ROW_TIMEOUT_S:.0f} s, killed" if hung else _signal_name(proc.returncode)
                results[bad["id"]] = {"outcome": "crashed", "how": how,
                                      "stderr": stderr_tail}
                start = bad["index"] + 1
                continue
            # The child died outside any row: before the first one (nothing more would run) or at exit.
            how = f"worker died outside any row ({_signal_name(proc.returncode)})"
            missing = [i for i in ids[start:] if i not in results]
            for i in missing:
                results[i] = {"outcome": "crashed", "how": how, "stderr": stderr_tail}
            if not missing:
                results["__exit__"] = {"how": how, "stderr": stderr_tail}
            break
    results["__children__"] = {"count": children}
    return results


@pytest.fixture(scope="module")
def outcomes() -> Dict[str, dict]:
    return run_table("main", [r.id for r in cases.ROWS])


def _name(exc: type) -> str:
    return f"{exc.__module__}.{exc.__qualname__}"


def check_outcome(row: cases.Row, got: dict) -> None:
    assert got is not None, f"{row.id}: the worker never ran this row"
    if got["outcome"] == "crashed":
        pytest.fail(f"{row.id}: crashed the process ({got['how']}); stderr:\n{got['stderr']}")
    if row.expected == cases.OK:
        if got["outcome"] == "raised":
            kind = "check failed" if got["check_failed"] else "raised"
            pytest.fail(f"{row.id}: expected success ({row.fragment}), {kind}: {got['type']}: {got['message']}")
        assert got["checks"] > 0, f"{row.id}: an OK row must check something"
        return
    if got["outcome"] != "raised":
        pytest.fail(f"{row.id}: expected {row.expected.__name__} containing {row.fragment!r}, but the call succeeded")
    assert _name(row.expected) in got["mro"], (
        f"{row.id}: expected {row.expected.__name__}, got {got['type']}: {got['message']}")
    assert row.fragment in got["message"], (
        f"{row.id}: {row.expected.__name__} message lacks {row.fragment!r}: {got['message']}")


@pytest.mark.parametrize("row", cases.ROWS, ids=[r.id for r in cases.ROWS])
def test_bad_input(row, outcomes):
    check_outcome(row, outcomes.get(row.id))


def test_table_is_well_formed():
    ids = [r.id for r in cases.ROWS]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    for r in cases.ROWS:
        assert r.expected == cases.OK or (isinstance(r.expected, type) and issubclass(r.expected, BaseException)), r.id
        assert r.expected == cases.OK or r.fragment, f"{r.id}: an error row needs a message fragment"
        assert callable(r.call), r.id


def test_the_whole_table_ran_in_one_child_unless_rows_crashed(outcomes):
    assert "__exit__" not in outcomes, f"the worker crashed at exit: {outcomes['__exit__']}"
    crashed = [k for k, v in outcomes.items() if v.get("outcome") == "crashed"]
    assert outcomes["__children__"]["count"] == 1 + len(crashed), crashed


def test_crashing_rows_fail_alone_and_the_rest_still_run():
    got = run_table("selftest", [r.id for r in cases.SELFTEST_ROWS])
    assert got["raises"]["outcome"] == "raised" and got["raises"]["type"] == "builtins.ValueError"
    assert got["segfaults"] == {**got["segfaults"], "outcome": "crashed", "how": "SIGSEGV"}
    assert got["aborts"] == {**got["aborts"], "outcome": "crashed", "how": "SIGABRT"}
    assert got["passes"]["outcome"] == "ok" and got["last"]["outcome"] == "ok"
    assert got["__children__"]["count"] == 3
    with pytest.raises(pytest.fail.Exception, match=r"segfaults: crashed the process \(SIGSEGV\)"):
        check_outcome(cases.SELFTEST_ROWS[1], got["segfaults"])
