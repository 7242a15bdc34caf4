"""Error-bound propositions on real and synthetic tensors (ALGORITHMS.md §2.7, §3.2, §10 q6):

  A. SVDQuant Prop 4.1 (`lowbit bounds --prop 4.1`) on every captured (X, W) pair: 44 DiT linear
     layers x 4 sampling steps and the 12 MiniLM linears with shipped weights, for six quantizer
     pairs; every token row is a sample, plus the whole X.
  B. Prop 4.2 on Gaussian data (`lowbit bounds --prop 4.2`): sizes 2^10..2^20, q_max 7 / 127,
     per-tensor and per-group scales (G = 16, 64, 256).
  C. Prop 4.2 on real tensors (numpy, absmax RTN exactly as stated): captured weights, their plain
     SVD residuals (rank 32) and the captured activations as R; measured ||R - Q(R)||/||R|| vs
     sqrt(ln N * pi)/q_max. Cross-checked against lowbit's int{4,8}:tensor / :g64 on a few weights.
  D. QuaRTZ LZS-vs-INT4 (`lowbit bounds --prop quartz`) on all captured DiT / MiniLM inputs and on
     synthetic Gaussian / Laplace / Student-t / outlier-channel tensors (`lowbit synth`).

Writes results/propositions/*.csv and *.png. Runtime about a minute on 2 cores."""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import CAPTURED_DIT, CAPTURED_MINILM, ROOT, lowbit_json, parse_args, savefig, write_csv  # noqa: E402

import matplotlib  # noqa: E402
import matplotlib.ticker  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WORKERS = 2
PAIRS = [  # (label, weight quantizer, activation quantizer)
    ("int4:g64", "int4:g64", "int4:g64"),
    ("int8:row", "int8:row", "int8:row"),
    ("mxfp4", "mxfp4", "mxfp4"),
    ("nvfp4", "nvfp4", "nvfp4"),
    ("W int4:g64 / A int8:row", "int4:g64", "int8:row"),
    ("W int4:g64 / A lzs4:g16", "int4:g64", "lzs4:g16"),
]
QUARTZ_FORMATS = ["lzs4:g16", "lzs4:g32", "lzs4:g16:s8=token", "lzs4:g32:s8=token", "lzs4:g16:round=rne"]
SYNTH = [("gaussian", "gaussian"), ("laplace", "laplace"), ("student_t:3", "student_t3"),
         ("student_t:5", "student_t5"), ("outlier_channels", "outlier_channels")]
SYNTH_SHAPE = (64, 1024)  # the shape of the largest captured DiT inputs
SYNTH_SEEDS = [0, 1, 2]
P42_SIZES = [1024, 4096, 16384, 65536, 262144, 1048576]
P42_GROUPS = [0, 16, 64, 256]
P42_QMAX = [7, 127]
SVD_RANK = 32


