#!/usr/bin/env bash
# scripts/test_oldest.sh [TORCH_VERSION] [pytest args]  - the tests under the oldest Python and PyTorch the extension supports.
# 3D Slicer 5.8 bundles Python 3.9 (and NumPy 1.26); its PyTorch extension installs the newest torch for it (2.8.0),
# and pyproject.toml allows torch from 2.0. This makes .venv-py39-torch<version>/ with Python 3.9 (PYTHON39, default
# python3.9), numpy<2 and that torch (default 2.0.1: a PyPI build, with its CUDA libraries, several GB), and runs every
# test that needs no slicer-core, which has no Python 3.9 build: the scene, module and widget tests, and the packaging
# tests, run under the dev venv only (./run.sh test).
set -euo pipefail
cd "$(dirname "$0")/.."
torch_version=2.0.1
if [[ ${1:-} =~ ^[0-9] ]]; then torch_version=$1; shift; fi
venv=.venv-py39-torch$torch_version
if [[ ! -x $venv/bin/python ]]; then
  "${PYTHON39:-python3.9}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$torch_version" "numpy<2"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -e . pytest hypothesis  # [test] wants slicer-core
fi
"$venv/bin/python" --version
"$venv/bin/python" -c "import numpy, torch; print('torch', torch.__version__, 'numpy', numpy.__version__)"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider Testing/Python \
  --ignore=Testing/Python/test_scene.py --ignore=Testing/Python/test_module.py \
  --ignore=Testing/Python/test_widget.py --ignore=Testing/Python/test_extension.py "$@"
