#!/usr/bin/env python3
"""Independent oracle: lowbit's plain element casts against ml_dtypes (and numpy float16).

For each format, the float32 inputs are
  * every value of the format and every rounding boundary between consecutive values
    (midpoints computed from ml_dtypes' own value table, plus the overflow threshold
    max + ulp/2), each exactly and +-1 float32 ulp, both signs;
  * special values: +-0, +-Inf, NaNs of both signs with several payloads (quiet and
    signalling), float32 subnormals, FLT_MIN, FLT_MAX;
  * 2^22 uniformly random float32 bit patterns (fixed seed) and 2^16 random values in the
    format's range.
They are written to one .npy file and cast by `lowbit quantize --format SPEC --codes C.npy
--out Y.npy`. Checks:
  1. codes: lowbit's code == x.astype(dtype).view(uint8 / uint16) for every input;
  2. decode: for every code c, lowbit's --out for the input ml_dtypes decodes c to equals
     that value (bitwise, so -0 is kept; NaN by class);
  3. fake quantisation: lowbit's --out == x.astype(dtype).astype(float32) for every input
     (bitwise; NaN by class).
Plus the intended int4/uint4 difference (FORMATS.md §1), asserted explicitly.

Usage:  python tests/python/test_mldtypes_oracle.py --lowbit build/default/lowbit
Exit 0 on success, 1 on mismatch (first 10 mismatching inputs reported in hex), 77 when
numpy / ml_dtypes are not installed (ctest SKIP_RETURN_CODE).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import ml_dtypes
except ImportError as e:  # pragma: no cover - depends on the environment
    print(f"ml_dtypes not installed: skipped ({e})")
    sys.exit(77)

MAX_REPORT = 10


# ---------------------------------------------------------------------------------------
# The format map: ml_dtypes dtype <-> lowbit spec (README "Format specs", FORMATS.md §2.8).
#
#  * FP4/FP6: ml_dtypes saturates finite overflow and Inf to +-max (FORMATS.md §2.8), which is
#    lowbit's default overflow=sat; NaN -> opposite-signed zero is nan=mldtypes.
#  * FP8/FP16/BF16: ml_dtypes is non-saturating (overflow -> Inf, or NaN for E4M3FN), i.e.
#    overflow=inf; NaN is nan=mldtypes. Observed (ml_dtypes 0.6.0, numpy 2.4.6 x86_64):
#    ml_dtypes maps *every* NaN to sign | its quiet NaN, payload dropped (E4M3 0x7F, E5M2 0x7E,
#    BF16 0x7FC0); numpy float16 keeps the top 10 payload bits, 0x7C01 if they are all zero
#    (numpy's software path; builds with native F16C/ARM fp16 conversion may differ).
#  * E8M0 (FORMATS.md §4.2 trap): ml_dtypes rounds ties 1.5*2^k *up* (round=rna), maps 0,
#    negatives, NaN and +-Inf to 0xFF (nan=mldtypes; Inf needs overflow=inf since E8M0 has no
#    Inf), rounds values >= 1.5*2^127 up to 0xFF (NaN: non-saturating, overflow=inf) and maps
#    every positive value below 2^-127 to 0x00 (2^-127: no zero, clamped at the bottom) --
#    lowbit clamps the same way, no option needed.
# ---------------------------------------------------------------------------------------
FORMATS = [
    # name,            dtype,                        bits, lowbit spec
    ("float4_e2m1fn", ml_dtypes.float4_e2m1fn, 4, "fp4_e2m1:nan=mldtypes"),
    ("float6_e2m3fn", ml_dtypes.float6_e2m3fn, 6, "fp6_e2m3:nan=mldtypes"),
    ("float6_e3m2fn", ml_dtypes.float6_e3m2fn, 6, "fp6_e3m2:nan=mldtypes"),
    ("float8_e4m3fn", ml_dtypes.float8_e4m3fn, 8, "fp8_e4m3:overflow=inf:nan=mldtypes"),
    ("float8_e5m2", ml_dtypes.float8_e5m2, 8, "fp8_e5m2:overflow=inf:nan=mldtypes"),
    ("bfloat16", ml_dtypes.bfloat16, 16, "bf16:overflow=inf:nan=mldtypes"),
    ("float16 (numpy)", np.float16, 16, "fp16:overflow=inf:nan=mldtypes"),
    ("float8_e8m0fnu", ml_dtypes.float8_e8m0fnu, 8, "e8m0:round=rna:overflow=inf:nan=mldtypes"),
]

# ml_dtypes 0.6.0 rounds every float32 subnormal in (2^-127, 2^-126) -- bits 0x00400001 ..
# 0x007FFFFF -- *up* to E8M0 0x01 (2^-126), i.e. it does not round to nearest there: inputs
# 0x00400001 .. 0x005FFFFF, nearer to 2^-127 (0x00), also give 0x01. Everywhere else its E8M0
# cast is round-half-up (round=rna). No lowbit option reproduces this today, and FORMATS.md
# does not document it. False: compare strictly (the test fails on these inputs until the
# codec emulates it). True: treat it as an intended difference -- drop those inputs from the
# strict comparison and assert both sides' behaviour on them explicitly.
E8M0_SUBNORMAL_ROUND_UP_IS_INTENDED_DIFFERENCE = True
E8M0_QUIRK_LO, E8M0_QUIRK_HI = 0x00400001, 0x005FFFFF  # where ml_dtypes 0x01 != RNA 0x00

SPECIAL_BITS = [
    0x00000000, 0x80000000,              # +-0
    0x7F800000, 0xFF800000,              # +-Inf
    0x7FC00000, 0xFFC00000,              # canonical quiet NaNs
    0x7F800001, 0xFF800001,              # signalling NaNs, smallest payload
    0x7FBFFFFF, 0xFFBFFFFF,              # signalling NaNs, largest payload
    0x7FFFFFFF, 0xFFFFFFFF,              # quiet NaNs, all payload bits
    0x7FA00000, 0x7F900000, 0x7F810000, 0x7F808000, 0x7FC00001, 0xFFE00000, 0xFF820000,
    0x00000001, 0x80000001,              # smallest fp32 subnormal
    0x00000002, 0x00000003, 0x00400000, 0x80400000, 0x00400001, 0x003FFFFF,
    0x007FFFFF, 0x807FFFFF,              # largest fp32 subnormal
    0x00800000, 0x80800000,              # FLT_MIN
    0x7F7FFFFF, 0xFF7FFFFF,              # FLT_MAX
    0x7F7FFFFE, 0x7F000000, 0x7F400000, 0x7F3FFFFF, 0x7F400001,  # around 2^127, 1.5*2^127
    0x3F800000, 0xBF800000, 0x3FC00000, 0x40400000, 0x3F400000,  # 1, -1, 1.5, 3, 0.75
]


def f32_from_bits(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def bits_of(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def code_view_dtype(bits):
    return np.uint8 if bits <= 8 else np.uint16


def value_table(dtype, bits):
    """ml_dtypes' decode of every code, as float32 (codes 0 .. 2^bits - 1)."""
    vt = code_view_dtype(bits)
    codes = np.arange(1 << bits, dtype=vt)
    return codes, codes.view(dtype).astype(np.float32)


