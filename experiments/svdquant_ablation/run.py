"""SVDQuant ablation on captured (X, W) pairs (ALGORITHMS.md §2, §10 Q7).

W4A4 with INT4 g64 (FP16 scales) and NVFP4 on both sides, on the DiT's qkv/proj/fc1/fc2 layers
of all 8 blocks at sampling steps 33 and 49 and on the MiniLM encoder layers 0 and 5 (the ones
with captured weights): naive RTN, smoothing only (SVDQuant's 39-candidate α grid), SVD only,
LoRC, smoothing + SVD (rank 32, low-rank-aware α search), + iterative refinement (100
iterations, early stop), and an SVDQuant rank sweep {8, 16, 32, 64} (INT4; DiT step 33 + MiniLM).

Two `lowbit sweep` files (sweep_main.json, sweep_rank.json) do the work; their raw outputs go to
OUT/sweep_main/ and OUT/sweep_rank/ (not committed: the info column holds every search
candidate and singular value). This script writes the tidy CSVs and the figures:

  layers.csv           one row per (pair, format, method): error, bits, α, residual ratios
  summary.csv          per (model, format, method): median / quartiles / extremes over layers
  alpha_shift.csv      per (pair, format): α chosen by smoothing alone vs with the rank-32 branch
  alpha_curves.csv     every α-grid candidate's output error, without and with the branch
  refine_iterations.csv  output error of every refinement iteration
  fig_methods.png, fig_rank.png, fig_alpha_shift.png, fig_refine.png
"""
import json
import math
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from common import ROOT, parse_args, run_sweep, num, write_csv, savefig  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

METHODS = {  # algorithm spec -> (method id, label)
    "rtn": ("naive", "naive RTN"),
    "smoothquant:alpha=search": ("smooth", "smoothing only"),
    "svd:rank=32": ("svd", "SVD only (r=32)"),
    "lorc:rank=32": ("lorc", "LoRC (r=32)"),
    "svdquant:rank=32": ("svdquant", "smooth + SVD (r=32)"),
    "svdquant:rank=32:iters=100": ("svdquant_refine", "+ refinement"),
}
METHOD_ORDER = [v[0] for v in METHODS.values()]
LABEL = {v[0]: v[1] for v in METHODS.values()}
FMT_LABEL = {"int4:g64:scale=fp16": "INT4 g64 (FP16 scale)", "nvfp4": "NVFP4"}
MINILM_TYPES = {
    "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
    "attention.output.dense": "attn_out", "intermediate.dense": "ffn_in", "output.dense": "ffn_out",
}


def method_of(alg):
    if alg in METHODS:
        return METHODS[alg][0]
    if alg.startswith("svdquant:rank="):
        return "svdquant"
    raise ValueError(alg)


def layer_type(model, layer):
    if model == "dit":
        return layer.split(".", 2)[2]  # blocks.N.attn.qkv -> attn.qkv
    for k, v in MINILM_TYPES.items():
        if layer.endswith(k):
            return v
    return layer


def tidy(rows):
    out, curves, iters = [], [], []
    for r in rows:
        if r.get("error"):
            sys.exit(f"failed cell {r['cell_id']}: {r['error']}")
        model = "dit" if "tinydit" in r["source"] else "minilm"
        info = json.loads(r["info"]) if r.get("info") else {}
        alg = r["algorithm"]
        method = method_of(alg)
        rank = int(info.get("rank", 0))
        tokens, m = (int(v) for v in r["shape"].split("x"))
        numel = int(num(r["numel"]))
        n = numel // tokens
        y_energy = num(r["mse"]) * numel / num(r["rel_mse"])  # ‖Y‖²_F
        key = dict(model=model, step=int(num(r["step"])), layer=r["layer"],
                   layer_type=layer_type(model, r["layer"]), fmt=r["afmt"], in_features=m,
                   out_features=n, tokens=tokens)
        row = dict(key, method=method, label=LABEL[method] if alg in METHODS else f"smooth + SVD (r={rank})",
                   algorithm=alg, rank=rank, w_bits=num(r["w_bits"]), a_bits=num(r["a_bits"]),
                   rel_mse=num(r["rel_mse"]), sqnr_db=num(r["sqnr_db"]), max_abs=num(r["max_abs"]),
                   alpha=info.get("smooth_alpha", ""), beta=info.get("smooth_beta", ""),
                   residual_fro_ratio=info.get("residual_fro_ratio", ""),
                   residual_max_ratio=info.get("residual_max_ratio", ""),
                   branch_energy_fraction=info.get("branch_energy_fraction", ""),
                   iterations_run=info.get("iterations_run", ""), best_iteration=info.get("best_iteration", ""),
                   lorc_weight_err_ratio=(info["compensated_error_fro"] / info["weight_error_fro"]
                                          if "compensated_error_fro" in info else ""),
                   seconds=num(r["seconds"]))
        if row["alpha"] != "":
            row["alpha"] = round(float(row["alpha"]), 6)
            row["beta"] = round(float(row["beta"]), 6)
        out.append(row)
        if alg in ("smoothquant:alpha=search", "svdquant:rank=32") and "smooth_search" in info:
            best = min(e for _, _, e in info["smooth_search"])
            if alg == "smoothquant:alpha=search" and not math.isclose(best, num(r["mse"]) * numel, rel_tol=1e-6):
                print(f"note: search minimum {best} != final error {num(r['mse']) * numel} ({r['layer']} {alg})")
            for a, b, e in info["smooth_search"]:
                curves.append(dict(key, search="smooth" if method == "smooth" else "svdquant_r32",
                                   alpha=round(a, 6), beta=round(b, 6), err_sum=e, rel_mse=e / y_energy))
        if alg == "svdquant:rank=32:iters=100":
            for k, e in enumerate(info.get("iteration_errors", []), 1):
                iters.append(dict(key, iteration=k, err_sum=e, rel_mse=e / y_energy,
                                  kept=int(k == int(info["best_iteration"]))))
    return out, curves, iters


