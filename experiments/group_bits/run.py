"""Group size x bit width x format family on the captured DiT activations (ALGORITHMS.md §2.5, §10 q5).

Runs experiments/group_bits/sweep.json with `lowbit sweep` (26,928 tensor cells: the inputs of all 44
linear layers at sampling steps 0, 16, 33, 49, x 153 format specs; a few seconds) into
build/sweeps/group_bits/ (the sweep's own record, resumable, not committed), then writes to --out:

  results.csv      one row per cell: step, layer, format, sqnr_db (the sweep's own
                   results.csv trimmed to the columns that matter here, to keep the repository small)
  formats.csv      one row per format spec: family, element bits, group, element type, scale type
  summary.csv      SQNR over layers (median, quartiles, min, mean) per (format, step), step "all" included
  by_layer_type.csv  median SQNR per (format, step, layer_type)
  pareto.png, sqnr_vs_group.png, steps.png
"""
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import ROOT, num, parse_args, run_sweep, savefig, write_csv  # noqa: E402

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SWEEP = os.path.join(HERE, "sweep.json")
SWEEP_OUT = os.path.join(ROOT, "build/sweeps/group_bits")
STEPS = [0, 16, 33, 49]
GROUPS = ["16", "32", "64", "128", "256", "row"]
FP_BITS = {"e2m0": 3, "fp4_e2m1": 4, "e2m2": 5, "fp6_e2m3": 6, "e3m3": 7, "fp8_e4m3": 8}
MX_BITS = {"mxfp4": 4, "mxfp6_e2m3": 6, "mxfp8_e4m3": 8, "mxint8": 8}
FAMILIES = ["int", "uint", "fp", "fp_e8m0", "mx", "nvfp4", "lzs4", "lzs4_token"]
FAMILY_LABEL = {"int": "INT sym (fp16 scale)", "uint": "UINT asym (fp16 scale+zero)",
                "fp": "minifloat (fp16 scale)", "fp_e8m0": "minifloat (e8m0 scale)", "mx": "OCP MX (block 32)",
                "nvfp4": "NVFP4 (block 16)", "lzs4": "QuaRTZ lzs4 (tensor s8)", "lzs4_token": "QuaRTZ lzs4 (token s8)"}
FAMILY_COLOR = dict(zip(FAMILIES, ["C0", "C1", "C2", "C4", "C3", "C5", "C6", "C7"]))


def classify(fmt):
    """family, element bits, group ("16".."256" | "row"), element, scale of a canonical format spec."""
    parts = fmt.split(":")
    name, opts = parts[0], parts[1:]
    group = next((o[1:] for o in opts if o.startswith("g") and o[1:].isdigit()), None)
    if "row" in opts:
        group = "row"
    scale = next((o.split("=")[1] for o in opts if o.startswith("scale=")), "")
    if name in MX_BITS:
        return "mx", MX_BITS[name], "32", name, "e8m0"
    if name == "nvfp4":
        return "nvfp4", 4, "16", "e2m1", "e4m3 (+fp32 tensor)"
    if name == "lzs4":
        return ("lzs4_token" if "s8=token" in opts else "lzs4"), 4, group, "lzs4", "int8 s8 + 3-bit FLAG"
    if name.startswith("uint"):
        return "uint", int(name[4:]), group, name, scale
    if name.startswith("int"):
        return "int", int(name[3:]), group, name, scale
    if name in FP_BITS:
        return ("fp_e8m0" if scale == "e8m0" else "fp"), FP_BITS[name], group, name, scale
    raise ValueError(f"unclassified format {fmt}")


def layer_type(layer):
    for key, t in (("qkv", "qkv"), ("attn.proj", "proj"), ("fc1", "fc1"), ("fc2", "fc2"), ("adaLN", "adaLN"),
                   ("t_embedder", "t_embedder"), ("final_layer.linear", "final")):
        if key in layer:
            return t
    return "other"