def boundary_inputs(values):
    """Rounding boundaries from the value table, exactly and +-1 ulp, both signs."""
    fin = np.unique(values[np.isfinite(values)].astype(np.float64))  # sorted, -0 == +0
    mids = (fin[:-1] + fin[1:]) / 2.0
    # Overflow threshold: max + half the spacing of the top binade (464 for E4M3, 61440 for
    # E5M2, 7 for E2M1, 65520 for FP16, 1.5 * 2^127 for E8M0), also for the negative end.
    top = fin[-1] + (fin[-1] - fin[-2]) / 2.0
    bottom = fin[0] - (fin[1] - fin[0]) / 2.0
    pts = np.concatenate([fin, mids, [top, bottom]])
    as32 = pts.astype(np.float32)
    bad = as32.astype(np.float64) != pts
    assert not bad.any(), f"boundary not representable in float32: {pts[bad][:5]}"
    pts32 = np.concatenate([as32, -as32, [np.float32(0.0), np.float32(-0.0)]]).astype(np.float32)
    up = np.nextafter(pts32, np.float32(np.inf))
    down = np.nextafter(pts32, np.float32(-np.inf))
    return np.concatenate([pts32, up, down]).astype(np.float32)


def run_lowbit(lowbit, spec, x, tmp, tag):
    xin = os.path.join(tmp, f"{tag}_x.npy")
    cout = os.path.join(tmp, f"{tag}_c.npy")
    yout = os.path.join(tmp, f"{tag}_y.npy")
    np.save(xin, np.ascontiguousarray(x, dtype=np.float32))
    cmd = [lowbit, "quantize", "--format", spec, "--in", xin, "--codes", cout, "--out", yout]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {r.returncode}: {r.stderr.strip()}")
    return np.load(cout), np.load(yout)


