"""Collects OUT/*/metrics.json of experiments/e2e/run.sh into OUT/table.csv and OUT/table.md
(standard library only)."""
import csv
import json
import os
import sys

ORDER = ["fp32", "bf16", "w8a8_int8", "w4a16_nf4", "w4a4_int4_g64", "w4a4_mxfp4", "w4a4_nvfp4", "w4a4_lzs",
         "w4a4_lzs_rne", "svdquant_int4_r32", "svdquant_nvfp4_r32", "ablation_smooth", "ablation_svd",
         "ablation_lorc"]


def main(out):
    rows = []
    for name in sorted(os.listdir(out), key=lambda s: (ORDER.index(s) if s in ORDER else 99, s)):
        p = os.path.join(out, name, "metrics.json")
        if not os.path.exists(p):
            continue
        j = json.load(open(p))
        m = j["metrics"]
        rows.append(dict(
            recipe=name, n=j["n"], steps=j["steps"], weight_bits=round(j["weight_bits"], 2), act_bits=round(j["act_bits"], 2),
            fid_vs_fp=round(m["fid_vs_fp"]["value"], 2), fid_vs_fp_lo=round(m["fid_vs_fp"]["lo"], 2),
            fid_vs_fp_hi=round(m["fid_vs_fp"]["hi"], 2), fid_vs_real=round(m["fid_vs_real"]["value"], 1),
            fid_vs_real_lo=round(m["fid_vs_real"]["lo"], 1), fid_vs_real_hi=round(m["fid_vs_real"]["hi"], 1),
            fid_fp_vs_real=round(m["fid_fp_vs_real"], 1), psnr_db=round(m["psnr_db"]["value"], 2),
            psnr_lo=round(m["psnr_db"]["lo"], 2), psnr_hi=round(m["psnr_db"]["hi"], 2), ssim=round(m["ssim"]["value"], 4),
            ssim_lo=round(m["ssim"]["lo"], 4), ssim_hi=round(m["ssim"]["hi"], 4),
            s_per_image=round(j["seconds_per_image"], 3),
            # diagnostics (absent from metrics.json written before they existed)
            fid_vs_fp_mean_part=round(m["fid_vs_fp_mean_part"], 2) if "fid_vs_fp_mean_part" in m else "",
            pixel_mean_shift=" ".join(f"{v:+.4f}" for v in m["pixel_mean_shift"]) if "pixel_mean_shift" in m else ""))
    if not rows:
        sys.exit(f"no metrics.json under {out}")
    with open(os.path.join(out, "table.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    diag = any(r["fid_vs_fp_mean_part"] != "" for r in rows)
    lines = ["| recipe | W bits | A bits | FID vs FP [95% CI] | FID vs real | PSNR dB [CI] | SSIM [CI] | s/image |"
             + (" FID mean part | pixel shift R G B |" if diag else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|---|" if diag else "")]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['weight_bits']} | {r['act_bits']} | {r['fid_vs_fp']} [{r['fid_vs_fp_lo']}, "
                     f"{r['fid_vs_fp_hi']}] | {r['fid_vs_real']} | {r['psnr_db']} [{r['psnr_lo']}, {r['psnr_hi']}] | "
                     f"{r['ssim']} [{r['ssim_lo']}, {r['ssim_hi']}] | {r['s_per_image']} |"
                     + (f" {r['fid_vs_fp_mean_part']} | {r['pixel_mean_shift']} |" if diag else ""))
    lines.append(f"\nFull precision vs real crops: FID {rows[0]['fid_fp_vs_real']} (n = {rows[0]['n']}, "
                 f"{rows[0]['steps']} steps).")
    open(os.path.join(out, "table.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
