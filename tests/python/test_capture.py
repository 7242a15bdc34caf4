"""Tests for python/lowbit_capture.py on a tiny 2-layer module.

Plain python with assertions: `python tests/python/test_capture.py`. Exits 77 (ctest skip) with
"torch not installed: skipped" when torch (or safetensors) is missing, e.g. where CI lacks
Debian's python3-torch.
"""
import json
import os
import sys
import tempfile

try:
    import torch
    import torch.nn as nn
    from safetensors.torch import load_file
except ImportError:
    print("torch not installed: skipped")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
from lowbit_capture import Capture, write_manifest  # noqa: E402


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def run_capture(tmp, max_tokens=None, seed=0, steps=None, outputs=False, name="cap.safetensors"):
    model = tiny()
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(3, 10, 8, generator=g) for _ in range(3)]
    with Capture(model, max_tokens=max_tokens, seed=seed, steps=steps, outputs=outputs,
                 model_name="tiny") as cap:
        with torch.no_grad():
            model(xs[0])                      # outside a step: not recorded
            for i, x in enumerate(xs):
                with cap.step(i, timestep=1.0 - 0.5 * i):
                    model(x)
            model(xs[0])                      # after the steps: not recorded
        assert cap.layers == ["0", "2"], cap.layers
        path = os.path.join(tmp, name)
        entries = cap.save(path)
    return model, xs, path, entries


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model, xs, path, entries = run_capture(tmp)
        t = load_file(path)
        names = {e["name"] for e in entries}
        assert names == set(t.keys()), (names, t.keys())
        # weights once per layer, exact
        w = [e for e in entries if e["kind"] == "weight"]
        assert sorted(e["layer"] for e in w) == ["0", "2"], w
        assert torch.equal(t["0.weight"], model[0].weight) and torch.equal(t["2.weight"], model[2].weight)
        assert all(e["step"] is None and e["timestep"] is None for e in w)
        # inputs: one per layer per step, flattened [tokens, features], step/timestep tagged
        ins = [e for e in entries if e["kind"] == "input"]
        assert len(ins) == 6, ins
        assert sorted({e["step"] for e in ins}) == [0, 1, 2]
        for e in ins:
            assert e["timestep"] == 1.0 - 0.5 * e["step"], e
            feat = 8 if e["layer"] == "0" else 16
            assert e["shape"] == [30, feat] and e["orig_shape"] == [3, 10, feat], e
            assert list(t[e["name"]].shape) == e["shape"]
        assert torch.equal(t["step001.0.input"], xs[1].reshape(-1, 8))
        assert torch.allclose(t["step002.2.input"], torch.relu(model[0](xs[2])).reshape(-1, 16))
        # manifest fields
        for e in entries:
            for k in ("file", "name", "layer", "kind", "step", "timestep", "shape", "dtype", "model", "seed"):
                assert k in e, (k, e)
            assert e["file"] == "cap.safetensors" and e["model"] == "tiny" and e["seed"] == 0
            assert e["dtype"] == "F32"
        mpath = os.path.join(tmp, "manifest.json")
        write_manifest(mpath, entries, extra={"note": "x"})
        doc = json.load(open(mpath))
        assert doc["tensors"] == entries and doc["note"] == "x"

        # step selection
        _, _, p2, e2 = run_capture(tmp, steps=[0, 2], name="sel.safetensors")
        assert sorted({e["step"] for e in e2 if e["kind"] == "input"}) == [0, 2]

        # subsampling: deterministic for a seed, rows are a subset, inputs/outputs aligned
        _, xs, pa, ea = run_capture(tmp, max_tokens=7, seed=5, outputs=True, name="a.safetensors")
        _, _, pb, _ = run_capture(tmp, max_tokens=7, seed=5, outputs=True, name="b.safetensors")
        _, _, pc, _ = run_capture(tmp, max_tokens=7, seed=6, outputs=True, name="c.safetensors")
        ta, tb, tc = load_file(pa), load_file(pb), load_file(pc)
        assert all(torch.equal(ta[k], tb[k]) for k in ta)
        assert any(not torch.equal(ta[k], tc[k]) for k in ta if k.endswith(".input"))
        x0 = t["step000.0.input"]  # full rows from the first run (same inputs)
        sub = ta["step000.0.input"]
        assert sub.shape == (7, 8)
        rows = [int((x0 == r).all(1).nonzero()[0]) for r in sub]
        assert rows == sorted(set(rows)), rows
        out = ta["step000.0.output"]
        m = tiny()
        with torch.no_grad():
            assert torch.allclose(out, m[0](sub))
        assert all(e["seed"] == 5 for e in ea)
        assert {e["kind"] for e in ea} == {"input", "output", "weight"}

        # float16 storage
        model = tiny()
        with Capture(model, dtype=torch.float16) as cap:
            with cap.step(0), torch.no_grad():
                model(torch.randn(2, 8))
            e16 = cap.save(os.path.join(tmp, "h.safetensors"))
        assert {e["dtype"] for e in e16} == {"F16"}
        # hooks removed on exit
        assert not model[0]._forward_hooks
    print("test_capture: ok")


if __name__ == "__main__":
    main()