def g6(rows):
    """Floats to 6 significant digits (keeps the CSVs small)."""
    return [{k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def q(a, p):
    return float(np.percentile(a, p)) if len(a) else math.nan


def main():
    args = parse_args(__doc__.splitlines()[0])
    rows = run_sweep(args.lowbit, os.path.join(HERE, "sweep_main.json"), os.path.join(args.out, "sweep_main"))
    rows += run_sweep(args.lowbit, os.path.join(HERE, "sweep_rank.json"), os.path.join(args.out, "sweep_rank"))
    layers, curves, iters = tidy(rows)
    keycols = ["model", "step", "layer", "layer_type", "fmt", "in_features", "out_features", "tokens"]
    layers.sort(key=lambda r: (r["fmt"], r["model"], r["step"], r["layer"], METHOD_ORDER.index(r["method"]), r["rank"]))
    write_csv(os.path.join(args.out, "layers.csv"), g6(layers), keycols + [
        "method", "label", "algorithm", "rank", "w_bits", "a_bits", "rel_mse", "sqnr_db", "max_abs", "alpha", "beta",
        "residual_fro_ratio", "residual_max_ratio", "branch_energy_fraction", "iterations_run", "best_iteration",
        "lorc_weight_err_ratio"])
    order = {"int4:g64:scale=fp16": 0, "nvfp4": 1}
    curves.sort(key=lambda c: (order[c["fmt"]], c["model"], c["step"], c["layer"], c["search"]))  # stable: grid order kept
    iters.sort(key=lambda c: (order[c["fmt"]], c["model"], c["step"], c["layer"], c["iteration"]))
    write_csv(os.path.join(args.out, "alpha_curves.csv"), g6(curves),
              ["model", "step", "layer", "fmt", "search", "alpha", "beta", "rel_mse"])
    write_csv(os.path.join(args.out, "refine_iterations.csv"), g6(iters),
              ["model", "step", "layer", "fmt", "iteration", "rel_mse", "kept"])

    # index: (fmt, model, step, layer) -> {(method, rank): row}
    by_pair = defaultdict(dict)
    for r in layers:
        by_pair[(r["fmt"], r["model"], r["step"], r["layer"])][(r["method"], r["rank"])] = r

    # summary over layers (main methods at rank 32 / 0, and the rank sweep separately)
    summary = []
    groups = defaultdict(list)
    for (fmt, model, step, layer), d in by_pair.items():
        naive = d[("naive", 0)]["rel_mse"]
        for (method, rank), r in d.items():
            for mdl in (model, "all"):
                groups[(fmt, mdl, method, rank)].append((r, naive))
    for (fmt, model, method, rank), lst in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], METHOD_ORDER.index(kv[0][2]), kv[0][3])):
        e = np.array([r["rel_mse"] for r, _ in lst])
        gain = np.array([10 * math.log10(nv / r["rel_mse"]) for r, nv in lst])
        def col(c):
            return np.array([float(r[c]) for r, _ in lst if r[c] != ""])
        summary.append(dict(fmt=fmt, model=model, method=method, rank=rank,
                            label=lst[0][0]["label"], layers=len(lst),
                            rel_mse_median=q(e, 50), rel_mse_q25=q(e, 25), rel_mse_q75=q(e, 75),
                            rel_mse_min=float(e.min()), rel_mse_max=float(e.max()),
                            sqnr_db_median=q(np.array([r["sqnr_db"] for r, _ in lst]), 50),
                            gain_db_vs_naive_median=q(gain, 50), gain_db_vs_naive_min=float(gain.min()),
                            w_bits_median=q(col("w_bits"), 50), w_bits_min=float(col("w_bits").min()),
                            w_bits_max=float(col("w_bits").max()),
                            residual_fro_ratio_median=q(col("residual_fro_ratio"), 50),
                            residual_max_ratio_median=q(col("residual_max_ratio"), 50),
                            alpha_median=q(col("alpha"), 50)))
    write_csv(os.path.join(args.out, "summary.csv"), g6(summary), list(summary[0].keys()))

    # α shift: smoothing alone vs with the rank-32 branch
    shift = []
    for (fmt, model, step, layer), d in sorted(by_pair.items()):
        s, v = d[("smooth", 0)], d[("svdquant", 32)]
        shift.append(dict(fmt=fmt, model=model, step=step, layer=layer, layer_type=s["layer_type"],
                          alpha_smooth=s["alpha"], beta_smooth=s["beta"], alpha_svdquant=v["alpha"],
                          beta_svdquant=v["beta"], delta_alpha=round(v["alpha"] - s["alpha"], 6),
                          rel_mse_naive=d[("naive", 0)]["rel_mse"], rel_mse_smooth=s["rel_mse"],
                          rel_mse_svdquant=v["rel_mse"]))
    write_csv(os.path.join(args.out, "alpha_shift.csv"), g6(shift), list(shift[0].keys()))

    plots(args.out, layers, summary, shift, curves, iters)


