#!/usr/bin/env bash
# ./run.sh demo  - synthesise a lumbar stack and measure it: masks, rulers, table, report.png
# ./run.sh test  - the test suite (what CI runs)
# Both create ./.venv on first use (CPU PyTorch, SimpleITK, slicer-core from PyPI).
set -euo pipefail
cd "$(dirname "$0")"

ensure_venv() {
  local stamp=.venv/.installed
  local want
  want=$(cat pyproject.toml run.sh | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat $stamp) == "$want" ]]; then return; fi
  python3 -m venv .venv
  # torch first, pinned to the CPU wheel: an open 'torch' requirement would fetch a multi-GB CUDA build
  .venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
  echo "$want" > $stamp
}

case "${1:-}" in
  demo)
    ensure_venv
    shift
    .venv/bin/spinal-stenosis demo --out spinal-stenosis-demo --overwrite "$@"
    ;;
  test)
    ensure_venv
    shift
    .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh demo | test [pytest args]" >&2
    exit 2
    ;;
esac