def main():
    args = parse_args(__doc__.splitlines()[0])
    out = args.out
    t0 = time.time()
    rows = run_sweep(args.lowbit, SWEEP, SWEEP_OUT)
    failed = [r for r in rows if r.get("error")]
    if failed:
        sys.exit(f"{len(failed)} failed cells, e.g. {failed[0]['format']}: {failed[0]['error']}")
    cells = []
    for r in rows:
        cells.append(dict(step=int(r["step"]), layer=r["layer"], layer_type=layer_type(r["layer"]),
                          shape=r["shape"], format=r["format"], bits_per_element=num(r["bits_per_element"]),
                          sqnr_db=num(r["sqnr_db"]), rel_mse=num(r["rel_mse"]), max_abs=num(r["max_abs"])))
    cells.sort(key=lambda c: (c["format"], c["step"], c["layer"]))
    # the committed per-cell CSV is kept small (< 1.5 MB): SQNR to 0.001 dB, rel_mse = 10^(-SQNR/10) and
    # the other sweep columns (max_abs, seconds, ...) stay in build/sweeps/group_bits/results.csv
    write_csv(os.path.join(out, "results.csv"),
              [dict(c, sqnr_db=f"{c['sqnr_db']:.3f}") for c in cells],
              ["step", "layer", "format", "sqnr_db"])

    fmts = sorted({c["format"] for c in cells})
    finfo = {}
    for f in fmts:
        fam, bits, group, elem, scale = classify(f)
        finfo[f] = dict(format=f, family=fam, bits=bits, group=group, element=elem, scale=scale)
    write_csv(os.path.join(out, "formats.csv"), [finfo[f] for f in fmts],
              ["format", "family", "bits", "group", "element", "scale"])

    by = {}
    for c in cells:
        for st in (str(c["step"]), "all"):
            by.setdefault((c["format"], st), []).append(c)
    summ = []
    for (f, st), cs in sorted(by.items()):
        s = np.array([c["sqnr_db"] for c in cs])
        b = np.array([c["bits_per_element"] for c in cs])
        summ.append(dict(finfo[f], step=st, layers=len(cs), bits_per_element=g6(np.median(b)),
                         bits_per_element_max=g6(b.max()),
                         sqnr_median=g6(np.median(s)), sqnr_q25=g6(np.percentile(s, 25)),
                         sqnr_q75=g6(np.percentile(s, 75)), sqnr_min=g6(s.min()), sqnr_mean=g6(s.mean())))
    write_csv(os.path.join(out, "summary.csv"), summ,
              ["format", "family", "bits", "group", "element", "scale", "step", "layers", "bits_per_element",
               "bits_per_element_max", "sqnr_median", "sqnr_q25", "sqnr_q75", "sqnr_min", "sqnr_mean"])
    byl = {}
    for c in cells:
        byl.setdefault((c["format"], c["step"], c["layer_type"]), []).append(c["sqnr_db"])
    lrows = [dict(finfo[f], step=st, layer_type=lt, layers=len(v), sqnr_median=g6(np.median(v)))
             for (f, st, lt), v in sorted(byl.items())]
    write_csv(os.path.join(out, "by_layer_type.csv"), lrows,
              ["format", "family", "bits", "group", "step", "layer_type", "layers", "sqnr_median"])

    figures(summ, lrows, out)
    report(summ)
    print(f"group_bits: done in {time.time() - t0:.1f} s")


def g6(v):
    return float(f"{v:.6g}")


def pick(summ, **kw):
    return [r for r in summ if all(r[k] == v for k, v in kw.items())]


