"""Reference values for lowbit's image-quality metrics (tests/sim/test_featnet.cpp, test_fid.cpp,
test_image_metrics.cpp), computed once with numpy / scipy / scikit-image and committed as
tests/data/metrics_reference.safetensors. The C++ tests never run Python.

Sections (tensor name prefixes):

  featnet64.*   featnet in float64, an independent numpy implementation (shifted-window einsum
                convolutions, reshape max pool) on featnet_in of tests/data/dit_reference.safetensors:
                feat (8, 128), logits (8, 12). Its distance to PyTorch's float32 result
                (featnet_feat, featnet_logits there) is the scale of float32 rounding.
  frechet.*     Frechet distances by the pytorch-fid formula (experiments/tinydit/featnet.py:
                scipy.linalg.sqrtm(s1 @ s2).real, eps retry) for random PSD pairs:
                  caseK.mu1 (D), caseK.sigma1 (D, D), caseK.mu2, caseK.sigma2, caseK.fd (1,)
                  K=0: D=4 full rank; K=1: D=16 full rank (Wishart, 40 dof);
                  K=2: D=16, ranks 5 and 9 (singular covariances, sqrtm near its limits)
                plus feature matrices x (40, 6), y (50, 6) with np.mean / np.cov(rowvar=False)
                (x.mu, x.sigma, y.mu, y.sigma) and xy.fd; and real.fd = FD(train, heldout) of
                models/featnet/real_stats.safetensors.
  ssim.*, psnr.* skimage.metrics.structural_similarity(a, b, data_range=2, channel_axis=0,
                gaussian_weights=True, sigma=1.5, use_sample_covariance=False) and
                peak_signal_noise_ratio(b, a, data_range=2), on float64 copies of float32
                images (so skimage computes in float64, as the C++ does):
                  ssim.pairs (P, 2) i32: index pairs into featnet_in of dit_reference;
                  ssim.pairs_ssim, psnr.pairs_psnr (P,) f64
                  ssim.noiseK_a/_b U8 images (K=0: (3, 32, 32) noise vs a noisier copy;
                  K=1: (1, 11, 13) independent noise, the smallest image the 11x11 window
                  fits; K=2: (3, 12, 20) a smooth pattern vs a noisy copy) with
                  ssim.noiseK (1,) and psnr.noiseK (1,); the float image is
                  float32(u8) / float32(127.5) - float32(1) in float32 arithmetic.

    .venv/bin/python tests/data/make_metrics_reference.py   (from the repository root)
"""
import os

import numpy as np
import scipy
import scipy.linalg
import skimage
from safetensors.numpy import load_file, save_file
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests/data/metrics_reference.safetensors")


