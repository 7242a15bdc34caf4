#!/usr/bin/env bash
# Command-line behaviour of `lowbit`: outputs that must round-trip, and bad input that must
# exit non-zero with exactly one line "lowbit: error: ..." (no crash, no partial output).
# Usage: LOWBIT=path/to/lowbit run_cli_tests.sh SOURCE_DIR
set -uo pipefail
src=${1:?source dir}
bin=${LOWBIT:?LOWBIT must point at the lowbit binary}
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# 1. formats lists every family.
if "$bin" formats >"$tmp/formats.txt"; then
  missing=""
  for n in int2 int8 uint4 fp4_e2m1 fp6_e2m3 fp6_e3m2 fp8_e4m3 fp8_e5m2 e8m0 fp16 bf16 mxfp8_e4m3 mxfp8_e5m2 \
           mxfp6_e2m3 mxfp6_e3m2 mxfp4 mxint8 nvfp4 nf4 bnb_fp4 af4 lzs4; do
    grep -qE "^$n " "$tmp/formats.txt" || missing="$missing $n"
  done
  if grep -q unavailable "$tmp/formats.txt"; then missing="$missing (unavailable entries)"; fi
  [ -z "$missing" ] && pass "formats lists all" || fail "formats missing:$missing"
else
  fail "formats exit status"
fi

# 2. quantize -> packed -> dequantize reproduces the fake-quantised output byte for byte.
"$bin" synth --dist gaussian --shape 8,64 --seed 3 --out "$tmp/x.npy" >/dev/null || fail "synth"
for spec in int4:g64 mxfp4 nvfp4 nf4 lzs4:g16 fp8_e4m3 uint4:g32:scale=fp16; do
  if "$bin" quantize -f "$spec" -i "$tmp/x.npy" -o "$tmp/y.npy" --codes "$tmp/c.npy" --packed "$tmp/p.bin" >/dev/null &&
     "$bin" dequantize --packed "$tmp/p.bin" -o "$tmp/z.npy" >/dev/null && cmp -s "$tmp/y.npy" "$tmp/z.npy" &&
     [ -s "$tmp/c.npy" ]; then
    pass "round trip $spec"
  else
    fail "round trip $spec"
  fi
done
"$bin" quantize -f mxfp4 -i "$tmp/x.npy" --scales "$tmp/s.npy" >/dev/null && [ -s "$tmp/s.npy" ] &&
  pass "scales written" || fail "scales written"

# 2b. --axis: groups along another axis; outputs keep the input's shape.
"$bin" synth --shape 64,32 --seed 4 --out "$tmp/a.npy" >/dev/null
if "$bin" quantize -f int4:g64 -i "$tmp/a.npy" --axis 0 -o "$tmp/ya.npy" --codes "$tmp/ca.npy" >/dev/null &&
   grep -qa "(64, 32)" "$tmp/ya.npy" && grep -qa "(64, 32)" "$tmp/ca.npy"; then
  pass "axis 0"
else
  fail "axis 0"
fi
"$bin" quantize -f int4:g32 -i "$tmp/a.npy" -o "$tmp/y1.npy" >/dev/null
"$bin" quantize -f int4:g32 -i "$tmp/a.npy" --axis -1 -o "$tmp/y2.npy" >/dev/null
"$bin" quantize -f int4:g32 -i "$tmp/a.npy" --axis 1 -o "$tmp/y3.npy" >/dev/null
cmp -s "$tmp/y1.npy" "$tmp/y2.npy" && cmp -s "$tmp/y1.npy" "$tmp/y3.npy" && pass "axis -1 = 1 = default" ||
  fail "axis -1 = 1 = default"
"$bin" quantize -f int4:g64 -i "$tmp/a.npy" --axis 0 -o "$tmp/yb.npy" >/dev/null
cmp -s "$tmp/ya.npy" "$tmp/yb.npy" && pass "axis 0 reproducible" || fail "axis 0 reproducible"
expect_error "axis out of range" "axis" "$bin" quantize -f int8 -i "$tmp/a.npy" --axis 2 -o "$tmp/o.npy"
expect_error "axis not dividing" "divisible" "$bin" quantize -f int4:g64 -i "$tmp/a.npy" --axis 1 -o "$tmp/o.npy"

# 3. error table and JSON.
"$bin" error -f int8,int4:g64 -i "$tmp/x.npy" >"$tmp/e.txt" && grep -q "int4:g64" "$tmp/e.txt" &&
  pass "error table" || fail "error table"
if "$bin" error -f int8,int4:g64 -i "$tmp/x.npy" --json >"$tmp/e.json" &&
   python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert len(r)==2 and r[1]['sqnr_db']>15" "$tmp/e.json"; then
  pass "error json"
else
  fail "error json"
fi

