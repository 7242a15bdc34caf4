"""PyTorch baselines for the GPU benchmark: eager and torch.compile fake quantisation written with
torch ops (the way a researcher without lowbit would write them) — FP8 E4M3 and BF16 casts (torch's
own dtype conversions), INT8 per row, INT4 g64, MXFP4, NVFP4 and NF4 (g64) — on the same
16k x 16k float32 tensor as lowbit_gpu_bench, beside a device-to-device copy.

    python3 bench/gpu/torch_fakequant.py [--rows 16384] [--cols 16384] [--reps 20]

Same formats as lowbit's int4:g64, mxfp4 and nvfp4 in scale rule and element grid; rounding
ties and special values are not matched bit for bit (that is lowbit's job), only the work.
"""
import argparse

import torch


def fp4_e2m1(v):
    """Round |v| <= 6 to the E2M1 grid {0, .5, 1, 1.5, 2, 3, 4, 6} (half-even per binade)."""
    a = v.abs().clamp(max=6.0)
    step = torch.where(a < 2, 0.5, torch.where(a < 4, 1.0, 2.0))
    return torch.sign(v) * torch.round(a / step) * step


def int4_g64(x):
    g = x.reshape(-1, 64)
    s = g.abs().amax(dim=1, keepdim=True) / 7
    s = torch.where(s == 0, torch.ones_like(s), s)
    return (torch.clamp(torch.round(g / s), -7, 7) * s).reshape(x.shape)


def mxfp4(x):
    g = x.reshape(-1, 32)
    amax = g.abs().amax(dim=1, keepdim=True)
    e = torch.floor(torch.log2(torch.where(amax == 0, torch.ones_like(amax), amax))) - 2
    scale = torch.exp2(e.clamp(-127, 127))
    return (fp4_e2m1(g / scale) * scale).reshape(x.shape)


def nvfp4(x):
    ts = x.abs().amax() / (448.0 * 6.0)
    ts = torch.where(ts == 0, torch.ones_like(ts), ts)
    g = x.reshape(-1, 16)
    bs = (g.abs().amax(dim=1, keepdim=True) / 6.0 / ts).to(torch.float8_e4m3fn).to(torch.float32)
    s = bs * ts
    s = torch.where(s == 0, torch.ones_like(s), s)
    return (fp4_e2m1(g / s) * s).reshape(x.shape)


def fp8_e4m3(x):
    return x.to(torch.float8_e4m3fn).to(torch.float32)


def bf16(x):
    return x.to(torch.bfloat16).to(torch.float32)


def int8_row(x):
    s = x.abs().amax(dim=-1, keepdim=True) / 127
    s = torch.where(s == 0, torch.ones_like(s), s)
    return torch.clamp(torch.round(x / s), -127, 127) * s


NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]


def nf4(x):
    table = torch.tensor(NF4, device=x.device)
    mid = (table[1:] + table[:-1]) / 2
    g = x.reshape(-1, 64)
    a = g.abs().amax(dim=1, keepdim=True)
    a = torch.where(a == 0, torch.ones_like(a), a)
    idx = torch.bucketize(g / a, mid)
    return (table[idx] * a).reshape(x.shape)


def median_ms(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--cols", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    g = torch.Generator(device="cuda").manual_seed(7)
    x = torch.randn(args.rows, args.cols, device="cuda", generator=g)
    y = torch.empty_like(x)
    nbytes = 2 * 4 * x.numel()
    copy = median_ms(lambda: y.copy_(x), args.reps)
    print(f"GPU {torch.cuda.get_device_name(0)}; torch {torch.__version__}; tensor {args.rows} x {args.cols} float32")
    print(f"{'operation':<28} {'ms':>9} {'GB/s':>9} {'vs copy':>9}")
    print(f"{'device-to-device copy':<28} {copy:9.3f} {nbytes / copy / 1e6:9.1f} {1.0:9.2f}")
    for name, fn in [("fp8_e4m3", fp8_e4m3), ("bf16", bf16), ("int8:row", int8_row), ("int4:g64", int4_g64),
                     ("mxfp4", mxfp4), ("nvfp4", nvfp4), ("nf4", nf4)]:
        for mode in ("eager", "compile"):
            f = fn if mode == "eager" else torch.compile(fn)
            ms = median_ms(lambda: f(x), args.reps)
            print(f"{name + ' torch ' + mode:<28} {ms:9.3f} {nbytes / ms / 1e6:9.1f} {copy / ms:9.2f}")


if __name__ == "__main__":
    main()
