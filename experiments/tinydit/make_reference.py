"""PyTorch reference outputs of the shipped tinydit and featnet, for lowbit's C++ engine.

Writes two files:

  --fixture  tests/data/dit_reference.safetensors  (small; the C++ engine's tests compare with it)
      noise          (4, 3, 32, 32) f32  standard normal, torch CPU generator seed 0
      labels         (4,) i32            classes 0, 3, 7, 11
      t              (4,) f32            timestep inputs 1000*t, one per image
      forward        (4, 3, 32, 32) f32  model(noise, t, labels)
      forward_null   (4, 3, 32, 32) f32  model(noise, t, null label 12)
      cfg            (4, 3, 32, 32) f32  forward_with_cfg(noise, 1000, labels, 2.0)
      sample_s4      (4, 3, 32, 32) f32  Euler, 4 steps, CFG 2.0, before the final clamp
      sample_s50     (4, 3, 32, 32) f32  Euler, 50 steps, CFG 2.0, before the final clamp
      *_f64          the same computed in float64 (the distance between the float32 and float64
                     results is the scale of float32 rounding the C++ tolerance is stated against)
      featnet_in     (8, 3, 32, 32) f32  the clamped 50-step samples and 4 real crops
      featnet_feat   (8, 128) f32        featnet.features(featnet_in)
      featnet_logits (8, 12) f32         featnet(featnet_in)

  --stats   models/featnet/real_stats.safetensors  (cached reference statistics of real crops)
      train.mu (128) f64, train.sigma (128, 128) f64: featnet features of 300 training crops per
      class (the class-balanced subset A of frechet_check.py, seed 7), 3600 crops
      heldout.mu, heldout.sigma: all 3600 held-out crops
      metadata: counts, subset seed, torch version

Everything runs in float32/float64 on the CPU (no TF32, no autocast). The crops come from
data.build() (needs scikit-image and scikit-learn) or from --crops NPZ with x_train, y_train,
x_heldout (uint8 NHWC) when those are missing where this runs.

    python experiments/tinydit/make_reference.py --fixture F --stats S [--crops crops.npz]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from featnet import FeatNet  # noqa: E402
from model import DiT  # noqa: E402

LABELS = [0, 3, 7, 11]
T_INPUTS = [1000.0, 730.0, 310.0, 20.0]


def euler(model, x, y, steps, cfg_scale):
    """train.sample_euler without autocast and without the final clamp (dtype follows x)."""
    n = x.shape[0]
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float32)
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        tt = torch.full((n,), float(t), dtype=torch.float32) * 1000.0
        v = model.forward_with_cfg(x, tt.to(x.dtype), y, cfg_scale)
        x = x + (t_next - t).to(x.dtype) * v
    return x


def crops_subset(d, per_class=300, seed=7):
    rng = np.random.default_rng(seed)
    idx = []
    for c in range(int(d["y_train"].max()) + 1):
        idx.append(rng.permutation(np.nonzero(d["y_train"] == c)[0])[:per_class])
    return np.concatenate(idx)


def to_float(x_uint8):
    return torch.from_numpy(np.ascontiguousarray(x_uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--crops", help="npz with x_train (subset A), x_heldout; default: data.build()")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    dcfg = json.load(open(os.path.join(ROOT, "models/tinydit/config.json")))
    sd = load_file(os.path.join(ROOT, "models/tinydit/tinydit.safetensors"))
    m32 = DiT(**dcfg["dit_config"]).eval()
    m32.load_state_dict({k: v.float() for k, v in sd.items()})
    m64 = DiT(**dcfg["dit_config"]).double().eval()
    m64.load_state_dict({k: v.double() for k, v in sd.items()})
    fcfg = json.load(open(os.path.join(ROOT, "models/featnet/config.json")))
    net = FeatNet(**fcfg["config"]).eval()
    net.load_state_dict(load_file(os.path.join(ROOT, "models/featnet/featnet.safetensors")))

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.tensor(LABELS)
    null = torch.full_like(y, dcfg["dit_config"]["num_classes"])
    t = torch.tensor(T_INPUTS)
    out = {"noise": noise, "labels": y.int(), "t": t}
    for suffix, m, dt in (("", m32, torch.float32), ("_f64", m64, torch.float64)):
        x = noise.to(dt)
        out["forward" + suffix] = m(x, t.to(dt), y)
        out["forward_null" + suffix] = m(x, t.to(dt), null)
        out["cfg" + suffix] = m.forward_with_cfg(x, torch.full((4,), 1000.0, dtype=dt), y, 2.0)
        out["sample_s4" + suffix] = euler(m, x, y, 4, 2.0)
        out["sample_s50" + suffix] = euler(m, x, y, 50, 2.0)

    if args.crops:
        z = np.load(args.crops)
        x_a, x_held = z["x_train"], z["x_heldout"]
    else:
        import data as tdata
        d = tdata.build()
        x_a, x_held = d["x_train"][crops_subset(d)], d["x_heldout"]
    feat_in = torch.cat([out["sample_s50"].clamp(-1, 1), to_float(x_a[[0, 1000, 2000, 3000]])])
    out["featnet_in"] = feat_in
    out["featnet_feat"] = net.features(feat_in)
    out["featnet_logits"] = net(feat_in)
    out = {k: v.contiguous() for k, v in out.items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.fixture)), exist_ok=True)
    save_file(out, args.fixture, metadata={"torch": torch.__version__, "script": "experiments/tinydit/make_reference.py"})

    stats = {}
    for name, xs in (("train", x_a), ("heldout", x_held)):
        f = torch.cat([net.features(to_float(xs[i:i + 500])) for i in range(0, len(xs), 500)]).double().numpy()
        stats[name + ".mu"] = torch.from_numpy(f.mean(0))
        stats[name + ".sigma"] = torch.from_numpy(np.cov(f, rowvar=False))
        stats[name + ".n"] = torch.tensor([len(f)], dtype=torch.int32)
    save_file(stats, args.stats, metadata={
        "torch": torch.__version__, "features": "featnet.features (relu(fc1)), float32, CPU",
        "train": "300 training crops per class, class-balanced subset seed 7 (frechet_check.py subset A)",
        "heldout": "all held-out crops (spatial strip)", "script": "experiments/tinydit/make_reference.py"})
    d32 = (out["sample_s50"] - out["sample_s50_f64"].float()).abs().max().item()
    print(f"fixture {args.fixture}: {len(out)} tensors; |sample_s50 f32 - f64| max {d32:.3g}")
    print(f"stats {args.stats}: train n={len(x_a)}, heldout n={len(x_held)}")


if __name__ == "__main__":
    main()
