#!/usr/bin/env bash
# scripts/test_simpleitk.sh VERSION [pytest args]  - the whole suite with another SimpleITK (3D Slicer bundles its own).
# The module uses the SimpleITK Slicer bundles, which may be older than the one pyproject.toml asks for (README *In
# 3D Slicer*). This installs PyPI's SimpleITK==VERSION into .venv-simpleitk<VERSION>/ and runs the tests with the dev
# venv (made by ./run.sh test), that SimpleITK first on the path.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: scripts/test_simpleitk.sh VERSION [pytest args]}; shift
target=.venv-simpleitk$version
if [[ ! -d $target/SimpleITK ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --target "$target" \
    "SimpleITK==$version"
fi
export PYTHONPATH=$PWD/$target
.venv/bin/python -c "import SimpleITK; print('SimpleITK', SimpleITK.Version.VersionString(), 'ITK',
      SimpleITK.Version.ITKVersionString())"
exec .venv/bin/python -m pytest -q -p no:cacheprovider Testing/Python "$@"