# 4. bad input.
expect_error "missing file" "no-such" "$bin" error -f int8 -i "$tmp/no-such.npy"
head -c 100 /dev/urandom >"$tmp/garbage.npy"
expect_error "garbage npy" "garbage.npy" "$bin" error -f int8 -i "$tmp/garbage.npy"
head -c 200 "$tmp/x.npy" >"$tmp/trunc.npy"
expect_error "truncated npy" "trunc.npy" "$bin" quantize -f int8 -i "$tmp/trunc.npy" -o "$tmp/o.npy"
[ -e "$tmp/o.npy" ] && fail "no output on error" || pass "no output on error"
head -c 40 "$tmp/p.bin" >"$tmp/trunc.bin"
expect_error "truncated packed" "trunc.bin" "$bin" dequantize --packed "$tmp/trunc.bin" -o "$tmp/o.npy"
printf 'LOWBITPK\001\000\000\000\005\000\000\000{bad}' >"$tmp/badjson.bin"
expect_error "packed bad json" "JSON" "$bin" dequantize --packed "$tmp/badjson.bin" -o "$tmp/o.npy"
expect_error "unknown format" "nosuch" "$bin" error -f nosuch -i "$tmp/x.npy"
expect_error "unknown option" "bogus" "$bin" quantize -f int4:g64:bogus -i "$tmp/x.npy" -o "$tmp/o.npy"
expect_error "group not dividing" "divide" "$bin" quantize -f int4:g48 -i "$tmp/x.npy" -o "$tmp/o.npy"
expect_error "mx not dividing" "32" "$bin" quantize -f mxfp4 -i "$src/tests/cli/odd_cols.npy" -o "$tmp/o.npy"
"$bin" synth --shape 4,8 --name act --out "$tmp/t.safetensors" >/dev/null || fail "synth safetensors"
"$bin" error -f int8 -i "$tmp/t.safetensors:act" | grep -q act && pass "safetensors by name" || fail "safetensors by name"
expect_error "safetensors name" "nosuch" "$bin" error -f int8 -i "$tmp/t.safetensors:nosuch"
expect_error "bad synth dist" "distribution" "$bin" synth --dist cauchy --out "$tmp/o.npy"
expect_error "absurd shape" "large" "$bin" synth --shape 100000,100000,1000 --out "$tmp/o.npy"

# 5. algorithm mode of `error`: a layer's output error per algorithm, and its bad input.
cap="$src/data/captured/dit/tinydit_capture.safetensors"
if "$bin" error -i "$cap:step033.blocks.3.mlp.fc2.input" -w "$cap:blocks.3.mlp.fc2.weight" \
     -a rtn,smoothquant,svdquant:rank=8 --json >"$tmp/alg.json"; then
  python3 - "$tmp/alg.json" <<'PY' && pass "algorithms table" || fail "algorithms table"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [r["algorithm"] for r in rows] == ["rtn", "smoothquant", "svdquant:rank=8"], rows
assert all("error" not in r for r in rows), rows
assert all(0 < r["out_rel_mse"] < 1 for r in rows), rows
assert rows[2]["rank"] == 8 and rows[2]["weight_bits_per_element"] > rows[0]["weight_bits_per_element"]
PY
else
  fail "algorithms exit status"
fi
"$bin" algorithms | grep -q "^svdquant " && pass "algorithms list" || fail "algorithms list"
expect_error "algorithm mismatch" "features per row" "$bin" error -i "$cap:step033.blocks.3.mlp.fc2.input" \
  -w "$cap:blocks.3.mlp.fc1.weight" -a rtn
"$bin" synth --shape 64 --out "$tmp/v.npy" >/dev/null || fail "synth 1-D"
expect_error "algorithm 1-D" "2-D" "$bin" error -i "$tmp/v.npy" -w "$cap:blocks.3.mlp.fc2.weight" -a rtn
expect_error "weight without algorithms" "together" "$bin" error -i "$cap:step033.blocks.3.mlp.fc2.input" \
  -w "$cap:blocks.3.mlp.fc2.weight"
"$bin" error -i "$cap:step033.blocks.3.mlp.fc2.input" -w "$cap:blocks.3.mlp.fc2.weight" -a svdquant:rank=5000 \
  | grep -q "n/a: .*rank 5000" && pass "bad algorithm option reported per row" || fail "bad algorithm option reported per row"

# 6. mixprec: the exact assignment meets the budget and is no worse than greedy.
if "$bin" mixprec -i "$cap" --layers 'blocks.*' --budget 4 --json >"$tmp/mp.json"; then
  python3 - "$tmp/mp.json" <<'PY' && pass "mixprec budget" || fail "mixprec budget"
import json, sys
exact, greedy = json.load(open(sys.argv[1]))[:2]
assert exact["method"] == "exact" and greedy["method"] == "greedy", (exact["method"], greedy["method"])
assert exact["avg_weight_bits"] <= 4 + 1e-9, exact["avg_weight_bits"]
assert exact["total_error"] <= greedy["total_error"] + 1e-12
assert len(exact["layers"]) == 40, len(exact["layers"])
PY
else
  fail "mixprec exit status"
fi
expect_error "mixprec no layers" "no layer" "$bin" mixprec -i "$cap" --layers 'nosuch*'
expect_error "mixprec bad spec" "int99" "$bin" mixprec -i "$cap" --weights int4:g64,int99

finish "CLI"
