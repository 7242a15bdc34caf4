"""PyTorch eager baseline for the GPU DiT engine: rectified-flow Euler sampling of the shipped
tinydit (experiments/tinydit/model.py), 50 steps, CFG 2.0, N images in one batch, float32 (TF32
off, as lowbit's engine) and bf16 autocast (train.sample_euler's setting), seconds per image,
median of --reps runs after a warm-up.

    python3 bench/gpu/torch_dit.py [--n 64] [--steps 50] [--reps 3] [--profile 2]

--profile K also prints the CUDA kernel times of K float32 steps (torch.profiler), to set next
to the per-kernel times of lowbit's engine.
"""
import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "experiments", "tinydit"))
from model import DiT  # noqa: E402


@torch.no_grad()
def sample(model, x, y, steps, cfg, autocast):
    ts = torch.linspace(1.0, 0.0, steps + 1, device=x.device)
    n = x.shape[0]
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        tt = torch.full((n,), float(t), device=x.device) * 1000.0
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            v = model.forward_with_cfg(x, tt, y, cfg)
        x = x + (t_next - t) * v.float()
    return x.clamp(-1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = json.load(open(os.path.join(ROOT, "models/tinydit/config.json")))
    model = DiT(**cfg["dit_config"]).cuda().eval()
    model.load_state_dict({k: v.float() for k, v in load_file(os.path.join(ROOT, "models/tinydit/tinydit.safetensors")).items()})
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(args.n, 3, 32, 32, device="cuda", generator=g)
    y = torch.arange(args.n, device="cuda") % 12
    print(f"GPU {torch.cuda.get_device_name(0)}; torch {torch.__version__}; {args.n} images, {args.steps} steps, CFG 2.0")
    for name, autocast in (("eager float32", False), ("eager bf16 autocast", True)):
        sample(model, x, y, 2, 2.0, autocast)
        torch.cuda.synchronize()
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            sample(model, x, y, args.steps, 2.0, autocast)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        times.sort()
        med = times[len(times) // 2]
        print(f"torch {name:<22} {med:8.3f} s   {med / args.n * 1000:8.2f} ms/image")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            sample(model, x, y, args.profile, 2.0, False)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))


if __name__ == "__main__":
    main()
