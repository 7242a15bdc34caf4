#!/usr/bin/env bash
# Executes every notebook in notebooks/ headless (nbconvert) on the committed results/, so the
# notebooks never rot. Exit 77 (ctest: skipped) where Jupyter is not installed.
# Usage: run_notebooks.sh SOURCE_DIR
set -uo pipefail
src=${1:?source dir}
jupyter="$src/.venv/bin/jupyter"
if ! [ -x "$jupyter" ] || ! "$src/.venv/bin/python" -c 'import nbconvert, ipykernel, matplotlib' 2>/dev/null; then
  echo "SKIP: nbconvert/ipykernel/matplotlib not in $src/.venv (./run.sh setup installs them)"
  exit 77
fi
shopt -s nullglob
notebooks=("$src"/notebooks/*.ipynb)
if [ ${#notebooks[@]} -eq 0 ]; then
  echo "FAIL: no notebooks in $src/notebooks"
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
for nb in "${notebooks[@]}"; do
  # Execute in the notebook's own folder (notebooks read ../results/...); output goes to tmp.
  if (cd "$(dirname "$nb")" && MPLBACKEND=Agg "$jupyter" nbconvert --to notebook --execute \
        --ExecutePreprocessor.timeout=300 --output-dir "$tmp" "$(basename "$nb")") >"$tmp/log" 2>&1; then
    echo "ok   $(basename "$nb")"
  else
    echo "FAIL $(basename "$nb")"
    tail -30 "$tmp/log"
    fails=$((fails + 1))
  fi
done
[ "$fails" -eq 0 ] || exit 1
echo "all notebooks executed"
