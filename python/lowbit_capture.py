"""lowbit_capture: record layer inputs / weights / outputs of any torch.nn.Module to .safetensors.

Forward hooks on every submodule of the chosen types (default ``nn.Linear``) record, while a
step is active, the layer's input activation (flattened to ``[tokens, features]``), optionally
its output, and once per layer its weight. Token rows can be subsampled with a fixed seed (the
same rows are kept for the input and output of one call). ``save`` writes one ``.safetensors``
file and returns manifest entries (one per tensor) with the fields
``file, name, layer, kind (input|weight|output), step, timestep, call, shape, dtype, model, seed,
orig_shape``; ``write_manifest`` writes them as JSON.

Example with your own model::

    import torch, torch.nn as nn
    from lowbit_capture import Capture, write_manifest

    model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64)).eval()
    with Capture(model, model_name="my_mlp", max_tokens=128, seed=0) as cap:
        for i, t in enumerate([1.0, 0.5, 0.0]):
            with cap.step(i, timestep=t), torch.no_grad():   # only calls inside a step are recorded
                model(torch.randn(4, 100, 64))
        entries = cap.save("my_mlp.safetensors")             # inputs [128, F] per layer per step + weights
    write_manifest("manifest.json", entries)

Then e.g. ``lowbit error my_mlp.safetensors:step000.2.input ...`` (see the lowbit README).

CLI: ``python python/lowbit_capture.py --demo OUT.safetensors`` runs the example above;
``python python/lowbit_capture.py --list FILE.safetensors`` prints a file's tensors.
"""
from __future__ import annotations

import contextlib
import json
import os
import zlib
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn

__all__ = ["Capture", "write_manifest"]

_DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


