#!/usr/bin/env bash
# All tests: set up (first run only), build the library with its C++ tests,
# run CTest (GoogleTest + the find_package consumer), then pytest.
mkdir -p "$(dirname "${BASH_SOURCE[0]}")/../build"
export TORCHAO_CPP_BUILD_TESTS=1
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
echo "== CTest =="
ctest --test-dir "$TORCHAO_CPP_BUILD_DIR" --output-on-failure
echo "== pytest =="
# The suite, plus every docstring example in the package (docs must match the code).
"$VENV/bin/python" -m pytest tests/python torchao_cpp --doctest-modules -q -p no:cacheprovider "$@"