def same_float(a, b):
    """Bitwise equality of float32 arrays, except that any NaN equals any NaN (by class)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    return (bits_of(a) == bits_of(b)) | (np.isnan(a) & np.isnan(b))


def classify(x):
    """Counts of mismatching inputs by float32 class, for the report."""
    b = bits_of(x) & np.uint32(0x7FFFFFFF)
    cls = {
        "NaN": np.isnan(x), "Inf": np.isinf(x), "zero": b == 0,
        "fp32 subnormal": (b != 0) & (b < 0x00800000),
        "normal": (b >= 0x00800000) & (b < 0x7F800000),
    }
    neg = (bits_of(x) >> 31) == 1
    parts = []
    for k, m in cls.items():
        n_pos, n_neg = int((m & ~neg).sum()), int((m & neg).sum())
        if n_pos or n_neg:
            parts.append(f"{k}: {n_pos} positive, {n_neg} negative")
    return "; ".join(parts)


def hx(v, width):
    return f"0x{int(v):0{width}x}"


class Report:
    def __init__(self):
        self.failures = []

    def check(self, ok, title, lines):
        if ok:
            print(f"ok   {title}")
        else:
            print(f"FAIL {title}")
            for ln in lines:
                print(f"       {ln}")
            self.failures.append(title)


def check_format(rep, lowbit, tmp, name, dtype, bits, spec, rng_bits, rng_range):
    t0 = time.time()
    vt = code_view_dtype(bits)
    cw = (bits + 3) // 4
    codes, table = value_table(dtype, bits)
    finite = table[np.isfinite(table)]
    fmax = float(np.max(np.abs(finite)))

    x_table = table  # one input per code, exactly its value (NaN codes: ml_dtypes' NaN)
    x = np.concatenate([
        x_table,
        boundary_inputs(table),
        f32_from_bits(np.array(SPECIAL_BITS, dtype=np.uint32)),
        rng_bits,
        (rng_range.astype(np.float64) * min(1.25 * fmax, 3.0e38)).astype(np.float32),
    ]).astype(np.float32)

    with np.errstate(over="ignore", invalid="ignore"):  # overflow / NaN casts are the point
        want_codes = x.astype(dtype).view(vt)
        want_vals = x.astype(dtype).astype(np.float32)
    got_codes, got_vals = run_lowbit(lowbit, spec, x, tmp, name.split()[0])

    # Shape and code dtype.
    rep.check(got_codes.dtype == vt and got_codes.shape == x.shape and got_vals.dtype == np.float32
              and got_vals.shape == x.shape,
              f"{name}: --codes {got_codes.dtype}{list(got_codes.shape)}, "
              f"--out {got_vals.dtype}{list(got_vals.shape)}",
              [f"expected codes {np.dtype(vt)}{list(x.shape)}, out float32{list(x.shape)}"])
    if got_codes.shape != x.shape or got_vals.shape != x.shape:
        return
    got_codes = got_codes.astype(vt)

    compare = np.ones(len(x), dtype=bool)
    if dtype == ml_dtypes.float8_e8m0fnu:
        xb = bits_of(x)
        quirk = (xb >= E8M0_QUIRK_LO) & (xb <= E8M0_QUIRK_HI)
        # Pin ml_dtypes' behaviour there in any case, so a fixed ml_dtypes is noticed.
        rep.check(bool(np.all(want_codes[quirk] == 0x01)),
                  f"{name}: ml_dtypes {ml_dtypes.__version__} rounds float32 subnormals in "
                  f"(2^-127, 1.5*2^-127) up to 0x01 ({int(quirk.sum())} inputs)",
                  ["ml_dtypes no longer rounds these up: revisit E8M0_SUBNORMAL_ROUND_UP_IS_INTENDED_DIFFERENCE"])
        if E8M0_SUBNORMAL_ROUND_UP_IS_INTENDED_DIFFERENCE:
            rep.check(bool(np.all(got_codes[quirk] == 0x00)),
                      f"{name}: intended difference: lowbit rounds (2^-127, 1.5*2^-127) to nearest, 0x00",
                      [f"lowbit codes {sorted(set(hx(c, 2) for c in got_codes[quirk]))}"])
            compare = ~quirk

    # 1. Codes for every input.
    bad = np.nonzero((got_codes != want_codes) & compare)[0]
    lines = [f"{len(bad)} of {int(compare.sum())} inputs differ ({classify(x[bad])}); "
             f"first {min(len(bad), MAX_REPORT)}:"]
    for i in bad[:MAX_REPORT]:
        lines.append(f"input {hx(bits_of(x[i]), 8)} ({x[i]!r:>14}): ml_dtypes {hx(want_codes[i], cw)}"
                     f" ({want_vals[i]!r}), lowbit {hx(got_codes[i], cw)} ({got_vals[i]!r})")
    rep.check(len(bad) == 0, f"{name} <-> {spec}: codes of {len(x)} inputs", lines)

    # 2. Decode of every code: the input that is exactly ml_dtypes' value of code c.
    n = len(x_table)
    ok = same_float(got_vals[:n], table)
    bad = np.nonzero(~ok)[0]
    lines = [f"{len(bad)} of {n} codes differ; first {min(len(bad), MAX_REPORT)}:"]
    for i in bad[:MAX_REPORT]:
        lines.append(f"code {hx(codes[i], cw)}: ml_dtypes value {table[i]!r} ({hx(bits_of(table[i]), 8)}),"
                     f" lowbit --out {got_vals[i]!r} ({hx(bits_of(got_vals[i]), 8)}),"
                     f" lowbit code {hx(got_codes[i], cw)}")
    rep.check(len(bad) == 0, f"{name}: decoded value of all {n} codes", lines)

    # 3. Fake-quantised values for every input.
    bad = np.nonzero(~same_float(got_vals, want_vals) & compare)[0]
    lines = [f"{len(bad)} of {int(compare.sum())} inputs differ ({classify(x[bad])}); "
             f"first {min(len(bad), MAX_REPORT)}:"]
    for i in bad[:MAX_REPORT]:
        lines.append(f"input {hx(bits_of(x[i]), 8)}: ml_dtypes {want_vals[i]!r} ({hx(bits_of(want_vals[i]), 8)}),"
                     f" lowbit {got_vals[i]!r} ({hx(bits_of(got_vals[i]), 8)})")
    rep.check(len(bad) == 0, f"{name}: --out values of {len(x)} inputs", lines)
    print(f"     ({time.time() - t0:.1f} s)")


def check_int4_difference(rep, lowbit, tmp):
    # INTENDED DIFFERENCE (FORMATS.md §1): ml_dtypes int4/uint4 are storage types, not
    # quantisers -- float -> int4 truncates toward zero and wraps mod 16 (7.9 -> 7, 8 -> -8,
    # -9 -> 7, 2.5 -> 2). lowbit's plain `int4` / `uint4` cast is a quantiser: round to
    # nearest even, then clamp to the range (7.9 -> RNE 8 -> 7, 2.5 -> 2, -9 -> -8, 8 -> 7).
    # This is not a lowbit bug; the test pins both sides so neither drifts unnoticed.
    x = np.array([7.9, 2.5, -9.0, 8.0, -2.5, 3.5, -7.6, 100.0], dtype=np.float32)
    md_int4 = x.astype(ml_dtypes.int4).astype(np.float32)
    lb_int4 = np.array([7, 2, -8, 7, -2, 4, -8, 7], dtype=np.float32)
    md_expect = np.array([7, 2, 7, -8, -2, 3, -7, 4], dtype=np.float32)
    _, got = run_lowbit(lowbit, "int4", x, tmp, "int4")
    rep.check(np.array_equal(got, lb_int4), "int4: lowbit rounds (RNE) and clamps",
              [f"inputs {x.tolist()}", f"lowbit {got.tolist()}", f"expected {lb_int4.tolist()}"])
    rep.check(np.array_equal(md_int4, md_expect), "int4: ml_dtypes truncates and wraps (intended difference)",
              [f"inputs {x.tolist()}", f"ml_dtypes {md_int4.tolist()}", f"expected {md_expect.tolist()}"])
    rep.check(not np.array_equal(got, md_int4), "int4: lowbit != ml_dtypes on these inputs",
              [f"lowbit {got.tolist()} == ml_dtypes {md_int4.tolist()}"])

    xu = np.array([-1.0, 2.5, 15.6, 16.0, 17.0, 0.5, 1.5], dtype=np.float32)
    md_uint4 = xu.astype(ml_dtypes.uint4).astype(np.float32)
    lb_uint4 = np.array([0, 2, 15, 15, 15, 0, 2], dtype=np.float32)
    _, got = run_lowbit(lowbit, "uint4", xu, tmp, "uint4")
    rep.check(np.array_equal(got, lb_uint4), "uint4: lowbit rounds (RNE) and clamps to [0, 15]",
              [f"inputs {xu.tolist()}", f"lowbit {got.tolist()}", f"expected {lb_uint4.tolist()}"])
    rep.check(not np.array_equal(got, md_uint4), "uint4: lowbit != ml_dtypes (wraps: -1 -> 15, 16 -> 0)",
              [f"ml_dtypes {md_uint4.tolist()}"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lowbit", required=True, help="path to the lowbit binary")
    ap.add_argument("--seed", type=int, default=20240601, help="seed of the random inputs")
    ap.add_argument("--random-bits", type=int, default=1 << 22, help="random float32 bit patterns per format")
    ap.add_argument("--random-range", type=int, default=1 << 16, help="random values in the format's range")
    ap.add_argument("--only", default=None, help="comma-separated substrings of format names to run")
    args = ap.parse_args()

    lowbit = os.path.abspath(args.lowbit)
    if not os.access(lowbit, os.X_OK):
        print(f"lowbit binary not found or not executable: {lowbit}")
        return 1
    print(f"ml_dtypes {ml_dtypes.__version__}, numpy {np.__version__}, lowbit {lowbit}, seed {args.seed}")

    rng = np.random.default_rng(args.seed)
    rng_bits = f32_from_bits(rng.integers(0, 1 << 32, size=args.random_bits, dtype=np.uint32))
    rng_range = rng.uniform(-1.0, 1.0, size=args.random_range).astype(np.float32)

    rep = Report()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="lowbit_mldtypes_") as tmp:
        for name, dtype, bits, spec in FORMATS:
            if args.only and not any(s in name for s in args.only.split(",")):
                continue
            try:
                check_format(rep, lowbit, tmp, name, dtype, bits, spec, rng_bits, rng_range)
            except Exception as e:  # report and go on with the other formats
                rep.check(False, f"{name} <-> {spec}: ran", [repr(e)])
        check_int4_difference(rep, lowbit, tmp)

    print(f"total {time.time() - t0:.1f} s")
    if rep.failures:
        print(f"{len(rep.failures)} check(s) FAILED:")
        for f in rep.failures:
            print(f"  {f}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
