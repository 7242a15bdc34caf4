#!/usr/bin/env bash
# `lowbit generate` / `lowbit evaluate` on the shipped DiT with tiny settings (3 images, 2 Euler
# steps): the files they write (npz members readable as .npy, PNG signature, JSON keys), the
# full-precision recipe against itself (FID 0, PSNR at its 100 dB cap, SSIM 1), a W4A4 recipe
# measurably off, and bad input (one "lowbit: error:" line).
# Usage: LOWBIT=path/to/lowbit test_e2e_cli.sh SOURCE_DIR
set -uo pipefail
src=${1:?source dir}
bin=${LOWBIT:?LOWBIT must point at the lowbit binary}
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
cd "$src" || exit 1
common=(--n 3 --steps 2 --quiet)

if "$bin" generate --recipe experiments/e2e/recipes/w4a4_int4_g64.json "${common[@]}" --out "$tmp/gen" >"$tmp/gen.log" 2>&1 &&
   [ -s "$tmp/gen/samples.npz" ] && [ -s "$tmp/gen/grid.png" ] && [ -s "$tmp/gen/run.json" ]; then
  pass "generate writes samples.npz, grid.png, run.json"
else
  fail "generate ($(head -c 300 "$tmp/gen.log"))"
fi
python3 - "$tmp/gen" <<'PY' && pass "npz members and PNG signature" || fail "npz members and PNG signature"
import json, struct, sys, zipfile
d = sys.argv[1]
z = zipfile.ZipFile(d + "/samples.npz")
names = z.namelist()
assert names == ["images.npy", "labels.npy"], names
for n in names:
    b = z.read(n)
    assert b[:6] == b"\x93NUMPY", n
    assert z.getinfo(n).compress_type == zipfile.ZIP_STORED
img = z.read("images.npy")
assert b"'descr': '<f4'" in img and b"'shape': (3, 3, 32, 32)" in img
assert len(img) - (10 + struct.unpack("<H", img[8:10])[0]) == 3 * 3 * 32 * 32 * 4
assert open(d + "/grid.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
j = json.load(open(d + "/run.json"))
assert j["steps"] == 2 and j["n"] == 3 and len(j["layers"]) == 44, j.keys()
assert abs(j["weight_bits"] - 8.54) < 0.1, j["weight_bits"]
assert j["products"] == "float64", j["products"]
PY

if "$bin" evaluate --recipe fp32 "${common[@]}" --bootstrap 50 --out "$tmp/fp" >"$tmp/fp.log" 2>&1; then
  python3 - "$tmp/fp/metrics.json" <<'PY' && pass "fp32 against itself: FID 0, PSNR cap, SSIM 1" || fail "fp32 against itself"
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
# 3 images: a rank-2 covariance in 128 dimensions, so rounding in tr sqrt(Σ Σ) stays visible
assert abs(m["fid_vs_fp"]["value"]) < 0.05, m["fid_vs_fp"]
assert m["psnr_db"]["value"] == 100.0 and m["ssim"]["value"] == 1.0, m
assert m["fid_vs_fp_mean_part"] == 0 and m["pixel_mean_shift"] == [0, 0, 0], m
PY
else
  fail "evaluate fp32 ($(head -c 300 "$tmp/fp.log"))"
fi

if "$bin" evaluate --recipe experiments/e2e/recipes/w4a4_int4_g64.json "${common[@]}" --bootstrap 50 --cache "$tmp/cache" \
     --out "$tmp/q" >"$tmp/q.log" 2>&1 && [ -s "$tmp/q/compare.png" ] && ls "$tmp/cache"/fp32_cpu_n3_*.safetensors >/dev/null 2>&1; then
  python3 - "$tmp/q/metrics.json" <<'PY' && pass "W4A4 INT4 is measurably off full precision" || fail "W4A4 metrics"
import json, sys
j = json.load(open(sys.argv[1]))
m = j["metrics"]
assert m["fid_vs_fp"]["value"] > 0.1, m["fid_vs_fp"]
assert 0 <= m["fid_vs_fp_mean_part"] <= m["fid_vs_fp"]["value"] * (1 + 1e-9), m["fid_vs_fp_mean_part"]
assert len(m["pixel_mean_shift"]) == 3 and all(0 < abs(v) < 0.1 for v in m["pixel_mean_shift"]), m["pixel_mean_shift"]
assert 10 < m["psnr_db"]["value"] < 60, m["psnr_db"]
assert 0 < m["ssim"]["value"] < 0.999, m["ssim"]
assert j["layers"]["blocks.3.mlp.fc2"]["weight"] == "int4:g64"
PY
  # A second run reuses the cached full-precision images.
  "$bin" evaluate --recipe experiments/e2e/recipes/w4a4_int4_g64.json "${common[@]}" --bootstrap 50 --cache "$tmp/cache" \
    --out "$tmp/q2" >/dev/null 2>&1 && grep -q '"fp_seconds_per_image": "cached"' "$tmp/q2/metrics.json" &&
    cmp -s <(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metrics'])" "$tmp/q/metrics.json") \
           <(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metrics'])" "$tmp/q2/metrics.json") &&
    pass "cached reference gives the same metrics" || fail "cached reference"
else
  fail "evaluate w4a4 ($(head -c 300 "$tmp/q.log"))"
fi

echo '{"default": {"weight": "int4:gx"}}' >"$tmp/bad.json"
expect_error "bad recipe names the key" "default.weight" "$bin" generate --recipe "$tmp/bad.json" "${common[@]}" --out "$tmp/x"
echo '{"default": {"weight": "int4:g63"}}' >"$tmp/g63.json"
expect_error "a group that does not divide names the layer" "t_embedder.mlp.0: " "$bin" generate --recipe "$tmp/g63.json" "${common[@]}" --out "$tmp/x"
expect_error "missing recipe file" "cannot open the recipe file" "$bin" generate --recipe "$tmp/none.json" "${common[@]}" --out "$tmp/x"
if ! nvidia-smi >/dev/null 2>&1; then
  expect_error "--device cuda without a GPU says why" "--device cuda: " "$bin" generate --device cuda "${common[@]}" --out "$tmp/x"
fi
expect_error "missing model" "cannot open the model config" "$bin" generate --model "$tmp" "${common[@]}" --out "$tmp/x"
echo '{"default": {"weight": "int8:row"}, "calibration": {"steps": [5]}}' >"$tmp/late.json"
expect_error "calibration beyond the run" "beyond the sampler's 2 steps" "$bin" generate --recipe "$tmp/late.json" "${common[@]}" --out "$tmp/x"
"$bin" generate --n 0 --out "$tmp/x" >/dev/null 2>&1 && fail "--n 0 accepted" || pass "--n 0 rejected"
finish e2e
