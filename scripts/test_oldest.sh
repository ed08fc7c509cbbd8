#!/usr/bin/env bash
# scripts/test_oldest.sh [TORCH_VERSION|minimum] [pytest args]  - the tests under the oldest Python and PyTorch
# the extension supports.
# 3D Slicer 5.8 bundles Python 3.9 (and NumPy 1.26); its PyTorch extension installs the newest torch for it (2.8.0),
# and pyproject.toml allows torch from 2.0. This makes .venv-py39-torch<version>/ with Python 3.9 (PYTHON39, default
# python3.9), numpy<2 and that torch (default 2.0.1: a PyPI build, with its CUDA libraries, several GB), and runs every
# test that needs no slicer-core, which has no Python 3.9 build: the scene, module and widget tests, and the packaging
# tests, run under the dev venv only (./run.sh test). With "minimum", .venv-py39-minimum/ holds the oldest release of
# each dependency pyproject.toml allows (each ">=" read as "=="), torch included.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_version=2.0.1
if [[ ${1:-} =~ ^[0-9] ]]; then torch_version=$1; shift; fi
packages=("torch==$torch_version" "numpy<2")
venv=.venv-py39-torch$torch_version
if [[ ${1:-} == minimum ]]; then
  mapfile -t packages < <(grep '^dependencies' pyproject.toml | grep -o '"[^"]*"' | tr -d '"' | sed 's/>=/==/')
  venv=.venv-py39-minimum; shift
fi
if [[ ! -x $venv/bin/python ]]; then
  "${PYTHON39:-python3.9}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -e . pytest hypothesis  # [test] wants slicer-core
fi
"$venv/bin/python" --version
"$venv/bin/python" -c "import numpy, scipy, SimpleITK, torch; print('torch', torch.__version__,
      'numpy', numpy.__version__, 'scipy', scipy.__version__, 'SimpleITK', SimpleITK.Version.VersionString())"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider Testing/Python \
  --ignore=Testing/Python/test_scene.py --ignore=Testing/Python/test_module.py \
  --ignore=Testing/Python/test_widget.py --ignore=Testing/Python/test_extension.py "$@"