def plots(out, layers, summary, shift, curves, iters):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fmts = list(FMT_LABEL)
    # 1. per-method error: median + IQR + range, DiT and MiniLM side by side
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    for ax, fmt in zip(axes, fmts):
        for j, (model, color) in enumerate((("dit", "C0"), ("minilm", "C1"))):
            for i, method in enumerate(METHOD_ORDER):
                rank = 32 if method in ("svd", "lorc", "svdquant", "svdquant_refine") else 0
                e = np.array([r["rel_mse"] for r in layers if r["fmt"] == fmt and r["model"] == model
                              and r["method"] == method and r["rank"] == rank])
                x = i + (j - 0.5) * 0.3
                ax.vlines(x, e.min(), e.max(), color=color, lw=1, alpha=0.5)
                ax.vlines(x, q(e, 25), q(e, 75), color=color, lw=6, alpha=0.6)
                ax.plot(x, q(e, 50), "o", color="k", ms=4)
                if i == 0:
                    ax.plot([], [], color=color, lw=6, alpha=0.6, label=f"{'DiT (64 layers)' if model == 'dit' else 'MiniLM (12 layers)'}")
        ax.set_xticks(range(len(METHOD_ORDER)))
        ax.set_xticklabels([LABEL[m] for m in METHOD_ORDER], rotation=25, ha="right")
        ax.set_yscale("log")
        ax.set_title(f"W4A4 {FMT_LABEL[fmt]}")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("relative output error ‖Y−Ŷ‖²/‖Y‖²")
    axes[0].legend(title="median (dot), IQR (bar), range (line)", fontsize=8)
    savefig(fig, os.path.join(out, "fig_methods.png"))
    plt.close(fig)

    # 2. rank curve (INT4; pairs of the rank sweep), plus bits and residual ratios
    fmt = "int4:g64:scale=fp16"
    ranks = [0, 8, 16, 32, 64]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for model, color in (("dit", "C0"), ("minilm", "C1")):
        pairs = {(r["step"], r["layer"]) for r in layers if r["fmt"] == fmt and r["model"] == model
                 and r["method"] == "svdquant" and r["rank"] == 8}
        def sel(rank):
            meth = "smooth" if rank == 0 else "svdquant"
            return [r for r in layers if r["fmt"] == fmt and r["model"] == model and r["method"] == meth
                    and r["rank"] == rank and (r["step"], r["layer"]) in pairs]
        med = [q([r["rel_mse"] for r in sel(k)], 50) for k in ranks]
        lo = [q([r["rel_mse"] for r in sel(k)], 25) for k in ranks]
        hi = [q([r["rel_mse"] for r in sel(k)], 75) for k in ranks]
        naive = q([r["rel_mse"] for r in layers if r["fmt"] == fmt and r["model"] == model and r["method"] == "naive"
                   and (r["step"], r["layer"]) in pairs], 50)
        lab = "DiT step 33" if model == "dit" else "MiniLM"
        axes[0].plot(ranks, med, "o-", color=color, label=lab)
        axes[0].fill_between(ranks, lo, hi, color=color, alpha=0.2)
        axes[0].axhline(naive, color=color, ls=":", lw=1)
        bits = [q([r["w_bits"] for r in sel(k)], 50) for k in ranks]
        axes[1].plot(bits, med, "o-", color=color, label=lab)
        for k, b, e in zip(ranks, bits, med):
            axes[1].annotate(f"r={k}", (b, e), textcoords="offset points", xytext=(3, 3), fontsize=7)
        for c, ls, name in (("residual_fro_ratio", "-", "‖R‖F/‖Ŵ‖F"), ("residual_max_ratio", "--", "max|R|/max|Ŵ|")):
            axes[2].plot(ranks[1:], [q([float(r[c]) for r in sel(k)], 50) for k in ranks[1:]], "o" + ls, color=color,
                         label=f"{lab}: {name}")
    axes[0].set_xlabel("rank r (0 = smoothing only)")
    axes[0].set_ylabel("rel. output error (median, IQR)")
    axes[0].set_yscale("log")
    axes[0].set_title("SVDQuant rank sweep, INT4 g64 (dotted: naive)")
    axes[0].legend()
    axes[1].set_xlabel("weight bits/element incl. 16-bit branch (median)")
    axes[1].set_ylabel("rel. output error (median)")
    axes[1].set_yscale("log")
    axes[1].set_title("error vs storage")
    axes[2].set_xlabel("rank r")
    axes[2].set_ylabel("median ratio")
    axes[2].set_title("residual after smoothing + SVD")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    savefig(fig, os.path.join(out, "fig_rank.png"))
    plt.close(fig)

    # 3. α shift: scatter of chosen α, and α curves of one layer
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, fmt in zip(axes[:2], fmts):
        for model, mk in (("dit", "o"), ("minilm", "s")):
            for bflag, color in ((False, "C0"), (True, "C3")):
                pts = [(r["alpha_smooth"], r["alpha_svdquant"]) for r in shift if r["fmt"] == fmt and r["model"] == model
                       and ((r["beta_svdquant"] == 0) == bflag)]
                if pts:
                    a = np.array(pts) + np.random.default_rng(0).uniform(-0.008, 0.008, (len(pts), 2))
                    ax.plot(a[:, 0], a[:, 1], mk, color=color, alpha=0.6, ms=5,
                            label=f"{model}, svdquant β={'0' if bflag else '1−α'}")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_xlim(-0.03, 1)
        ax.set_ylim(-0.03, 1)
        ax.set_xlabel("α chosen by smoothing alone")
        ax.set_ylabel("α chosen with the rank-32 branch")
        ax.set_title(f"α shift, {FMT_LABEL[fmt]}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    # median α curve over layers (each layer's curve divided by its minimum), β = 1 − α candidates
    ax = axes[2]
    for fmt, ls in zip(fmts, ("-", "--")):
        for search, color in (("smooth", "C0"), ("svdquant_r32", "C3")):
            per = defaultdict(dict)
            for c in curves:
                if c["fmt"] == fmt and c["search"] == search and (c["beta"] > 0 or c["alpha"] == 0):
                    per[(c["model"], c["step"], c["layer"])][c["alpha"]] = c["rel_mse"]
            alphas = sorted(next(iter(per.values())))
            norm = np.array([[d[a] / min(d.values()) for a in alphas] for d in per.values()])
            ax.plot(alphas, np.median(norm, axis=0), ls, color=color, label=f"{'smoothing alone' if search == 'smooth' else 'with rank-32 branch'}, {FMT_LABEL[fmt]}")
    ax.set_xlabel("α (candidates (α, 1−α); α = 0: no smoothing)")
    ax.set_ylabel("error / layer's best candidate (median over 76 layers)")
    ax.set_title("where the α objective bottoms out", fontsize=10)
    ax.set_ylim(0.98, 1.6)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    savefig(fig, os.path.join(out, "fig_alpha_shift.png"))
    plt.close(fig)

    # 4. refinement: error by iteration relative to iteration 1
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, fmt in zip(axes, fmts):
        series = defaultdict(list)
        for it in iters:
            if it["fmt"] == fmt:
                series[(it["model"], it["step"], it["layer"])].append(it)
        for (model, step, layer), lst in series.items():
            lst.sort(key=lambda t: t["iteration"])
            e0 = lst[0]["rel_mse"]
            ax.plot([t["iteration"] for t in lst], [t["rel_mse"] / e0 for t in lst], "-",
                    color="C0" if model == "dit" else "C1", alpha=0.35, lw=1)
        ax.plot([], [], color="C0", label="DiT")
        ax.plot([], [], color="C1", label="MiniLM")
        ax.set_xlabel("refinement iteration (early stop)")
        ax.set_title(f"SVDQuant r=32 refinement, {FMT_LABEL[fmt]}")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("output error / iteration-1 error")
    savefig(fig, os.path.join(out, "fig_refine.png"))
    plt.close(fig)


if __name__ == "__main__":
    main()
