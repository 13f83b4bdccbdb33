#!/usr/bin/env bash
# The main job: set up (first run only), then quantize the default model with
# every config and print the table. Extra arguments go to torchao_cpp.demo
# (e.g. --model my.pt --input-shape 1,4096).
mkdir -p "$(dirname "${BASH_SOURCE[0]}")/../build"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec "$VENV/bin/python" -m torchao_cpp.demo --threads "$(nproc)" "$@"
