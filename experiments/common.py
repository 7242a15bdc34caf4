"""Shared helpers of the experiments: run the lowbit CLI, read sweep results, write tidy CSVs and
figures. Every experiment's run.py takes --lowbit (the CLI binary) and --out (results/NAME)."""
import argparse
import csv
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURED_DIT = os.path.join(ROOT, "data/captured/dit/tinydit_capture.safetensors")
CAPTURED_MINILM = os.path.join(ROOT, "data/captured/minilm/minilm_capture.safetensors")


def parse_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--lowbit", default=os.path.join(ROOT, "build/default/lowbit"), help="lowbit CLI binary")
    ap.add_argument("--out", required=True, help="output directory (results/NAME)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    return args


def lowbit_json(lowbit, *args):
    """Runs `lowbit ARGS... --json` and returns the parsed JSON (raises with lowbit's message)."""
    cmd = [lowbit, *map(str, args), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)}\n{p.stderr.strip()}")
    return json.loads(p.stdout)


def run_sweep(lowbit, sweep_file, out_dir, fresh=False):
    """Runs `lowbit sweep` (resuming) into out_dir and returns its rows (results.jsonl)."""
    cmd = [lowbit, "sweep", sweep_file, "--out", out_dir] + (["--fresh"] if fresh else [])
    p = subprocess.run(cmd, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed")
    rows = []
    with open(os.path.join(out_dir, "results.jsonl")) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def num(v):
    """A sweep/JSON value as float ("inf"/"nan" strings and null included)."""
    if v is None:
        return math.nan
    return float(v)


def write_csv(path, rows, columns):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(rows)} rows)")


def savefig(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {os.path.relpath(path, ROOT)}")
