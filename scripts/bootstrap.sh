#!/usr/bin/env bash
# Installs every Debian package torchao-cpp needs to build, test and benchmark.
# Idempotent: packages already present are not reinstalled and apt lists are
# refreshed only when a package is missing.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev python3-torch python3-dev python3-venv python3-pip python3-setuptools python3-wheel
  pybind11-dev python3-pybind11
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-pytest python3-numpy python3-matplotlib
  libopenblas0-pthread
  clang libclang-rt-14-dev libomp-14-dev valgrind
  dataset-fashion-mnist
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
