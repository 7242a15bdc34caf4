"""Regenerate data/captured/ (DiT + MiniLM captures and manifest.json) on CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/capture/capture_all.py [--out data/captured]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
import capture_minilm  # noqa: E402
import capture_tinydit  # noqa: E402
from lowbit_capture import write_manifest  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "data", "captured"))
    a = ap.parse_args()
    d_entries, d_info = capture_tinydit.run(capture_tinydit.parser().parse_args(["--out", a.out]))
    m_entries, m_info = capture_minilm.run(capture_minilm.parser().parse_args(["--out", a.out]))
    files = {
        "dit/tinydit_capture.safetensors": dict(model="tinydit", **d_info),
        "minilm/minilm_capture.safetensors": dict(model="sentence-transformers/all-MiniLM-L6-v2", **m_info),
    }
    write_manifest(os.path.join(a.out, "manifest.json"), d_entries + m_entries,
                   extra=dict(files=files, producer="experiments/capture/capture_all.py"))
    print(f"wrote {len(d_entries) + len(m_entries)} manifest entries to {a.out}/manifest.json", file=sys.stderr)
