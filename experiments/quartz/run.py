"""QuaRTZ questions (ALGORITHMS.md §3, §10 Q1-Q5) on synthetic and captured DiT activations.

Data: synthetic gaussian, laplace, student_t:3, outlier_channels (256 x 1024, seeds 0-2) and the
captured DiT activations (inputs of qkv / proj / fc1 / fc2 of all 8 blocks at steps 0, 16, 33, 49;
64 tokens x 256 or 1024 features). Groups run along the feature (K) axis.

  (a) LZS vs INT4 per group (FP16 scales) and naive INT4 per tensor / per token
  (b) MXFP4, NVFP4, FP4-g32-E4M3 at matched bits per element (bits/element from lowbit, scales included)
  (c) LZS truncation (paper) vs round-to-nearest (round=rne)
  (d) FLAG histograms (`lowbit bounds --prop quartz`) and how often a shared FLAG flushes small
      members of a group to zero (`lowbit quantize --scales`, the README's "one outlier + many
      small values is very rare" claim)
  (e) group size G in {8, 16, 32, 64, 128}: is the error linear in G?
  (f) INT8-stage scale s8 per tensor vs per token

The tensor x format grid is one `lowbit sweep` (sweep.json; raw output OUT/sweep/, not committed).
Outputs (OUT = results/quartz):
  formats.csv      one row per (tensor, format): bits/element, rel. MSE, SQNR, max error
  summary.csv      per (distribution, layer type, format): median / quartiles over tensors
  group_fit.csv    per (distribution, variant): linear and log2(G) fits of rel. MSE vs G
  flags.csv        per (tensor, G, s8): FLAG histogram, P(|q8| >= 8), P(FLAG > 0), the paper's
                   E_LZS argument (bounds), flushed-member statistics
  fig_bits.png, fig_flags.png, fig_group.png, fig_trunc_s8.png
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from common import ROOT, CAPTURED_DIT, parse_args, run_sweep, lowbit_json, num, write_csv, savefig  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SYNTH = ["gaussian", "laplace", "student_t:3", "outlier_channels"]
DISTS = ["gaussian", "laplace", "student_t3", "outlier_channels", "dit"]
DIST_LABEL = {"gaussian": "Gaussian", "laplace": "Laplace", "student_t3": "Student-t(3)",
              "outlier_channels": "outlier channels", "dit": "DiT activations (128)"}
SHAPE = (256, 1024)
SEEDS = [0, 1, 2]
FLAG_G = [16, 32]


def dist_name(source, tensor):
    if source.startswith("synthetic:"):
        return source.split(":", 1)[1].replace(":", "").replace("student_t3", "student_t3")
    return "dit"


def parse_format(fmt):
    """format spec -> (family, G, s8, round, calib)."""
    parts = fmt.split(":")
    opts = {}
    G = ""
    for p in parts[1:]:
        if p.startswith("g") and p[1:].isdigit():
            G = int(p[1:])
        elif "=" in p:
            k, v = p.split("=", 1)
            opts[k] = v
        else:
            opts[p] = True
    name = parts[0]
    if name == "lzs4":
        return "lzs4", G or 16, opts.get("s8", "tensor"), opts.get("round", "trunc"), opts.get("calib", "absmax")
    if name == "int4":
        if "tensor" in opts:
            return "int4_tensor", "", "", "rne", ""
        if "row" in opts:
            return "int4_token", "", "", "rne", ""
        return "int4_group", G, "", "rne", ""
    if name == "fp4_e2m1":
        return "fp4_g32_e4m3", G, "", "rne", ""
    return name, {"mxfp4": 32, "nvfp4": 16}.get(name, ""), "", "rne", ""


def read_safetensors(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        e = hdr[name]
        a, b = e["data_offsets"]
        f.seek(8 + n + a)
        buf = f.read(b - a)
    dt = {"F16": np.float16, "F32": np.float32, "BF16": None}[e["dtype"]]
    return np.frombuffer(buf, dtype=dt).reshape(e["shape"]).astype(np.float32)


def flushed_stats(x, flags, y, G, per_token):
    """Members of a group that the shared FLAG flushes to zero: q8 != 0 but the code is 0 (a
    per-element FLAG never flushes a nonzero q8, so every such loss is caused by sharing)."""
    x2 = x.reshape(-1, x.shape[-1]).astype(np.float64)
    amax = np.abs(x2).max(axis=1, keepdims=True) if per_token else np.abs(x2).max()
    s8 = amax / 128.0  # lowbit's absmax stage (docs/bounds.md): s8 = amax / 128
    q8 = np.clip(np.rint(x2 / np.where(s8 == 0, 1, s8)), -127, 127)
    nz = (q8 != 0).reshape(x2.shape[0], -1, G)
    fl = (nz & (y.reshape(x2.shape[0], -1, G) == 0))
    mag = np.abs(q8).reshape(x2.shape[0], -1, G)
    f = flags.reshape(x2.shape[0], -1).astype(np.int64)
    # members at the group's leading bit position (bitlen = FLAG + 3 when FLAG > 0)
    top = (mag >= (1 << (f + 2))[..., None]) & (f[..., None] > 0)
    nzc = nz.sum(-1)
    half = (fl.sum(-1) * 2 >= np.maximum(nzc, 1)) & (nzc > 0) & (fl.sum(-1) > 0)
    one = half & (top.sum(-1) == 1)
    return dict(frac_elem_flushed=float(fl.sum() / max(nz.sum(), 1)),
                frac_groups_any_flushed=float((fl.sum(-1) > 0).mean()),
                frac_groups_half_flushed=float(half.mean()),
                frac_groups_one_outlier_half_flushed=float(one.mean()))


def flag_rows(lowbit, tensors, tmp):
    """bounds --prop quartz + quantize --scales for each tensor, G in FLAG_G, s8 in {tensor, token}."""
    out = []
    for dist, label, src, x in tensors:
        for G in FLAG_G:
            for s8 in ("tensor", "token"):
                fmt = f"lzs4:g{G}:s8={s8}"
                b = lowbit_json(lowbit, "bounds", "--prop", "quartz", "--in", src, "--format", fmt)
                y_path, f_path = os.path.join(tmp, "y.npy"), os.path.join(tmp, "f.npy")
                subprocess.run([lowbit, "quantize", "--format", fmt, "--in", src, "--out", y_path,
                                "--scales", f_path], check=True, capture_output=True)
                y, flags = np.load(y_path), np.load(f_path)
                counts = b["flags"]["counts"]
                assert np.array_equal(np.bincount(flags.ravel(), minlength=5), counts), (src, fmt)
                row = dict(dist=dist, tensor=label, G=G, s8=s8, groups=b["flags"]["groups"],
                           **{f"flag{k}": c for k, c in enumerate(counts)},
                           p_elem_ge8=b["p_elem_ge8"], p_group_flag=b["p_group_flag"],
                           p_elem_truncated=b["p_elem_truncated"],
                           e_q8=b["e_q8"], e_lzs=b["e_lzs"], e_lzs_in_s8=b["e_lzs_in_s8"], e_total=b["e_total"],
                           e_q4_mean=b["e_q4_mean"], e_q4_bound=b["e_q4_bound"], int4_format=b["int4_format"],
                           threshold_paper=b["threshold_paper"], threshold_actual=b["threshold_actual"],
                           paper_condition_p_lt_half=int(b["p_elem_ge8"] < 0.5),
                           beats_int4_mean=int(b["beats_int4_mean"]), beats_int4_bound=int(b["beats_int4_bound"]),
                           sqnr_lzs=b["lzs"]["sqnr_db"], sqnr_int4=b["int4"]["sqnr_db"],
                           small_flushed_lzs=b["lzs"]["small"]["flushed_fraction"],
                           small_flushed_int4=b["int4"]["small"]["flushed_fraction"],
                           bit_entropy_lzs=b["lzs_codes"]["mean_bit_entropy"],
                           bit_entropy_int4=b["int4_codes"]["mean_bit_entropy"],
                           **flushed_stats(x, flags, y, G, s8 == "token"))
                out.append(row)
    return out


def g6(rows):
    return [{k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def pct(a, p):
    return float(np.percentile(a, p)) if len(a) else math.nan


def main():
    args = parse_args(__doc__.splitlines()[0])
    rows = run_sweep(args.lowbit, os.path.join(HERE, "sweep.json"), os.path.join(args.out, "sweep"))
    tidy = []
    for r in rows:
        if r.get("error"):
            sys.exit(f"failed cell {r['cell_id']}: {r['error']}")
        dist = dist_name(r["source"], r["tensor"])
        fam, G, s8, rnd, calib = parse_format(r["format"])
        layer = r["layer"] or ""
        tidy.append(dict(dist=dist, tensor=r["tensor"], seed=r["seed"] or "", step=r["step"] or "",
                         layer_type=(layer.split(".", 2)[2] if dist == "dit" else ""), shape=r["shape"],
                         format=r["format"], family=fam, G=G, s8=s8, round=rnd, calib=calib,
                         bits_per_element=num(r["bits_per_element"]), rel_mse=num(r["rel_mse"]),
                         sqnr_db=num(r["sqnr_db"]), max_abs=num(r["max_abs"])))
    tidy.sort(key=lambda t: (DISTS.index(t["dist"]), t["tensor"], t["format"]))
    cols = list(tidy[0].keys())
    write_csv(os.path.join(args.out, "formats.csv"), g6(tidy), cols)

    # summary over tensors: per (dist, layer_type, format); layer_type "all" pools a distribution
    groups = defaultdict(list)
    for t in tidy:
        groups[(t["dist"], "all", t["format"])].append(t)
        if t["dist"] == "dit":
            groups[(t["dist"], t["layer_type"], t["format"])].append(t)
    summary = []
    for (dist, lt, fmt), lst in groups.items():
        e = np.array([t["rel_mse"] for t in lst])
        s = np.array([t["sqnr_db"] for t in lst])
        t0 = lst[0]
        summary.append(dict(dist=dist, layer_type=lt, format=fmt, family=t0["family"], G=t0["G"], s8=t0["s8"],
                            round=t0["round"], calib=t0["calib"], tensors=len(lst),
                            bits_per_element_median=pct([t["bits_per_element"] for t in lst], 50),
                            rel_mse_median=pct(e, 50), rel_mse_q25=pct(e, 25), rel_mse_q75=pct(e, 75),
                            sqnr_db_median=pct(s, 50), sqnr_db_min=float(s.min()), sqnr_db_max=float(s.max())))
    summary.sort(key=lambda r: (DISTS.index(r["dist"]), r["layer_type"], r["family"], str(r["G"]), r["s8"], r["round"]))
    write_csv(os.path.join(args.out, "summary.csv"), g6(summary), list(summary[0].keys()))

    # rel. MSE vs G: linear fit (a + b G) and log fit (a + b log2 G) on the medians
    fits = []
    for dist in DISTS:
        for variant, sel in variants().items():
            pts = sorted((r["G"], r["rel_mse_median"]) for r in summary
                         if r["dist"] == dist and r["layer_type"] == "all" and sel(r))
            if len(pts) < 3:
                continue
            G = np.array([p[0] for p in pts], float)
            e = np.array([p[1] for p in pts])
            fit = dict(dist=dist, variant=variant)
            for name, xv in (("lin", G), ("log2", np.log2(G))):
                b, a = np.polyfit(xv, e, 1)
                pred = a + b * xv
                fit[f"{name}_intercept"], fit[f"{name}_slope"] = a, b
                fit[f"{name}_r2"] = 1 - ((e - pred) ** 2).sum() / ((e - e.mean()) ** 2).sum()
            fit.update({f"rel_mse_g{int(g)}": v for g, v in zip(G, e)})
            fit["ratio_g128_over_g8"] = e[-1] / e[0]
            fits.append(fit)
    write_csv(os.path.join(args.out, "group_fit.csv"), g6(fits), list(fits[0].keys()))

    # FLAG histograms and the paper's argument, one bounds + one quantize per (tensor, G, s8)
    with tempfile.TemporaryDirectory() as tmp:
        tensors = []
        for d in SYNTH:
            for seed in SEEDS:
                p = os.path.join(tmp, f"{d.replace(':', '')}_{seed}.npy")
                subprocess.run([args.lowbit, "synth", "--dist", d, "--shape", f"{SHAPE[0]},{SHAPE[1]}",
                                "--seed", str(seed), "--out", p], check=True, capture_output=True)
                tensors.append((d.replace(":", ""), f"{d}(seed={seed})", p, np.load(p)))
        for name in sorted({t["tensor"] for t in tidy if t["dist"] == "dit"}):
            tensors.append(("dit", name, f"{CAPTURED_DIT}:{name}", read_safetensors(CAPTURED_DIT, name)))
        flags = flag_rows(args.lowbit, tensors, tmp)
    write_csv(os.path.join(args.out, "flags.csv"), g6(flags), list(flags[0].keys()))

    plots(args.out, summary, fits, flags, tidy)


def variants():
    return {
        "lzs4 trunc s8=tensor": lambda r: r["family"] == "lzs4" and r["round"] == "trunc" and r["s8"] == "tensor" and r["calib"] == "absmax",
        "lzs4 trunc s8=token": lambda r: r["family"] == "lzs4" and r["round"] == "trunc" and r["s8"] == "token" and r["calib"] == "absmax",
        "lzs4 rne s8=tensor": lambda r: r["family"] == "lzs4" and r["round"] == "rne" and r["s8"] == "tensor" and r["calib"] == "absmax",
        "lzs4 rne s8=token": lambda r: r["family"] == "lzs4" and r["round"] == "rne" and r["s8"] == "token" and r["calib"] == "absmax",
        "int4 gG fp16 scale": lambda r: r["family"] == "int4_group",
    }


def plots(out, summary, fits, flags, tidy):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def S(dist, **kw):
        return [r for r in summary if r["dist"] == dist and r["layer_type"] == "all"
                and all(r[k] == v for k, v in kw.items())]

    styles = {"lzs4 trunc s8=tensor": ("C0", "o-"), "lzs4 trunc s8=token": ("C1", "o-"),
              "lzs4 rne s8=tensor": ("C0", "s--"), "lzs4 rne s8=token": ("C1", "s--"),
              "int4 gG fp16 scale": ("C2", "^-")}
    singles = {"int4_tensor": ("int4 per tensor", "C7", "v"), "int4_token": ("int4 per token", "k", "v"),
               "mxfp4": ("MXFP4", "C3", "D"), "nvfp4": ("NVFP4", "C4", "*"), "fp4_g32_e4m3": ("FP4 g32 E4M3", "C5", "P")}

    # 1. SQNR vs bits/element
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    axes = axes.ravel()
    for ax, dist in zip(axes, DISTS):
        for variant, sel in variants().items():
            pts = sorted(((r["bits_per_element_median"], r["sqnr_db_median"], r["G"]) for r in S(dist) if sel(r)))
            c, st = styles[variant]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], st, color=c, label=variant, ms=4)
            if variant in ("lzs4 trunc s8=token", "int4 gG fp16 scale"):
                for b, s, G in pts:
                    ax.annotate(f"g{G}", (b, s), textcoords="offset points", xytext=(2, -9), fontsize=6, color=c)
        for fam, (lab, c, mk) in singles.items():
            r = S(dist, family=fam)
            ax.plot([r[0]["bits_per_element_median"]], [r[0]["sqnr_db_median"]], mk, color=c, ms=8, label=lab)
        ax.set_title(DIST_LABEL[dist])
        ax.set_xlabel("bits / element (scales included)")
        ax.set_xlim(3.95, 6.1)
        ax.grid(alpha=0.3)
    for ax in (axes[0], axes[3]):
        ax.set_ylabel("SQNR dB (median over tensors)")
    axes[5].axis("off")
    axes[5].legend(*axes[0].get_legend_handles_labels(), loc="center", fontsize=10,
                   title="LZS lines: G = 128 ... 8 (left to right)")
    savefig(fig, os.path.join(out, "fig_bits.png"))
    plt.close(fig)

    # 2. FLAG histograms, G = 16
    fig, axes = plt.subplots(2, 3, figsize=(16, 8), sharey=True)
    axes = axes.ravel()
    for ax, dist in zip(axes, DISTS):
        for k, (s8, c) in enumerate((("tensor", "C0"), ("token", "C1"))):
            rows = [f for f in flags if f["dist"] == dist and f["G"] == 16 and f["s8"] == s8]
            cnt = np.array([[f[f"flag{i}"] for i in range(5)] for f in rows]).sum(0)
            frac = cnt / cnt.sum()
            ax.bar(np.arange(5) + (k - 0.5) * 0.38, frac, 0.38, color=c, label=f"s8 per {s8}")
            half = np.mean([f["frac_groups_half_flushed"] for f in rows])
            ax.text(0.02, 0.95 - 0.07 * k, f"s8 per {s8}: P(FLAG>0) = {1 - frac[0]:.2f}, half-flushed groups = {half:.2f}",
                    transform=ax.transAxes, fontsize=8, color=c, va="top")
        ax.set_title(DIST_LABEL[dist] + ", G=16")
        ax.set_xlabel("FLAG (bits dropped)")
        ax.set_xticks(range(5))
    ax = axes[5]
    for k, lt in enumerate(["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]):
        rows = [f for f in flags if f["dist"] == "dit" and f["G"] == 16 and f["s8"] == "token"
                and f["tensor"].endswith(lt + ".input")]
        cnt = np.array([[f[f"flag{i}"] for i in range(5)] for f in rows]).sum(0)
        ax.bar(np.arange(5) + (k - 1.5) * 0.2, cnt / cnt.sum(), 0.2, label=f"{lt} input")
    ax.set_title("DiT by layer input, G=16, s8 per token")
    ax.set_xlabel("FLAG")
    ax.legend(fontsize=7, loc="center left")
    axes[0].set_ylabel("fraction of groups")
    axes[3].set_ylabel("fraction of groups")
    axes[0].legend(fontsize=8, loc="center left")
    for ax in axes:
        ax.set_ylim(0, 1.12)
        ax.grid(axis="y", alpha=0.3)
    savefig(fig, os.path.join(out, "fig_flags.png"))
    plt.close(fig)

    # 3. rel. MSE vs G (linear axes)
    fig, axes = plt.subplots(2, 3, figsize=(16, 8))
    axes = axes.ravel()
    for ax, dist in zip(axes, DISTS):
        for variant, sel in variants().items():
            pts = sorted((r["G"], r["rel_mse_median"]) for r in S(dist) if sel(r))
            c, st = styles[variant]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], st, color=c, label=variant, ms=4)
        ax.set_title(DIST_LABEL[dist])
        ax.set_xlabel("group size G")
        ax.set_xticks([8, 16, 32, 64, 128])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("relative MSE (median)")
    axes[3].set_ylabel("relative MSE (median)")
    axes[5].axis("off")
    axes[5].legend(*axes[0].get_legend_handles_labels(), loc="center", fontsize=10,
                   title="linear axes: a straight line = linear in G")
    savefig(fig, os.path.join(out, "fig_group.png"))
    plt.close(fig)

    # 4. truncation vs rne and s8 per tensor vs per token (G = 16), with naive INT4 and INT4 g64
    bars = [("lzs4:g16:s8=tensor:round=trunc", "LZS g16 tensor trunc", "C0", None),
            ("lzs4:g16:s8=tensor:round=rne", "LZS g16 tensor rne", "C0", "//"),
            ("lzs4:g16:s8=token:round=trunc", "LZS g16 token trunc", "C1", None),
            ("lzs4:g16:s8=token:round=rne", "LZS g16 token rne", "C1", "//"),
            ("int4:tensor", "INT4 per tensor", "C7", None),
            ("int4:row", "INT4 per token", "k", None),
            ("int4:g64:scale=fp16", "INT4 g64 fp16", "C2", None)]
    fig, ax = plt.subplots(figsize=(12, 4.2))
    w = 0.11
    for k, (fmt, lab, c, hatch) in enumerate(bars):
        vals = [S(d, format=fmt)[0]["sqnr_db_median"] for d in DISTS]
        ax.bar(np.arange(len(DISTS)) + (k - 3) * w, vals, w, color=c, hatch=hatch, edgecolor="w", label=lab)
    ax.set_xticks(range(len(DISTS)))
    ax.set_xticklabels([DIST_LABEL[d] for d in DISTS])
    ax.set_ylabel("SQNR dB (median)")
    ax.set_title("LZS truncation vs round-to-nearest, s8 per tensor vs per token, against naive INT4")
    ax.legend(fontsize=8, ncol=4, loc="upper center")
    ax.set_ylim(0, 24)
    ax.grid(axis="y", alpha=0.3)
    savefig(fig, os.path.join(out, "fig_trunc_s8.png"))
    plt.close(fig)


if __name__ == "__main__":
    main()