# ---------------------------------------------------------------- helpers
def read_safetensors(path):
    """{name: float64 array} of a .safetensors file (F16 / F32 only; enough for data/captured)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dt = {"F16": np.float16, "F32": np.float32}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dt[e["dtype"]]).reshape(e["shape"]).astype(np.float64)
    return out


def layer_type(layer):
    for key in ("qkv", "attn.proj", "fc1", "fc2", "adaLN", "t_embedder", "final_layer.linear",
                "query", "key", "value", "attention.output", "intermediate", "output.dense", "pooler"):
        if key in layer:
            return {"attn.proj": "proj", "final_layer.linear": "final", "attention.output": "attn_out",
                    "output.dense": "ffn_out", "intermediate": "ffn_in"}.get(key, key)
    return "other"


def captured_layers():
    """[(model, file, layer, step)] of every captured (X, W) pair and every captured input."""
    man = json.load(open(os.path.join(ROOT, "data/captured/manifest.json")))
    files = {"dit": CAPTURED_DIT, "minilm": CAPTURED_MINILM}
    weights, inputs = set(), []
    for t in man["tensors"]:
        model = "dit" if t["file"].startswith("dit/") else "minilm"
        if t["kind"] == "weight":
            weights.add((model, t["layer"]))
        elif t["kind"] == "input":
            inputs.append((model, files[model], t["layer"], t["step"], t["name"]))
    return weights, inputs


def write(path, rows, cols):
    """write_csv with floats to 6 significant digits (keeps the committed CSVs small)."""
    write_csv(path, [{k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in r.items()} for r in rows], cols)


def pmap(fn, items):
    with ThreadPoolExecutor(WORKERS) as ex:
        return list(ex.map(fn, items))


def log_hist(values, edges):
    h, _ = np.histogram(values, bins=edges)
    return h


# ---------------------------------------------------------------- A. Prop 4.1
def prop41(lowbit, out):
    weights, inputs = captured_layers()
    jobs = [(model, f, layer, step, name, p)
            for (model, f, layer, step, name) in inputs if (model, layer) in weights for p in PAIRS]

    def one(job):
        model, f, layer, step, name, (label, wq, aq) = job
        d = lowbit_json(lowbit, "bounds", "--prop", "4.1", "--x", f"{f}:{name}", "--w", f"{f}:{layer}.weight",
                        "--wq", wq, "--aq", aq)
        return job, d

    t0 = time.time()
    res = pmap(one, jobs)
    rows, slack_samples = [], {}
    for (model, f, layer, step, name, (label, wq, aq)), d in res:
        w = d["whole"]
        a = w["x_norm"] * w["w_err"]
        b = w["x_err"] * (w["w_norm"] + w["w_err"])
        s = np.array([x["slack"] for x in d["samples"]])
        slack_samples.setdefault((model, label), []).append(s)
        rows.append(dict(
            model=model, layer=layer, layer_type=layer_type(layer), step=step, pair=label, wq=wq, aq=aq,
            tokens=d["b"], in_features=d["m"], out_features=d["n"],
            samples=len(d["samples"]) + 1, samples_held=d["samples_held"] + int(w["held"]),
            all_held=int(d["all_held"]),
            min_slack=d["min_slack"], median_slack=d["median_slack"],
            whole_lhs=w["lhs"], whole_rhs=w["rhs"], whole_slack=w["slack"],
            x_norm=w["x_norm"], x_err=w["x_err"], w_norm=w["w_norm"], w_err=w["w_err"],
            term_w=a, term_x=b,
            # slack if the error matrices were incoherent with the data (see README)
            slack_incoherent=math.sqrt(d["m"]) * (a + b) / math.sqrt(a * a + b * b) if a + b > 0 else math.nan,
            out_sqnr_db=d["output"]["sqnr_db"], out_cosine=d["output"]["cosine"]))
    cols = list(rows[0].keys())
    write(os.path.join(out, "prop41.csv"), rows, cols)
    # per-sample slack distribution (log-spaced histogram; every token row of every pair)
    edges = np.logspace(0, 3, 61)
    hrows = []
    for (model, label), ss in sorted(slack_samples.items()):
        allv = np.concatenate(ss)
        h = log_hist(allv, edges)
        for i, c in enumerate(h):
            hrows.append(dict(model=model, pair=label, bin_lo=edges[i], bin_hi=edges[i + 1], count=int(c)))
        below = int((allv < edges[0]).sum())
        above = int((allv >= edges[-1]).sum())
        if below or above:
            print(f"  note: {model} {label}: {below} samples below slack 1, {above} above 1000")
    write(os.path.join(out, "prop41_slack_hist.csv"), hrows, ["model", "pair", "bin_lo", "bin_hi", "count"])
    print(f"  prop 4.1: {len(rows)} (X, W) checks in {time.time() - t0:.1f} s")
    return rows, hrows


# ---------------------------------------------------------------- B. Prop 4.2 Gaussian
def prop42_gauss(lowbit, out):
    d = lowbit_json(lowbit, "bounds", "--prop", "4.2", "--sizes", ",".join(map(str, P42_SIZES)),
                    "--qmax", ",".join(map(str, P42_QMAX)), "--group", ",".join(map(str, P42_GROUPS)),
                    "--trials", 16, "--seed", 0)
    rows = d["rows"]
    cols = ["n", "group", "qmax", "trials", "bound_size", "ratio", "ratio_min", "ratio_max", "bound", "slack",
            "held", "c", "c_meas", "mean_norm", "mean_err_norm"]
    for r in rows:
        r["held"] = int(r["held"])
    write(os.path.join(out, "prop42_gaussian.csv"), rows, cols)
    return rows


# ---------------------------------------------------------------- C. Prop 4.2 on real tensors
def rtn_ratio(R, qmax, group):
    """||R - Q(R)||_F / ||R||_F for absmax RTN (s = max|R_g|/q_max, round half to even)."""
    if group:
        g = R.reshape(-1, group)
    else:
        g = R.reshape(1, -1)
    s = np.abs(g).max(axis=1, keepdims=True) / qmax
    s = np.where(s == 0, 1.0, s)
    q = np.round(g / s) * s  # numpy rounds half to even, as torch.round
    return float(np.linalg.norm(g - q) / np.linalg.norm(g))


_CAPTURED = {}


def captured_arrays():
    if not _CAPTURED:
        _CAPTURED["dit"] = read_safetensors(CAPTURED_DIT)
        _CAPTURED["minilm"] = read_safetensors(CAPTURED_MINILM)
    return _CAPTURED["dit"], _CAPTURED["minilm"]


def crest_factors(a):
    """(max|x|/rms(x) over the tensor, median over rows of the row's max|x|/rms) of a 2-D tensor."""
    a = a.reshape(-1, a.shape[-1])
    rms = np.sqrt(np.mean(a ** 2))
    row_rms = np.sqrt(np.mean(a ** 2, axis=1))
    ok = row_rms > 0
    return float(np.abs(a).max() / rms), float(np.median(np.abs(a[ok]).max(axis=1) / row_rms[ok]))


def prop42_real(lowbit, out):
    dit, mini = captured_arrays()
    tensors = []  # (model, kind, layer, step, array)
    for model, st in (("dit", dit), ("minilm", mini)):
        for name, a in st.items():
            if name.endswith(".weight"):
                layer = name[: -len(".weight")]
                tensors.append((model, "weight", layer, "", a))
                U, S, Vt = np.linalg.svd(a, full_matrices=False)
                r = min(SVD_RANK, len(S) - 1)
                tensors.append((model, f"residual_r{SVD_RANK}", layer, "", a - (U[:, :r] * S[:r]) @ Vt[:r]))
            elif name.endswith(".input"):
                step, layer = name.split(".", 1)
                tensors.append((model, "input", layer[: -len(".input")], int(step[4:]), a))
    rows = []
    for model, kind, layer, step, a in tensors:
        flat = a.ravel()
        rms = float(np.sqrt(np.mean(flat ** 2)))
        crest = float(np.abs(flat).max() / rms)
        kurt = float(np.mean((flat - flat.mean()) ** 4) / np.var(flat) ** 2 - 3)
        for group in P42_GROUPS:
            if group and a.shape[-1] % group:
                continue
            N = group if group else a.size
            for qmax in P42_QMAX:
                ratio = rtn_ratio(a, qmax, group)
                bound = math.sqrt(math.log(N) * math.pi) / qmax
                rows.append(dict(model=model, kind=kind, layer=layer, layer_type=layer_type(layer), step=step,
                                 shape="x".join(map(str, a.shape)), n=a.size, group=group, bound_size=N,
                                 qmax=qmax, ratio=ratio, bound=bound, slack=bound / ratio if ratio else math.inf,
                                 held=int(ratio <= bound), crest=crest, excess_kurtosis=kurt,
                                 gauss_crest=math.sqrt(2 * math.log(a.size))))
    cols = list(rows[0].keys())
    write(os.path.join(out, "prop42_real.csv"), rows, cols)
    # cross-check the numpy RTN against lowbit's int4/int8 absmax quantizers (fp32 scales, RNE)
    check = []
    for layer in ("blocks.3.mlp.fc2", "blocks.0.attn.qkv", "final_layer.linear", "t_embedder.mlp.0"):
        a = dit[layer + ".weight"]
        specs = ["int4:tensor", "int8:tensor", "int4:g64", "int8:g64"]
        d = lowbit_json(lowbit, "error", "--formats", ",".join(specs), "--in", f"{CAPTURED_DIT}:{layer}.weight")
        res = d["results"] if isinstance(d, dict) and "results" in d else d
        for spec in specs:
            e = next(x for x in (res if isinstance(res, list) else res.values()) if x.get("format", "").startswith(spec))
            qmax, group = (7 if spec.startswith("int4") else 127), (64 if "g64" in spec else 0)
            mine = rtn_ratio(a, qmax, group)
            theirs = math.sqrt(e["rel_mse"])
            check.append(dict(layer=layer, spec=spec, numpy_ratio=mine, lowbit_ratio=theirs,
                              rel_diff=abs(mine - theirs) / theirs))
    write_csv(os.path.join(out, "prop42_real_crosscheck.csv"), check, list(check[0].keys()))
    return rows, check


# ---------------------------------------------------------------- D. QuaRTZ
def quartz(lowbit, out, tmp):
    _, inputs = captured_layers()
    arrays = dict(zip(("dit", "minilm"), captured_arrays()))
    srcs = [(model, layer_type(layer), layer, step, f"{f}:{name}") for (model, f, layer, step, name) in inputs]
    crest = {f"{f}:{name}": crest_factors(arrays[model][name]) for (model, f, layer, step, name) in inputs}
    for dist, tag in SYNTH:
        for seed in SYNTH_SEEDS:
            p = os.path.join(tmp, f"{tag}_{seed}.npy")
            subprocess.run([lowbit, "synth", "--dist", dist, "--shape", ",".join(map(str, SYNTH_SHAPE)),
                            "--seed", str(seed), "--out", p], check=True, capture_output=True)
            srcs.append(("synthetic", dist, f"{dist}(seed={seed})", "", p))
            crest[p] = crest_factors(np.load(p).astype(np.float64))
    jobs = [(s, fmt) for s in srcs for fmt in QUARTZ_FORMATS]

    def one(job):
        (model, ltype, layer, step, path), fmt = job
        return job, lowbit_json(lowbit, "bounds", "--prop", "quartz", "--in", path, "--format", fmt)

    t0 = time.time()
    rows = []
    for ((model, ltype, layer, step, path), fmt), d in pmap(one, jobs):
        fr = d["flags"]["fraction"]
        rows.append(dict(
            model=model, layer_type=ltype, layer=layer, step=step, format=fmt, group=d["group"],
            s8=("token" if d["per_token"] else "tensor"), round=d["round"], rows=d["rows"], cols=d["cols"],
            crest_tensor=crest[path][0], crest_row_median=crest[path][1],
            # the crest factor that matters for this s8 granularity (one scale per tensor or per row)
            crest=crest[path][1] if d["per_token"] else crest[path][0],
            e_q8=d["e_q8"], e_lzs=d["e_lzs"], e_total=d["e_total"], e_q4_mean=d["e_q4_mean"],
            e_q4_bound=d["e_q4_bound"], e_q8_in_s8=d["e_q8_in_s8"], e_lzs_in_s8=d["e_lzs_in_s8"],
            s4_over_s8=d["s4_over_s8"], threshold_paper=d["threshold_paper"],
            threshold_spec=d["threshold_spec"], threshold_actual=d["threshold_actual"],
            triangle_held=int(d["triangle_held"]), triangle_slack=d["triangle_slack"],
            triangle_violations=d["triangle_violations"],
            beats_int4_mean=int(d["beats_int4_mean"]), int4_mean_slack=d["int4_mean_slack"],
            beats_int4_bound=int(d["beats_int4_bound"]), int4_bound_slack=d["int4_bound_slack"],
            total_beats_int4=int(d["total_beats_int4"]),
            p_elem_ge8=d["p_elem_ge8"], p_group_flag=d["p_group_flag"], p_elem_truncated=d["p_elem_truncated"],
            p_group_flag_indep=1 - (1 - d["p_elem_ge8"]) ** d["group"],
            flag0=fr[0], flag1=fr[1], flag2=fr[2], flag3=fr[3], flag4=fr[4],
            lzs_sqnr_db=d["lzs"]["sqnr_db"], int4_sqnr_db=d["int4"]["sqnr_db"], int4_format=d["int4_format"],
            lzs_small_flushed=d["lzs"]["small"]["flushed_fraction"],
            int4_small_flushed=d["int4"]["small"]["flushed_fraction"],
            lzs_bit_entropy=d["lzs_codes"]["mean_bit_entropy"], int4_bit_entropy=d["int4_codes"]["mean_bit_entropy"]))
    write(os.path.join(out, "quartz.csv"), rows, list(rows[0].keys()))
    print(f"  quartz: {len(rows)} checks in {time.time() - t0:.1f} s")
    return rows


# ---------------------------------------------------------------- figures
PAIR_COLORS = dict(zip([p[0] for p in PAIRS], plt.rcParams["axes.prop_cycle"].by_key()["color"]))


def fig_prop41(rows, hrows, out):
    fig, axs = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axs[0]
    for model, ls in (("dit", "-"), ("minilm", "--")):
        for label, _, _ in PAIRS:
            h = [r for r in hrows if r["pair"] == label and r["model"] == model]
            hi = np.array([r["bin_hi"] for r in h])
            c = np.cumsum([r["count"] for r in h]).astype(float)
            ax.step(hi, c / c[-1], where="post", color=PAIR_COLORS[label], ls=ls,
                    label=label if model == "dit" else None)
    ax.plot([], [], "k-", label="DiT (44 layers x 4 steps)")
    ax.plot([], [], "k--", label="MiniLM (12 layers)")
    ax.set_xscale("log")
    ax.set_xlim(1, 200)
    ax.axvline(1, color="r", lw=1, ls=":")
    ax.set_xlabel("per-sample slack RHS/LHS (one token row)")
    ax.set_ylabel("cumulative fraction of token rows")
    ax.set_title("Prop 4.1: slack of every token row (holds iff >= 1)")
    ax.legend(fontsize=7)
    ax = axs[1]
    labels = [p[0] for p in PAIRS]
    for model, mk in (("dit", "o"), ("minilm", "s")):
        for k, label in enumerate(labels):
            rr = [r for r in rows if r["model"] == model and r["pair"] == label]
            ax.scatter([r["in_features"] * (1 + 0.04 * (k - 2.5)) for r in rr], [r["min_slack"] for r in rr],
                       s=10, marker=mk, color=PAIR_COLORS[label], alpha=0.5)
    m = np.array([256, 384, 1024, 1536])
    ax.plot(m, np.sqrt(m), "k--", lw=1, label="sqrt(in_features)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([256, 384, 1024, 1536], ["256", "384", "1024", "1536"])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("in_features m  (o DiT, s MiniLM; colours as left)")
    ax.set_ylabel("min per-row slack of the (layer, step)")
    ax.set_title("layer's tightest row vs in_features")
    ax.legend(fontsize=7)
    ax = axs[2]
    for label in labels:
        rr = [r for r in rows if r["pair"] == label]
        ax.scatter([r["slack_incoherent"] for r in rr], [r["whole_slack"] for r in rr], s=8, alpha=0.5,
                   color=PAIR_COLORS[label], label=label)
    lim = [2, 100]
    ax.plot(lim, lim, "k:", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("incoherent-error prediction sqrt(m)(a+b)/sqrt(a²+b²)")
    ax.set_ylabel("measured slack (whole X)")
    ax.set_title("whole-X slack vs incoherence prediction")
    ax.legend(fontsize=7)
    savefig(fig, os.path.join(out, "prop41_slack.png"))
    plt.close(fig)


def fig_prop42(grows, rrows, out):
    fig, axs = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, qmax in zip(axs[:2], P42_QMAX):
        for i, g in enumerate(P42_GROUPS):
            rr = sorted([r for r in grows if r["qmax"] == qmax and r["group"] == g], key=lambda r: r["n"])
            n = [r["n"] for r in rr]
            col = f"C{i}"
            lab = "per tensor" if g == 0 else f"G={g}"
            ax.errorbar(n, [r["ratio"] for r in rr],
                        yerr=[[r["ratio"] - r["ratio_min"] for r in rr], [r["ratio_max"] - r["ratio"] for r in rr]],
                        color=col, marker="o", ms=4, label=f"measured, {lab}")
            ax.plot(n, [r["bound"] for r in rr], color=col, ls="--", lw=1, label=f"bound, {lab}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tensor size n")
        ax.set_ylabel("E||R-Q(R)||_F / E||R||_F")
        ax.set_title(f"Prop 4.2, R ~ N(0,1), q_max = {qmax} (16 trials)")
        ax.legend(fontsize=6, ncol=2)
    ax = axs[2]
    kinds = ["weight", f"residual_r{SVD_RANK}", "input"]
    pos, data, labels = 0, [], []
    for g in P42_GROUPS:
        for k in kinds:
            v = [r["slack"] for r in rrows if r["kind"] == k and r["group"] == g and r["qmax"] == 7]
            data.append(v)
            labels.append(f"{k[:8]}\n{'tensor' if g == 0 else 'G' + str(g)}")
    bp = ax.boxplot(data, whis=(0, 100), widths=0.6)
    for i, patch in enumerate(bp["boxes"]):
        patch.set_color(f"C{i % 3}")
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=6, rotation=90)
    ax.axhline(1, color="r", lw=1, ls=":")
    ax.axhline(math.sqrt(6 * math.pi), color="k", lw=1, ls="--")
    ax.text(0.6, math.sqrt(6 * math.pi) * 1.05, "Gaussian limit sqrt(6π)", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("slack = bound / measured ratio (q_max 7)")
    ax.set_title("Prop 4.2 on captured tensors (DiT + MiniLM)\nbound fails where slack < 1")
    savefig(fig, os.path.join(out, "prop42_bound.png"))
    plt.close(fig)


def short(layer):
    return (layer.replace("blocks.", "b").replace("adaLN_modulation.1", "adaLN").replace("t_embedder.mlp.", "temb")
            .replace("final_layer.", "final."))


def fig_quartz(rows, out):
    dit = [r for r in rows if r["model"] == "dit"]
    layers = []
    for r in dit:
        if r["layer"] not in layers:
            layers.append(r["layer"])
    fig, axs = plt.subplots(2, 2, figsize=(16, 8.5), sharey=True)
    for ax, fmt in zip(axs.ravel(), QUARTZ_FORMATS[:4]):
        for j, step in enumerate(sorted({r["step"] for r in dit})):
            rr = [r for r in dit if r["format"] == fmt and r["step"] == step]
            x = [layers.index(r["layer"]) + 0.15 * (j - 1.5) for r in rr]
            ax.scatter(x, [r["e_lzs_in_s8"] for r in rr], s=12, color=f"C{j}", label=f"E_LZS/s8, step {step}")
            # mean-vs-mean threshold in s8 units: LZS beats INT4 (same scale granularity) below it
            ax.scatter(x, [(r["e_q4_mean"] - r["e_q8"]) * r["e_lzs_in_s8"] / r["e_lzs"] if r["e_lzs"] else math.nan
                           for r in rr], s=14, marker="_", color=f"C{j}")
        r0 = dit[0]
        ax.axhline(r0["threshold_paper"], color="k", ls="--", lw=1, label="paper 7.5")
        ax.axhline(r0["threshold_spec"], color="gray", ls="-.", lw=1, label="(127/7)/2-1/2 = 8.57")
        ax.scatter([], [], marker="_", color="k", label="(E_q4 mean - E_q8)/s8")
        ax.set_yscale("log")
        ax.set_title(f"{fmt}: E_LZS/s8 per layer and step")
        ax.set_xticks(range(len(layers)), [short(l) for l in layers], rotation=90, fontsize=6)
        ax.legend(fontsize=6, ncol=4, loc="lower left")
    for ax in axs[:, 0]:
        ax.set_ylabel("mean integer residual |q8 - q̂| (s8 units)")
    savefig(fig, os.path.join(out, "quartz_thresholds.png"))
    plt.close(fig)

    fig, axs = plt.subplots(1, 2, figsize=(13, 4.8))
    ax = axs[0]
    p = np.logspace(-3, 0, 200)
    for fmt, mk in (("lzs4:g16", "o"), ("lzs4:g32", "s"), ("lzs4:g16:s8=token", "^")):
        for model, col in (("dit", "C0"), ("minilm", "C1"), ("synthetic", "C3")):
            rr = [r for r in rows if r["format"] == fmt and r["model"] == model]
            ax.scatter([max(r["p_elem_ge8"], 1e-3) for r in rr], [r["p_group_flag"] for r in rr], s=12, marker=mk,
                       color=col, alpha=0.6, label=f"{model} {fmt}")
    for G in (16, 32):
        ax.plot(p, 1 - (1 - p) ** G, "k", lw=1, ls="--" if G == 16 else ":", label=f"independent: 1-(1-p)^{G}")
    ax.plot(p, p, color="gray", lw=0.8, label="P(group) = P(element)")
    ax.set_xscale("log")
    ax.set_xlabel("P(|q8| >= 8) per element")
    ax.set_ylabel("P(FLAG > 0) per group")
    ax.set_title("QuaRTZ: element vs group truncation probability")
    ax.legend(fontsize=6)
    ax = axs[1]
    for fmt, mk in (("lzs4:g16", "o"), ("lzs4:g32", "s"), ("lzs4:g16:s8=token", "^"), ("lzs4:g32:s8=token", "v")):
        for model, col in (("dit", "C0"), ("minilm", "C1"), ("synthetic", "C3")):
            rr = [r for r in rows if r["format"] == fmt and r["model"] == model]
            ax.scatter([r["crest"] for r in rr], [r["int4_mean_slack"] for r in rr], s=12, marker=mk,
                       color=col, alpha=0.6, label=f"{model} {fmt}")
    ax.axhline(1, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([2, 3, 5, 10, 20, 50], ["2", "3", "5", "10", "20", "50"])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("crest factor max|x|/rms(x) over one s8 scale (tensor, or median row for s8=token)")
    ax.set_ylabel("E_q4 mean / (E_q8 + E_LZS)   (>1: LZS better)")
    ax.set_title("QuaRTZ vs naive INT4 (same scale granularity), mean |error|")
    ax.legend(fontsize=6, ncol=2)
    savefig(fig, os.path.join(out, "quartz_probabilities.png"))
    plt.close(fig)


# ---------------------------------------------------------------- summary
def summarize(p41, grows, rrows, qrows, out):
    srows = []
    for model in ("dit", "minilm"):
        for label, _, _ in PAIRS:
            rr = [r for r in p41 if r["model"] == model and r["pair"] == label]
            srows.append(dict(part="prop41", model=model, case=label, checks=len(rr),
                              held=sum(r["all_held"] for r in rr),
                              samples=sum(r["samples"] for r in rr), samples_held=sum(r["samples_held"] for r in rr),
                              min_slack=min(r["min_slack"] for r in rr),
                              median_slack=float(np.median([r["median_slack"] for r in rr])),
                              max_slack=max(r["whole_slack"] for r in rr)))
    for g in P42_GROUPS:
        for q in P42_QMAX:
            rr = [r for r in grows if r["group"] == g and r["qmax"] == q]
            srows.append(dict(part="prop42_gaussian", model="gaussian", case=f"group={g} qmax={q}", checks=len(rr),
                              held=sum(r["held"] for r in rr), min_slack=min(r["slack"] for r in rr),
                              median_slack=float(np.median([r["slack"] for r in rr])),
                              max_slack=max(r["slack"] for r in rr)))
    for kind in sorted({r["kind"] for r in rrows}):
        for g in P42_GROUPS:
            for q in P42_QMAX:
                rr = [r for r in rrows if r["kind"] == kind and r["group"] == g and r["qmax"] == q]
                if rr:
                    srows.append(dict(part="prop42_real", model="dit+minilm", case=f"{kind} group={g} qmax={q}",
                                      checks=len(rr), held=sum(r["held"] for r in rr),
                                      min_slack=min(r["slack"] for r in rr),
                                      median_slack=float(np.median([r["slack"] for r in rr])),
                                      max_slack=max(r["slack"] for r in rr)))
    for model in ("dit", "minilm", "synthetic"):
        for fmt in QUARTZ_FORMATS:
            rr = [r for r in qrows if r["model"] == model and r["format"] == fmt]
            srows.append(dict(part="quartz", model=model, case=fmt, checks=len(rr),
                              held=sum(r["triangle_held"] for r in rr),
                              beats_int4_mean=sum(r["beats_int4_mean"] for r in rr),
                              beats_int4_bound=sum(r["beats_int4_bound"] for r in rr),
                              below_paper_threshold=sum(r["e_lzs_in_s8"] < r["threshold_paper"] for r in rr),
                              min_slack=min(r["int4_mean_slack"] for r in rr),
                              median_slack=float(np.median([r["int4_mean_slack"] for r in rr])),
                              max_slack=max(r["int4_mean_slack"] for r in rr),
                              median_p_elem_ge8=float(np.median([r["p_elem_ge8"] for r in rr])),
                              median_p_group_flag=float(np.median([r["p_group_flag"] for r in rr]))))
    cols = ["part", "model", "case", "checks", "held", "samples", "samples_held", "min_slack", "median_slack",
            "max_slack", "beats_int4_mean", "beats_int4_bound", "below_paper_threshold", "median_p_elem_ge8",
            "median_p_group_flag"]
    write(os.path.join(out, "summary.csv"), srows, cols)
    for r in srows:
        print("  " + " ".join(f"{k}={r[k]:.4g}" if isinstance(r.get(k), float) else f"{k}={r.get(k)}"
                              for k in cols if r.get(k, "") != ""))


def main():
    args = parse_args(__doc__.splitlines()[0])
    t0 = time.time()
    p41, hrows = prop41(args.lowbit, args.out)
    grows = prop42_gauss(args.lowbit, args.out)
    rrows, _ = prop42_real(args.lowbit, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        qrows = quartz(args.lowbit, args.out, tmp)
    fig_prop41(p41, hrows, args.out)
    fig_prop42(grows, rrows, args.out)
    fig_quartz(qrows, args.out)
    summarize(p41, grows, rrows, qrows, args.out)
    print(f"propositions: done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