def featnet64(x):
    w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(ROOT, "models/featnet/featnet.safetensors")).items()}

    def conv(a, name):
        wt, b = w[name + ".weight"], w[name + ".bias"]
        n, c, h, ww = a.shape
        ap = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = np.zeros((n, wt.shape[0], h, ww))
        for ky in range(3):
            for kx in range(3):
                out += np.einsum("oc,nchw->nohw", wt[:, :, ky, kx], ap[:, :, ky:ky + h, kx:kx + ww])
        return np.maximum(out + b[None, :, None, None], 0)

    def pool(a):
        n, c, h, ww = a.shape
        return a[:, :, :h // 2 * 2, :ww // 2 * 2].reshape(n, c, h // 2, 2, ww // 2, 2).max(axis=(3, 5))

    a = pool(conv(conv(x, "conv1"), "conv2"))
    a = pool(conv(conv(a, "conv3"), "conv4"))
    g = conv(a, "conv5").mean(axis=(2, 3))
    f = np.maximum(g @ w["fc1.weight"].T + w["fc1.bias"], 0)
    return f, f @ w["fc2.weight"].T + w["fc2.bias"]


def fd_pytorch_fid(mu1, s1, mu2, s2):
    """experiments/tinydit/featnet.py frechet_distance on statistics (pytorch-fid's formula)."""
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(s1.shape[0])
        covmean = scipy.linalg.sqrtm((s1 + eps).dot(s2 + eps))
    covmean = covmean.real
    d = mu1 - mu2
    return float(d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def wishart(rng, d, dof, rank=None):
    g = rng.standard_normal((d, dof if rank is None else rank)) * rng.uniform(0.2, 3.0, (d, 1))
    return g @ g.T / g.shape[1]


def main():
    out = {}
    ref = load_file(os.path.join(ROOT, "tests/data/dit_reference.safetensors"))
    f, l = featnet64(ref["featnet_in"].astype(np.float64))
    out["featnet64.feat"], out["featnet64.logits"] = f, l

    rng = np.random.default_rng(20261123)
    cases = [(4, 12, None, None), (16, 40, None, None), (16, None, 5, 9)]
    for k, (d, dof, r1, r2) in enumerate(cases):
        s1 = wishart(rng, d, dof, r1)
        s2 = wishart(rng, d, dof, r2)
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        out.update({f"frechet.case{k}.mu1": mu1, f"frechet.case{k}.sigma1": s1,
                    f"frechet.case{k}.mu2": mu2, f"frechet.case{k}.sigma2": s2,
                    f"frechet.case{k}.fd": np.array([fd_pytorch_fid(mu1, s1, mu2, s2)])})
    x = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 6)) + rng.standard_normal(6)
    y = rng.standard_normal((50, 6)) * 1.5 + 0.3
    out["frechet.x"], out["frechet.y"] = x, y
    for name, z in (("x", x), ("y", y)):
        out[f"frechet.{name}.mu"] = z.mean(0)
        out[f"frechet.{name}.sigma"] = np.cov(z, rowvar=False)
    out["frechet.xy.fd"] = np.array([fd_pytorch_fid(x.mean(0), np.cov(x, rowvar=False),
                                                    y.mean(0), np.cov(y, rowvar=False))])
    st = load_file(os.path.join(ROOT, "models/featnet/real_stats.safetensors"))
    out["frechet.real.fd"] = np.array([fd_pytorch_fid(st["train.mu"], st["train.sigma"],
                                                      st["heldout.mu"], st["heldout.sigma"])])

    def metrics(a32, b32):
        a, b = a32.astype(np.float64), b32.astype(np.float64)
        s = structural_similarity(a, b, data_range=2, channel_axis=0, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False)
        with np.errstate(divide="ignore"):
            p = peak_signal_noise_ratio(b, a, data_range=2)
        return s, p

    imgs = ref["featnet_in"]
    pairs = np.array([[0, 4], [1, 5], [4, 5], [0, 1], [6, 7], [3, 3]], dtype=np.int32)
    out["ssim.pairs"] = pairs
    sp = [metrics(imgs[i], imgs[j]) for i, j in pairs]
    out["ssim.pairs_ssim"] = np.array([s for s, _ in sp])
    out["psnr.pairs_psnr"] = np.array([p for _, p in sp])

    def to_float(u8):
        return u8.astype(np.float32) / np.float32(127.5) - np.float32(1)

    base = rng.integers(0, 256, (3, 32, 32))
    noisy = [(base, base + rng.integers(-40, 41, base.shape)),
             (rng.integers(0, 256, (1, 11, 13)), rng.integers(0, 256, (1, 11, 13))),
             None]
    yy, xx = np.mgrid[0:12, 0:20]
    smooth = 127 + 100 * np.sin(xx / 3.0)[None] * np.cos(yy / 4.0)[None] * np.array([1.0, 0.5, -0.8])[:, None, None]
    noisy[2] = (smooth, smooth + rng.normal(0, 12, smooth.shape))
    for k, (a, b) in enumerate(noisy):
        a8 = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        b8 = np.clip(np.rint(b), 0, 255).astype(np.uint8)
        s, p = metrics(to_float(a8), to_float(b8))
        out[f"ssim.noise{k}_a"], out[f"ssim.noise{k}_b"] = a8, b8
        out[f"ssim.noise{k}"], out[f"psnr.noise{k}"] = np.array([s]), np.array([p])

    out = {k: np.ascontiguousarray(v) for k, v in out.items()}
    save_file(out, OUT, metadata={"script": "tests/data/make_metrics_reference.py",
                                  "numpy": np.__version__, "scipy": scipy.__version__,
                                  "skimage": skimage.__version__})
    print(f"{OUT}: {len(out)} tensors, {os.path.getsize(OUT)} bytes")
    print("featnet64 vs torch f32: feat", np.abs(f - ref["featnet_feat"]).max(),
          "logits", np.abs(l - ref["featnet_logits"]).max())
    for k in range(len(cases)):
        print(f"case{k} fd", out[f"frechet.case{k}.fd"][0])
    print("xy fd", out["frechet.xy.fd"][0], "real fd", out["frechet.real.fd"][0])
    print("ssim pairs", out["ssim.pairs_ssim"], "psnr", out["psnr.pairs_psnr"])
    print("noise ssim", [out[f"ssim.noise{k}"][0] for k in range(3)], "psnr", [out[f"psnr.noise{k}"][0] for k in range(3)])


if __name__ == "__main__":
    main()
