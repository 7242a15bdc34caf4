"""Capture inputs and weights of every nn.Linear of the shipped tiny DiT (models/tinydit/) on CPU.

Sampler as in the model card: rectified-flow Euler, 50 steps, CFG 2.0 (the model runs on the
2N batch: N conditional + N null-label rows). Run in float32 on CPU from the fp16 checkpoint.
Inputs are recorded at --steps (default 0,16,33,49 of 50) with --max-tokens rows subsampled per
call (fixed seed); weights are stored once per layer. Writes OUT/dit/tinydit_capture.safetensors
and prints {info, tensors} JSON on stdout (capture_all.py merges both models into manifest.json).

    .venv/bin/python experiments/capture/capture_tinydit.py --out data/captured
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "experiments", "tinydit"))
from lowbit_capture import Capture  # noqa: E402
from model import DiT  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16}


def load_model(ckpt_dir):
    cfg = json.load(open(os.path.join(ckpt_dir, "config.json")))
    model = DiT(**cfg["dit_config"])
    sd = load_file(os.path.join(ckpt_dir, "tinydit.safetensors"))
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    return model.eval(), cfg


@torch.no_grad()
def run(args):
    torch.set_num_threads(args.threads)
    model, cfg = load_model(args.ckpt)
    classes = [int(c) for c in args.classes.split(",")]
    y = torch.tensor([c for c in classes for _ in range(args.per_class)])
    steps = [int(s) for s in args.steps.split(",")]
    n = y.shape[0]
    cap = Capture(model, module_types=(nn.Linear,), steps=steps, max_tokens=args.max_tokens,
                  seed=args.seed, dtype=DTYPES[args.dtype], weight_dtype=DTYPES[args.weight_dtype],
                  model_name="tinydit")
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(n, model.in_channels, 32, 32, generator=g)
    ts = torch.linspace(1.0, 0.0, args.sample_steps + 1)
    for i in range(args.sample_steps):
        t, t_next = ts[i], ts[i + 1]
        tt = torch.full((n,), float(t)) * 1000.0
        with cap.step(i, timestep=float(t)):
            v = model.forward_with_cfg(x, tt, y, args.cfg)
        x = x + (t_next - t) * v
    cap.remove()
    os.makedirs(os.path.join(args.out, "dit"), exist_ok=True)
    rel = "dit/tinydit_capture.safetensors"
    md = dict(sampler="euler", sample_steps=args.sample_steps, cfg_scale=args.cfg,
              classes=args.classes, per_class=args.per_class, captured_steps=args.steps,
              timestep_convention="t in [0,1], t=1 noise; model input 1000*t",
              batch_note="rows are tokens of the 2N CFG batch (N cond then N null label)")
    entries = cap.save(os.path.join(args.out, rel), metadata=md, manifest_file=rel)
    nlin = len(cap.layers)
    print(f"tinydit: {nlin} linear layers, {len(entries)} tensors -> {rel}", file=sys.stderr)
    return entries, dict(layers=cap.layers, **md, seed=args.seed, max_tokens=args.max_tokens)


def parser():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "models", "tinydit"))
    ap.add_argument("--out", default=os.path.join(ROOT, "data", "captured"))
    ap.add_argument("--classes", default="0,4,7,11", help="class ids (default astronaut, hubble, brick, flower)")
    ap.add_argument("--per-class", type=int, default=1)
    ap.add_argument("--steps", default="0,16,33,49")
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=2.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="float16", choices=DTYPES)
    ap.add_argument("--weight-dtype", default="float16", choices=DTYPES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    return ap


if __name__ == "__main__":
    entries, info = run(parser().parse_args())
    json.dump(dict(info=info, tensors=entries), sys.stdout)