class Capture:
    """Hooks that record activations and weights of selected modules of ``model``.

    model:          any nn.Module
    module_types:   tuple of module classes to hook (default (nn.Linear,))
    layer_filter:   optional callable(name, module) -> bool choosing which matching layers to hook
    inputs / outputs / weights: what to record (weights once per layer; outputs off by default)
    weight_filter:  optional callable(name) -> bool restricting which layers' weights are stored
    steps:          optional iterable of step indices to record (others are ignored); None = all
    max_tokens:     keep at most this many rows of the flattened [tokens, features] tensors,
                    chosen without replacement by a generator seeded from (seed, layer, step, call)
    seed:           subsampling seed (recorded in the manifest)
    dtype:          storage dtype for activations (torch.float32 / float16 / bfloat16)
    weight_dtype:   storage dtype for weights (default: same as dtype)
    model_name:     free text recorded in the manifest
    """

    def __init__(self, model: nn.Module, module_types=(nn.Linear,),
                 layer_filter: Optional[Callable[[str, nn.Module], bool]] = None,
                 inputs: bool = True, outputs: bool = False, weights: bool = True,
                 weight_filter: Optional[Callable[[str], bool]] = None,
                 steps: Optional[Iterable[int]] = None, max_tokens: Optional[int] = None,
                 seed: int = 0, dtype=torch.float32, weight_dtype=None, model_name: str = "model"):
        if dtype not in _DTYPE_NAMES or (weight_dtype is not None and weight_dtype not in _DTYPE_NAMES):
            raise ValueError("dtype must be torch.float32, float16 or bfloat16")
        self.model = model
        self.inputs, self.outputs, self.weights = inputs, outputs, weights
        self.weight_filter = weight_filter
        self.steps = None if steps is None else set(int(s) for s in steps)
        self.max_tokens = max_tokens
        self.seed = int(seed)
        self.dtype = dtype
        self.weight_dtype = weight_dtype or dtype
        self.model_name = model_name
        self._step: Optional[int] = None
        self._timestep: Optional[float] = None
        self._calls: dict = {}
        self.records: list = []        # (name, tensor, meta) in capture order
        self._weights_done: set = set()
        self._handles = []
        self.layers = []
        for name, mod in model.named_modules():
            if isinstance(mod, tuple(module_types)) and (layer_filter is None or layer_filter(name, mod)):
                self.layers.append(name)
                self._handles.append(mod.register_forward_hook(self._make_hook(name)))

    # ---- step control ----------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, index: int, timestep: Optional[float] = None):
        """Record forward calls made inside this block as sampling step ``index``."""
        self.set_step(index, timestep)
        try:
            yield self
        finally:
            self.set_step(None)

    def set_step(self, index: Optional[int], timestep: Optional[float] = None):
        self._step = None if index is None else int(index)
        self._timestep = None if timestep is None else float(timestep)
        self._calls = {}

    def active(self) -> bool:
        return self._step is not None and (self.steps is None or self._step in self.steps)

    # ---- hooks -----------------------------------------------------------------------------
    def _rows(self, layer: str, call: int, n: int) -> Optional[torch.Tensor]:
        if self.max_tokens is None or n <= self.max_tokens:
            return None
        key = f"{self.seed}|{layer}|{self._step}|{call}".encode()
        g = torch.Generator().manual_seed(zlib.crc32(key))
        return torch.randperm(n, generator=g)[: self.max_tokens].sort().values

    def _flat(self, x: torch.Tensor, rows: Optional[torch.Tensor]) -> torch.Tensor:
        x = x.detach().reshape(-1, x.shape[-1]) if x.dim() != 1 else x.detach().reshape(1, -1)
        if rows is not None:
            x = x[rows.to(x.device)]
        return x.to("cpu", self.dtype).contiguous().clone()

    def _meta(self, layer, kind, call, orig_shape):
        return dict(layer=layer, kind=kind, step=self._step if kind != "weight" else None,
                    timestep=self._timestep if kind != "weight" else None, call=call,
                    orig_shape=list(orig_shape))

    def _make_hook(self, layer: str):
        def hook(mod, args, out):
            if not self.active():
                return
            w = getattr(mod, "weight", None)
            if self.weights and layer not in self._weights_done and isinstance(w, torch.Tensor) \
                    and (self.weight_filter is None or self.weight_filter(layer)):
                self._weights_done.add(layer)
                self.records.append((f"{layer}.weight",
                                     w.detach().to("cpu", self.weight_dtype).contiguous().clone(),
                                     self._meta(layer, "weight", None, w.shape)))
            if not (self.inputs or self.outputs) or not args or not isinstance(args[0], torch.Tensor):
                return
            call = self._calls.get(layer, 0)
            self._calls[layer] = call + 1
            x = args[0]
            n = x.numel() // x.shape[-1] if x.dim() else 1
            rows = self._rows(layer, call, n)
            sfx = "" if call == 0 else f".call{call}"
            base = f"step{self._step:03d}.{layer}"
            if self.inputs:
                self.records.append((f"{base}.input{sfx}", self._flat(x, rows),
                                     self._meta(layer, "input", call, x.shape)))
            if self.outputs and isinstance(out, torch.Tensor):
                self.records.append((f"{base}.output{sfx}", self._flat(out, rows),
                                     self._meta(layer, "output", call, out.shape)))
        return hook

    # ---- output ----------------------------------------------------------------------------
    def save(self, path: str, metadata: Optional[dict] = None, manifest_file: Optional[str] = None,
             clear: bool = True) -> list:
        """Write all records to ``path`` (.safetensors); return manifest entries.

        manifest_file: the "file" field written into the entries (default: basename of path).
        """
        from safetensors.torch import save_file
        tensors, entries = {}, []
        fname = manifest_file or os.path.basename(path)
        for name, t, meta in self.records:
            if name in tensors:
                raise ValueError(f"duplicate tensor name {name}")
            tensors[name] = t
            entries.append(dict(file=fname, name=name, layer=meta["layer"], kind=meta["kind"],
                                step=meta["step"], timestep=meta["timestep"], call=meta["call"],
                                shape=list(t.shape), dtype=_DTYPE_NAMES[t.dtype],
                                orig_shape=meta["orig_shape"], model=self.model_name, seed=self.seed))
        md = {"model": self.model_name, "seed": str(self.seed),
              "max_tokens": str(self.max_tokens), "producer": "lowbit_capture"}
        md.update({k: str(v) for k, v in (metadata or {}).items()})
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save_file(tensors, path, metadata=md)
        if clear:
            self.records = []
        return entries

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def write_manifest(path: str, entries: list, extra: Optional[dict] = None):
    """Write ``{"format": "lowbit-capture-1", ..extra, "tensors": entries}`` as JSON."""
    doc = {"format": "lowbit-capture-1"}
    doc.update(extra or {})
    doc["tensors"] = entries
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def _main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", metavar="OUT", help="capture a small random MLP to OUT.safetensors (+ .json)")
    ap.add_argument("--list", metavar="FILE", help="list tensors of a .safetensors file")
    a = ap.parse_args(argv)
    if a.demo:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64)).eval()
        with Capture(model, model_name="demo_mlp", max_tokens=128, seed=0) as cap:
            for i, t in enumerate([1.0, 0.5, 0.0]):
                with cap.step(i, timestep=t), torch.no_grad():
                    model(torch.randn(4, 100, 64))
            entries = cap.save(a.demo)
        write_manifest(os.path.splitext(a.demo)[0] + ".json", entries)
        print(f"wrote {a.demo} ({len(entries)} tensors)")
    if a.list:
        from safetensors import safe_open
        with safe_open(a.list, "pt") as f:
            for k in f.keys():
                t = f.get_slice(k)
                print(k, t.get_dtype(), t.get_shape())
    if not (a.demo or a.list):
        ap.print_help()


if __name__ == "__main__":
    _main()
