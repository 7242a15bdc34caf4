"""Sanity Fréchet distances for the shipped tinydit + featnet, with real-vs-real reference figures.

The training-time figure compares samples with the held-out crops only; the held-out crops come
from a spatial strip of each image, so their content differs from the training area. This script
adds distribution-matched references: two disjoint random halves of the training crops, and
samples vs random training crops.

    python experiments/tinydit/frechet_check.py --out OUT.json   (GPU; about a minute on an H100)
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import data as tdata  # noqa: E402
from featnet import FeatNet, extract, frechet_distance  # noqa: E402
from model import DiT  # noqa: E402
from train import sample_euler, to_tensor  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-per-class", type=int, default=300)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    dev = "cuda"
    t0 = time.time()
    dcfg = json.load(open(os.path.join(ROOT, "models/tinydit/config.json")))
    model = DiT(**dcfg["dit_config"]).to(dev).eval()
    model.load_state_dict({k: v.float() for k, v in load_file(os.path.join(ROOT, "models/tinydit/tinydit.safetensors")).items()})
    fcfg = json.load(open(os.path.join(ROOT, "models/featnet/config.json")))
    net = FeatNet(**fcfg["config"]).to(dev).eval()
    net.load_state_dict(load_file(os.path.join(ROOT, "models/featnet/featnet.safetensors")))

    d = tdata.build()
    C = len(d["class_names"])
    n = args.n_per_class * C
    rng = np.random.default_rng(args.seed)
    # class-balanced disjoint random subsets of the training crops
    a_idx, b_idx = [], []
    for c in range(C):
        idx = rng.permutation(np.nonzero(d["y_train"] == c)[0])
        a_idx.append(idx[:args.n_per_class]); b_idx.append(idx[args.n_per_class:2 * args.n_per_class])
    a_idx, b_idx = np.concatenate(a_idx), np.concatenate(b_idx)
    f_a = extract(net, to_tensor(d["x_train"][a_idx], dev))
    f_b = extract(net, to_tensor(d["x_train"][b_idx], dev))
    f_held = extract(net, to_tensor(d["x_heldout"], dev))
    res = {
        "setup": dict(n_per_class=args.n_per_class, n=n, sample_steps=args.steps, subset_seed=args.seed,
                      sampler="rectified-flow Euler, bf16 autocast", torch=torch.__version__,
                      gpu=torch.cuda.get_device_name(0)),
        "train_A_vs_train_B": frechet_distance(f_a, f_b),
        "heldout_vs_train_A": frechet_distance(f_held, f_a),
    }
    y = torch.arange(C, device=dev).repeat_interleave(args.n_per_class)
    for s in (1.0, 2.0):
        gen = torch.cat([sample_euler(model, y[i:i + 1200], steps=args.steps, cfg_scale=s, seed=4321 + i, dev=dev)
                         for i in range(0, len(y), 1200)])
        f_g = extract(net, gen)
        res[f"samples_cfg{s:g}_vs_train_A"] = frechet_distance(f_g, f_a)
        res[f"samples_cfg{s:g}_vs_heldout"] = frechet_distance(f_g, f_held)
        with torch.no_grad():
            pred = torch.cat([net(gen[i:i + 1000]).argmax(1) for i in range(0, len(gen), 1000)])
        res[f"samples_cfg{s:g}_featnet_accuracy"] = round((pred == y).float().mean().item(), 4)
    res = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in res.items()}
    res["wall_seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res, indent=2))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
