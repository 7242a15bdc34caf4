"""Train the tiny class-conditional DiT with rectified flow, sample, and (optionally) train the
FID feature network and measure a Frechet distance.

Objective (rectified flow / flow matching, as in SD3 and SiT):
    x_t = (1 - t) * x0 + t * eps,   t ~ U(0, 1),   eps ~ N(0, I),   x0 = image in [-1, 1]
    model predicts velocity v = eps - x0;  loss = mean squared error.
    The model's timestep input is 1000 * t (same range as DiT's DDPM steps).
Sampler: Euler, t from 1 to 0 on a uniform grid (default 50 steps), classifier-free guidance
    v = v_null + s * (v_cond - v_null), default s = 2.0 (null label = num_classes).

    python experiments/tinydit/train.py --out OUTDIR [--train-seconds 380] [--featnet]

Writes OUTDIR/tinydit/{tinydit.safetensors, config.json, loss.csv, loss.png, samples.png}
and, with --featnet, OUTDIR/featnet/{featnet.safetensors, config.json}.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as tdata  # noqa: E402
from model import DiT, TINYDIT_CONFIG  # noqa: E402

LOG_LINES = []


def log(msg):
    print(msg, flush=True)
    LOG_LINES.append(msg)


def to_tensor(x_uint8, dev):
    x = torch.from_numpy(x_uint8).to(dev).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


@torch.no_grad()
def sample_euler(model, y, steps=50, cfg_scale=2.0, seed=0, dev="cuda"):
    """Rectified-flow Euler sampler from t=1 (noise) to t=0 (data). Returns images in [-1, 1]."""
    g = torch.Generator(device=dev).manual_seed(seed)
    n = y.shape[0]
    x = torch.randn(n, model.in_channels, 32, 32, device=dev, generator=g)
    ts = torch.linspace(1.0, 0.0, steps + 1, device=dev)
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        tt = torch.full((n,), float(t), device=dev) * 1000.0
        with torch.autocast("cuda", dtype=torch.bfloat16):
            if cfg_scale == 1.0:
                v = model(x, tt, y)
            else:
                v = model.forward_with_cfg(x, tt, y, cfg_scale)
        x = x + (t_next - t) * v.float()
    return x.clamp(-1, 1)


def to_uint8(x):
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def make_grid(rows, gap=4, scale=2):
    """rows: list of lists of HxWx3 uint8 (None = gap column). Returns uint8 image."""
    H = 32
    row_imgs = []
    for r in rows:
        cols = []
        for im in r:
            cols.append(np.full((H, gap * 2, 3), 255, np.uint8) if im is None else im)
            cols.append(np.full((H, gap, 3), 255, np.uint8))
        row_imgs.append(np.concatenate(cols[:-1], axis=1))
        row_imgs.append(np.full((gap, row_imgs[-1].shape[1], 3), 255, np.uint8))
    g = np.concatenate(row_imgs[:-1], axis=0)
    return g.repeat(scale, 0).repeat(scale, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--max-steps", type=int, default=40000)
    ap.add_argument("--train-seconds", type=float, default=380.0)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=2.0)
    ap.add_argument("--featnet", action="store_true")
    ap.add_argument("--featnet-seconds", type=float, default=60.0)
    args = ap.parse_args()

    from safetensors.torch import save_file
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_start = time.time()
    dev = "cuda"
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    out_dit = os.path.join(args.out, "tinydit")
    os.makedirs(out_dit, exist_ok=True)
    log(f"torch {torch.__version__} device {torch.cuda.get_device_name(0)}")

    # ---- data -------------------------------------------------------------------------------
    d = tdata.build()
    import hashlib
    data_sha = hashlib.sha256(d["x_train"].tobytes()).hexdigest()[:16]
    log(f"data: train {d['x_train'].shape} heldout {d['x_heldout'].shape} sha256[:16] {data_sha} "
        f"({time.time() - t_start:.1f}s)")
    x_train = to_tensor(d["x_train"], dev)
    y_train = torch.from_numpy(d["y_train"]).to(dev)
    x_held = to_tensor(d["x_heldout"], dev)
    y_held = torch.from_numpy(d["y_heldout"]).to(dev)
    C = len(d["class_names"])

    # ---- model ------------------------------------------------------------------------------
    cfg = dict(TINYDIT_CONFIG, num_classes=C)
    model = DiT(**cfg).to(dev)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"DiT params {nparams} ({nparams * 2 / 1e6:.2f} MB at 16 bit)")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            betas=(0.9, 0.999), weight_decay=0.0)
    g = torch.Generator(device=dev).manual_seed(args.seed)

    # ---- train ------------------------------------------------------------------------------
    rows = []
    t0 = time.time()
    model.train()
    step = 0
    ema_params = [p for p in ema.parameters()]
    model_params = [p for p in model.parameters()]
    for step in range(1, args.max_steps + 1):
        lr = args.lr * min(1.0, step / args.warmup)
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = torch.randint(0, len(x_train), (args.batch,), device=dev, generator=g)
        x0, y = x_train[idx], y_train[idx]
        flip = torch.rand(args.batch, device=dev, generator=g) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        eps = torch.randn(x0.shape, device=dev, generator=g)
        t = torch.rand(args.batch, device=dev, generator=g)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * eps
        with torch.autocast("cuda", dtype=torch.bfloat16):
            v = model(xt, t * 1000.0, y)
        loss = F.mse_loss(v.float(), eps - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(args.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema_params, model_params, 1 - decay)
        if step % 50 == 0:
            el = time.time() - t0
            rows.append((step, loss.item(), gn.item(), lr, el))
            if step % 1000 == 0:
                recent = np.mean([r[1] for r in rows[-20:]])
                log(f"step {step} loss {loss.item():.4f} (mean last 1000: {recent:.4f}) gn {gn.item():.3f} {el:.1f}s")
            if el > args.train_seconds:
                break
    train_wall = time.time() - t0
    final_loss = float(np.mean([r[1] for r in rows[-20:]]))
    log(f"trained {step} steps in {train_wall:.1f}s; final loss (mean of last 1000 steps) {final_loss:.4f}")

    # ---- save -------------------------------------------------------------------------------
    sd = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in ema.state_dict().items()}
    meta_cfg = dict(
        model="tinydit", arch="DiT (Peebles & Xie), facebookresearch/DiT parameter names",
        dit_config=cfg, weights="EMA", dtype="float16", objective="rectified_flow_velocity",
        timestep_input="1000*t, t in [0,1], t=1 is pure noise", interpolation="x_t=(1-t)*x0+t*eps, v=eps-x0",
        sampler="euler", default_sample_steps=args.sample_steps, default_cfg_scale=args.cfg,
        null_class=C, image_range="[-1,1] NCHW 32x32 RGB", class_names=d["class_names"],
        data_counts=d["counts"], data_sha256_16=data_sha, seed=args.seed, batch=args.batch, lr=args.lr,
        warmup=args.warmup, ema_decay=args.ema, steps=step, train_seconds=round(train_wall, 1),
        final_loss=round(final_loss, 5), params=nparams, gpu=torch.cuda.get_device_name(0),
        torch=torch.__version__,
    )
    save_file(sd, os.path.join(out_dit, "tinydit.safetensors"),
              metadata={"config": json.dumps(meta_cfg)})
    with open(os.path.join(out_dit, "loss.csv"), "w") as f:
        f.write("step,loss,grad_norm,lr,elapsed_s\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]:.6f},{r[2]:.4f},{r[3]:.3e},{r[4]:.2f}\n")
    steps_arr = np.array([r[0] for r in rows])
    loss_arr = np.array([r[1] for r in rows])
    k = 20
    smooth = np.convolve(loss_arr, np.ones(k) / k, mode="valid") if len(loss_arr) > k else loss_arr
    plt.figure(figsize=(6, 3.5), dpi=100)
    plt.plot(steps_arr, loss_arr, alpha=0.3, lw=0.8, label="loss (every 50 steps)")
    plt.plot(steps_arr[len(steps_arr) - len(smooth):], smooth, lw=1.5, label=f"moving mean ({k} points)")
    plt.xlabel("step"); plt.ylabel("rectified-flow MSE"); plt.ylim(0, max(1.0, float(np.percentile(loss_arr, 99))))
    plt.title("tinydit training loss"); plt.legend(); plt.grid(alpha=0.3); plt.tight_layout()
    plt.savefig(os.path.join(out_dit, "loss.png")); plt.close()

    # ---- sample grid: per class, 2 held-out real crops | 8 samples ---------------------------
    ema.eval()
    n_per = 8
    y = torch.arange(C, device=dev).repeat_interleave(n_per)
    ts0 = time.time()
    xs = to_uint8(sample_euler(ema, y, steps=args.sample_steps, cfg_scale=args.cfg, seed=1234, dev=dev))
    log(f"grid sampling {len(y)} images, {args.sample_steps} steps, cfg {args.cfg}: {time.time() - ts0:.2f}s")
    grid_rows = []
    for c in range(C):
        real_idx = np.nonzero(d["y_heldout"] == c)[0][[0, 150]]
        grid_rows.append([d["x_heldout"][i] for i in real_idx] + [None] + list(xs[c * n_per:(c + 1) * n_per]))
    grid = make_grid(grid_rows)
    from skimage.io import imsave
    imsave(os.path.join(out_dit, "samples.png"), grid, check_contrast=False)

    # ---- feature network + Frechet distance --------------------------------------------------
    if args.featnet:
        from featnet import FEATNET_CONFIG, extract, frechet_distance, train_featnet
        out_fn = os.path.join(args.out, "featnet")
        os.makedirs(out_fn, exist_ok=True)
        net, info = train_featnet(x_train, y_train, x_held, y_held, C, seed=args.seed,
                                  max_seconds=args.featnet_seconds, log=log)
        f_held = extract(net, x_held)
        sub = torch.arange(0, len(x_train), len(x_train) // len(x_held), device=dev)[:len(x_held)]
        f_train = extract(net, x_train[sub])
        fd = {"train_vs_heldout_real": frechet_distance(f_train, f_held)}
        n_fid = 300
        y_fid = torch.arange(C, device=dev).repeat_interleave(n_fid)
        for s in (1.0, args.cfg):
            gen = []
            for i in range(0, len(y_fid), 1200):
                gen.append(sample_euler(ema, y_fid[i:i + 1200], steps=args.sample_steps, cfg_scale=s,
                                        seed=4321 + i, dev=dev))
            gen = torch.cat(gen)
            fd[f"samples_cfg{s:g}_vs_heldout"] = frechet_distance(extract(net, gen), f_held)
            with torch.no_grad():
                pred = torch.cat([net(gen[i:i + 1000]).argmax(1) for i in range(0, len(gen), 1000)])
            fd[f"samples_cfg{s:g}_featnet_class_accuracy"] = round((pred == y_fid).float().mean().item(), 4)
        fd = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in fd.items()}
        log(f"frechet (featnet, {n_fid}/class samples, {args.sample_steps} Euler steps; "
            f"{len(x_held)} held-out crops): {fd}")
        fcfg = dict(model="featnet", config=dict(FEATNET_CONFIG, num_classes=C), dtype="float32",
                    feature_layer="relu(fc1(.)) = features(), 128-d penultimate", input="[-1,1] NCHW 32x32 RGB",
                    class_names=d["class_names"], seed=args.seed, **info, frechet=fd,
                    frechet_setup=dict(samples_per_class=n_fid, sample_steps=args.sample_steps,
                                       heldout_crops=len(x_held)))
        save_file({k: v.detach().float().contiguous().cpu() for k, v in net.state_dict().items()},
                  os.path.join(out_fn, "featnet.safetensors"), metadata={"config": json.dumps(fcfg)})
        with open(os.path.join(out_fn, "config.json"), "w") as f:
            json.dump(fcfg, f, indent=2)
        meta_cfg["frechet_featnet"] = fd

    meta_cfg["total_wall_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(out_dit, "config.json"), "w") as f:
        json.dump(meta_cfg, f, indent=2)
    log(f"total wall {time.time() - t_start:.1f}s")
    with open(os.path.join(args.out, "run_log.txt"), "w") as f:
        f.write("\n".join(LOG_LINES) + "\n")


if __name__ == "__main__":
    main()
