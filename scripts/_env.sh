# Shared set-up of the two entry scripts: Debian packages, a virtual
# environment over Debian's torch, and the package built in editable mode.
# Sourced, not run. Honours TORCHAO_CPP_BUILD_TESTS (0/1).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash scripts/bootstrap.sh

# Debian's torch lives in /usr/bin/python3's dist-packages; the venv sees it.
PY=/usr/bin/python3
VENV="$REPO/.venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  rm -rf "$VENV"
  "$PY" -m venv --system-site-packages "$VENV"
fi
export TORCHAO_CPP_BUILD_DIR="$REPO/build/main"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
echo "building torchao_cpp (build dir $TORCHAO_CPP_BUILD_DIR) ..."
"$VENV/bin/pip" install --no-build-isolation --no-deps -q -e . >"$REPO/build/pip-install.log" 2>&1 || {
  cat "$REPO/build/pip-install.log"
  exit 1
}
