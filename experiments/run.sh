#!/usr/bin/env bash
# Runs one experiment of experiments/README.md: builds the lowbit CLI if needed, then
# experiments/NAME/run.py, which writes results/NAME/ (CSV + PNG). Safe to run again.
#   experiments/run.sh NAME        e.g. experiments/run.sh svdquant_ablation
#   experiments/run.sh all
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: experiments/run.sh NAME|all}
./run.sh setup >/dev/null
cmake --preset default >/dev/null
cmake --build --preset default --target lowbit >/dev/null
run_one() {
  [ -f "experiments/$1/run.py" ] || { echo "experiments/run.sh: no experiment '$1'" >&2; exit 2; }
  echo "== $1"
  .venv/bin/python "experiments/$1/run.py" --lowbit build/default/lowbit --out "results/$1"
}
if [ "$name" = all ]; then
  for d in experiments/*/run.py; do run_one "$(basename "$(dirname "$d")")"; done
else
  run_one "$name"
fi
