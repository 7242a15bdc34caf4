#!/usr/bin/env bash
# `lowbit bounds`: Prop 4.1 / 4.2 / QuaRTZ on shipped and synthetic data (tables and JSON), and
# bad input that must exit 1 with exactly one line "lowbit: error: ...".
# Usage: LOWBIT=path/to/lowbit test_bounds_cli.sh SOURCE_DIR
set -uo pipefail
src=${1:?source dir}
bin=${LOWBIT:?LOWBIT must point at the lowbit binary}
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

cap="$src/data/captured/dit/tinydit_capture.safetensors"
x="$cap:step033.blocks.3.mlp.fc2.input"
w="$cap:blocks.3.mlp.fc2.weight"

# 1. Prop 4.1 on the shipped pair: table and JSON, every row sample held.
if "$bin" bounds --prop 4.1 --x "$x" --w "$w" >"$tmp/p41.txt" && grep -q "^held: yes" "$tmp/p41.txt" &&
   grep -q "held 64/64" "$tmp/p41.txt"; then
  pass "prop 4.1 table"
else
  fail "prop 4.1 table"
fi
if "$bin" bounds --prop 4.1 --x "$x" --w "$w" --wq nvfp4 --aq mxfp4 --sample-rows 16 --json >"$tmp/p41.json" &&
   python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert r['all_held'] and len(r['samples']) == 4 and r['w_quantizer'] == 'nvfp4'
assert all(s['lhs'] <= s['rhs'] for s in r['samples'])
" "$tmp/p41.json"; then
  pass "prop 4.1 json"
else
  fail "prop 4.1 json"
fi

# 2. Prop 4.2 (small sizes to stay quick).
if "$bin" bounds --prop 4.2 --sizes 4096,16384 --qmax 7,127 --group 0,64 --trials 2 --json >"$tmp/p42.json" &&
   python3 -c "
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r['all_held'] and len(r['rows']) == 8
for row in r['rows']:
    N = row['bound_size']
    assert abs(row['bound'] - math.sqrt(math.pi * math.log(N)) / row['qmax']) < 1e-12
    assert row['ratio'] < row['bound']
" "$tmp/p42.json"; then
  pass "prop 4.2 json"
else
  fail "prop 4.2 json"
fi
"$bin" bounds --prop 4.2 --sizes 4096 --trials 1 | grep -q "^held: yes" && pass "prop 4.2 table" || fail "prop 4.2 table"

# 3. QuaRTZ on the shipped activation: triangle inequality holds.
if "$bin" bounds --prop quartz --in "$x" --format lzs4:g16:s8=token >"$tmp/q.txt" &&
   grep -q "triangle E_total ≤ E_q8 + E_LZS: held: yes" "$tmp/q.txt"; then
  pass "quartz table"
else
  fail "quartz table"
fi
if "$bin" bounds --prop quartz --in "$x" --format lzs4:g32 --json >"$tmp/q.json" &&
   python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert r['triangle_held'] and r['group'] == 32 and r['p_group_flag'] >= r['p_elem_ge8']
assert sum(r['flags']['counts']) == 64 * 1024 // 32
" "$tmp/q.json"; then
  pass "quartz json"
else
  fail "quartz json"
fi

# 4. Bad input: one line, exit 1.
"$bin" synth --shape 64 --out "$tmp/v.npy" >/dev/null
"$bin" synth --shape 8,64 --out "$tmp/m.npy" >/dev/null
"$bin" synth --shape 4,60 --out "$tmp/odd.npy" >/dev/null
expect_error "missing file" "no.npy" "$bin" bounds --prop 4.1 --x "$tmp/no.npy" --w "$w"
expect_error "1-D activations" "2-D" "$bin" bounds --prop 4.1 --x "$tmp/v.npy" --w "$w"
expect_error "1-D weight" "2-D" "$bin" bounds --prop 4.1 --x "$tmp/m.npy" --w "$tmp/v.npy"
expect_error "in-features differ" "in-features" "$bin" bounds --prop 4.1 --x "$x" --w "$cap:blocks.3.mlp.fc1.weight"
expect_error "missing tensor name" "pick one" "$bin" bounds --prop 4.1 --x "$cap" --w "$w"
expect_error "unknown tensor" "nope" "$bin" bounds --prop 4.1 --x "$cap:nope" --w "$w"
expect_error "bad quantizer" "" "$bin" bounds --prop 4.1 --x "$x" --w "$w" --wq int4:g7x
expect_error "groups do not divide" "" "$bin" bounds --prop 4.1 --x "$tmp/odd.npy" --w "$tmp/odd.npy"
expect_error "missing --w" "--w" "$bin" bounds --prop 4.1 --x "$x"
expect_error "option of another prop" "applies to" "$bin" bounds --prop 4.2 --x "$x"
expect_error "4.2 group not dividing" "divide" "$bin" bounds --prop 4.2 --sizes 100 --group 64
expect_error "4.2 bad list" "integer" "$bin" bounds --prop 4.2 --qmax 7,x
expect_error "quartz not lzs" "lzs4" "$bin" bounds --prop quartz --in "$x" --format int4:g64
expect_error "quartz missing file" "no.npy" "$bin" bounds --prop quartz --in "$tmp/no.npy"
expect_error "quartz group not dividing" "not divisible by the group size 16" "$bin" bounds --prop quartz --in "$tmp/odd.npy" --format lzs4:g16

finish "bounds CLI"