def pareto_front(pts):
    """Points (x, y) not dominated by one with x' <= x and y' >= y (sorted by x)."""
    front, best = [], -math.inf
    for x, y in sorted(pts, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def figures(summ, lrows, out):
    allst = [r for r in summ if r["step"] == "all"]
    # 1. Pareto view
    fig, axs = plt.subplots(1, 2, figsize=(15, 6))
    for ax, xmax in zip(axs, (10, 5.3)):
        for fam in FAMILIES:
            rr = [r for r in allst if r["family"] == fam and r["bits_per_element"] <= xmax]
            if not rr:
                continue
            ax.scatter([r["bits_per_element"] for r in rr], [r["sqnr_median"] for r in rr], s=16,
                       color=FAMILY_COLOR[fam], alpha=0.7, marker="o" if fam in ("int", "uint", "fp", "fp_e8m0")
                       else "D", label=FAMILY_LABEL[fam])
            if fam in ("int", "uint", "fp", "fp_e8m0"):
                fr = pareto_front([(r["bits_per_element"], r["sqnr_median"]) for r in rr])
                ax.plot(*zip(*fr), color=FAMILY_COLOR[fam], lw=1)
            if xmax < 10:
                for r in rr:
                    ax.annotate(r["format"].replace(":scale=fp16", "").replace(":scale=e8m0", ":e8m0"),
                                (r["bits_per_element"], r["sqnr_median"]), fontsize=5, alpha=0.8,
                                xytext=(2, 2), textcoords="offset points")
        allpts = [(r["bits_per_element"], r["sqnr_median"]) for r in allst if r["bits_per_element"] <= xmax]
        fr = pareto_front(allpts)
        ax.plot(*zip(*fr), "k--", lw=1, label="overall Pareto front")
        ax.set_xlabel("bits per element (incl. scales; median over layers)")
        ax.set_ylabel("median SQNR over 44 layers x 4 steps (dB)")
        ax.grid(alpha=0.3)
    axs[0].set_title("DiT activations: SQNR vs storage, every format (lines: per-family Pareto front)")
    axs[0].legend(fontsize=7)
    axs[1].set_xlim(3.9, 5.3)
    axs[1].set_ylim(5, 25)
    axs[1].set_title("zoom on 4-5 bits/element")
    savefig(fig, os.path.join(out, "pareto.png"))
    plt.close(fig)

    # 2. SQNR vs group size per bits
    fams = ["int", "uint", "fp", "fp_e8m0"]
    fig, axs = plt.subplots(1, 4, figsize=(18, 4.8), sharey=True)
    for ax, fam in zip(axs, fams):
        for b in range(2, 9):
            rr = pick(allst, family=fam, bits=b)
            if not rr:
                continue
            rr.sort(key=lambda r: GROUPS.index(r["group"]))
            x = [GROUPS.index(r["group"]) for r in rr]
            ax.errorbar(x, [r["sqnr_median"] for r in rr],
                        yerr=[[r["sqnr_median"] - r["sqnr_q25"] for r in rr], [r["sqnr_q75"] - r["sqnr_median"] for r in rr]],
                        marker="o", ms=4, capsize=2, color=plt.cm.viridis((b - 2) / 6),
                        label=f"{b} bits" + (f" ({rr[0]['element']})" if fam.startswith("fp") else ""))
        for fam2, mk in (("mx", "D"), ("nvfp4", "s"), ("lzs4", "^")):
            if fam in ("fp", "fp_e8m0") or (fam == "int" and fam2 in ("mx", "lzs4")):
                for r in pick(allst, family=fam2):
                    if fam2 == "lzs4" and fam != "int":
                        continue
                    if fam2 == "mx" and (fam == "int") != (r["element"] == "mxint8"):
                        continue
                    ax.scatter([GROUPS.index(r["group"])], [r["sqnr_median"]], marker=mk, s=40, facecolor="none",
                               edgecolor=plt.cm.viridis((r["bits"] - 2) / 6), zorder=5,
                               label=r["format"] if fam2 != "lzs4" or r["group"] == "16" else None)
        ax.set_xticks(range(len(GROUPS)), GROUPS)
        ax.set_xlabel("group size (elements per scale along K)")
        ax.set_title(FAMILY_LABEL[fam])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    axs[0].set_ylabel("median SQNR (dB), bars: layer quartiles")
    savefig(fig, os.path.join(out, "sqnr_vs_group.png"))
    plt.close(fig)

    # 3. across sampling steps
    sel = ["int4:g64:scale=fp16", "uint4:g64:scale=fp16", "fp4_e2m1:g16:scale=fp16", "mxfp4", "nvfp4", "lzs4:g16",
           "int4:row:scale=fp16", "int8:row:scale=fp16", "fp8_e4m3:row:scale=fp16", "mxfp8_e4m3", "int6:g64:scale=fp16"]
    fig, axs = plt.subplots(1, 3, figsize=(18, 5))
    ax = axs[0]
    for i, f in enumerate(sel):
        rr = sorted([r for r in summ if r["format"] == f and r["step"] != "all"], key=lambda r: int(r["step"]))
        ax.plot([int(r["step"]) for r in rr], [r["sqnr_median"] for r in rr], marker="o",
                color=plt.cm.tab20(i / 11), label=f)
    ax.set_xticks(STEPS)
    ax.set_xlabel("sampling step (0 = pure noise, 49 = last)")
    ax.set_ylabel("median SQNR over 44 layers (dB)")
    ax.set_title("error across sampling steps")
    ax.set_ylim(5, 45)
    ax.legend(fontsize=6, ncol=3, loc="upper center")
    ax.grid(alpha=0.3)
    ltypes = ["t_embedder", "adaLN", "qkv", "proj", "fc1", "fc2", "final"]
    for ax, f in zip(axs[1:], ["int4:g64:scale=fp16", "nvfp4"]):
        for i, lt in enumerate(ltypes):
            rr = sorted([r for r in lrows if r["format"] == f and r["layer_type"] == lt], key=lambda r: r["step"])
            ax.plot([r["step"] for r in rr], [r["sqnr_median"] for r in rr], marker="o", color=f"C{i}",
                    label=f"{lt} ({rr[0]['layers']} layer{'s' if rr[0]['layers'] > 1 else ''})")
        ax.set_xticks(STEPS)
        ax.set_xlabel("sampling step")
        ax.set_ylabel("median SQNR over layers of the type (dB)")
        ax.set_title(f"{f}: by layer type")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    savefig(fig, os.path.join(out, "steps.png"))
    plt.close(fig)


def report(summ):
    allst = {r["format"]: r for r in summ if r["step"] == "all"}
    for f in ["int4:g16:scale=fp16", "int4:g32:scale=fp16", "int4:g64:scale=fp16", "int4:g128:scale=fp16",
              "int4:row:scale=fp16", "uint4:g64:scale=fp16", "fp4_e2m1:g16:scale=fp16", "fp4_e2m1:g32:scale=e8m0",
              "mxfp4", "nvfp4", "lzs4:g16", "lzs4:g32", "lzs4:g16:s8=token", "int8:row:scale=fp16", "mxint8",
              "mxfp8_e4m3", "fp8_e4m3:row:scale=fp16", "mxfp6_e2m3", "fp6_e2m3:g32:scale=fp16", "int6:g32:scale=fp16"]:
        r = allst[f]
        print(f"  {f:28s} {r['bits_per_element']:.4f} b/el  median SQNR {r['sqnr_median']:6.2f} dB "
              f"(IQR {r['sqnr_q25']:.2f}..{r['sqnr_q75']:.2f}, min {r['sqnr_min']:.2f})")


if __name__ == "__main__":
    main()
