#!/usr/bin/env bash
# `lowbit sweep`: --dry-run, a run and its resume, --fresh, --out, and bad sweep files that must
# exit 1 with exactly one line "lowbit: error: FILE: key: ...".
# Usage: LOWBIT=path/to/lowbit test_sweep_cli.sh SOURCE_DIR
set -uo pipefail
src=${1:?source dir}
bin=${LOWBIT:?LOWBIT must point at the lowbit binary}
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

cat >"$tmp/s.json" <<EOF
{"name": "cli", "root": "$src", "output": "$tmp/res",
 "axes": {"group": [16, 32]},
 "tensors": [{"file": "data/captured/dit/tinydit_capture.safetensors", "names": ["step033.blocks.3.mlp.fc2.input"]},
             {"synthetic": "gaussian", "shape": [8, 64], "seeds": [0, 1]}],
 "formats": ["int4:g{group}", "mxfp4"],
 "pairs": [{"captured": "data/captured/dit/tinydit_capture.safetensors", "layers": "blocks.0.mlp.fc2", "steps": [33]}],
 "weight_formats": ["int4:g{group}"], "act_formats": ["int8:row"]}
EOF

# 1. --dry-run counts the cells and writes nothing.
if "$bin" sweep "$tmp/s.json" --dry-run >"$tmp/out" 2>&1 && grep -q "^cli: 11 cells (9 tensor, 2 linear" "$tmp/out" &&
   [ ! -e "$tmp/res" ]; then
  pass "dry run"
else
  fail "dry run ($(head -c 300 "$tmp/out"))"
fi

# 2. A run writes a header + one row per cell; a second run reuses every row.
if "$bin" sweep "$tmp/s.json" --threads 2 >"$tmp/out" 2>/dev/null && [ "$(wc -l <"$tmp/res/results.csv")" -eq 12 ] &&
   [ "$(wc -l <"$tmp/res/results.jsonl")" -eq 11 ] && grep -q "11 computed (0 failed), 0 reused" "$tmp/out"; then
  pass "run"
else
  fail "run ($(head -c 300 "$tmp/out"))"
fi
"$bin" sweep "$tmp/s.json" >"$tmp/out" 2>/dev/null && grep -q "0 computed (0 failed), 11 reused" "$tmp/out" &&
  pass "resume" || fail "resume ($(head -c 300 "$tmp/out"))"

# 3. An interrupted write (last line cut short) costs that one cell.
head -c -40 "$tmp/res/results.jsonl" >"$tmp/cut" && cp "$tmp/cut" "$tmp/res/results.jsonl"
"$bin" sweep "$tmp/s.json" >"$tmp/out" 2>/dev/null && grep -q "1 computed (0 failed), 10 reused" "$tmp/out" &&
  pass "resume after a cut line" || fail "resume after a cut line ($(head -c 300 "$tmp/out"))"

# 4. --fresh recomputes everything; --out redirects the output.
"$bin" sweep "$tmp/s.json" --fresh >"$tmp/out" 2>/dev/null && grep -q "11 computed" "$tmp/out" &&
  [ "$(wc -l <"$tmp/res/results.jsonl")" -eq 11 ] && pass "fresh" || fail "fresh"
"$bin" sweep "$tmp/s.json" --out "$tmp/other" >/dev/null 2>&1 && [ -s "$tmp/other/results.csv" ] &&
  pass "--out" || fail "--out"

# 5. Bad files: one line naming the key.
printf '{"tensors": [{"synthetic": "gaussian", "shape": [4, 0]}], "formats": ["mxfp4"]}' >"$tmp/b1.json"
expect_error "bad shape" "b1.json: tensors[0].shape: expected a list of positive integers" "$bin" sweep "$tmp/b1.json"
printf '{"tensors": [{"synthetic": "gaussian", "shape": [4, 64]}], "formats": ["int{b}"], "axes": {"b": [4, 40]}}' >"$tmp/b2.json"
expect_error "bad expanded spec" "b2.json: formats[0] (b=40):" "$bin" sweep "$tmp/b2.json"
printf '{"tensors": [], "formats": ["mxfp4"]}' >"$tmp/b3.json"
expect_error "empty list" "b3.json: tensors: expected a non-empty list" "$bin" sweep "$tmp/b3.json"
printf '{"tensors": [{"synthetic": "gaussian", "shape": [4, 64]}], "formats": ["mxfp4"], "thread": 2}' >"$tmp/b4.json"
expect_error "unknown key" "b4.json: thread: unknown key" "$bin" sweep "$tmp/b4.json"
expect_error "missing file" "cannot open" "$bin" sweep "$tmp/none.json"

finish "sweep CLI"
