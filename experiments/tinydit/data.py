"""Deterministic 32x32 RGB crop dataset from real photographs that ship with scikit-image and
scikit-learn (nothing is downloaded).

Class = source image. Each image is resized (anti-aliased) so its short side is one of SCALES,
then 32x32 crops are taken at seeded random positions; half of them (seeded) are flipped
horizontally. Held-out split is spatial: the right-most strip of every resized image
(width max(32, 20 % of the width)) is reserved for held-out crops, the rest for training crops,
so train and held-out crops never share a pixel.

    python experiments/tinydit/data.py            # prints the class table and writes nothing
    python experiments/tinydit/data.py --out d.npz

Arrays: uint8, NHWC, (N, 32, 32, 3); labels int64.
"""
import argparse

import numpy as np

CROP = 32
SCALES = (96, 160, 256)          # short side of the resized image, pixels
TRAIN_PER_SCALE = 1000           # train crops per class per scale
HELDOUT_PER_SCALE = 100          # held-out crops per class per scale
SEED = 20260509


def _skimage(name):
    def load():
        from skimage import data
        return getattr(data, name)()
    return load


def _sklearn(name):
    def load():
        from sklearn.datasets import load_sample_image
        return load_sample_image(name)
    return load


# (class name, loader, note). Order = class index. Grayscale textures are replicated to RGB.
SOURCES = [
    ("astronaut", _skimage("astronaut"), "skimage.data.astronaut, RGB photo 512x512"),
    ("chelsea", _skimage("chelsea"), "skimage.data.chelsea (cat), RGB photo 300x451"),
    ("coffee", _skimage("coffee"), "skimage.data.coffee, RGB photo 400x600"),
    ("rocket", _skimage("rocket"), "skimage.data.rocket, RGB photo 427x640"),
    ("hubble_deep_field", _skimage("hubble_deep_field"), "skimage.data.hubble_deep_field, RGB 872x1000"),
    ("immunohistochemistry", _skimage("immunohistochemistry"), "skimage.data.immunohistochemistry, RGB micrograph 512x512"),
    ("retina", _skimage("retina"), "skimage.data.retina, RGB fundus photo 1411x1411"),
    ("brick", _skimage("brick"), "skimage.data.brick, grayscale texture 512x512 -> RGB"),
    ("grass", _skimage("grass"), "skimage.data.grass, grayscale texture 512x512 -> RGB"),
    ("gravel", _skimage("gravel"), "skimage.data.gravel, grayscale texture 512x512 -> RGB"),
    ("china", _sklearn("china.jpg"), "sklearn.datasets.load_sample_image('china.jpg'), RGB 427x640"),
    ("flower", _sklearn("flower.jpg"), "sklearn.datasets.load_sample_image('flower.jpg'), RGB 427x640"),
]
CLASS_NAMES = [s[0] for s in SOURCES]


def _to_rgb_uint8(im):
    im = np.asarray(im)
    if im.ndim == 2:
        im = np.stack([im] * 3, axis=-1)
    if im.shape[-1] == 4:
        im = im[..., :3]
    if im.dtype != np.uint8:
        im = np.clip(np.round(im * 255.0 if im.max() <= 1.0 else im), 0, 255).astype(np.uint8)
    return im


def _resize_short_side(im, short):
    from skimage.transform import resize
    h, w = im.shape[:2]
    f = short / min(h, w)
    nh, nw = max(CROP, int(round(h * f))), max(CROP, int(round(w * f)))
    out = resize(im, (nh, nw), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _crops(im, n, x_lo, x_hi, rng):
    """n crops whose columns lie inside [x_lo, x_hi)."""
    h = im.shape[0]
    ys = rng.integers(0, h - CROP + 1, size=n)
    xs = rng.integers(x_lo, x_hi - CROP + 1, size=n)
    flips = rng.random(n) < 0.5
    out = np.empty((n, CROP, CROP, 3), np.uint8)
    for i, (y, x, f) in enumerate(zip(ys, xs, flips)):
        c = im[y:y + CROP, x:x + CROP]
        out[i] = c[:, ::-1] if f else c
    return out


def build(seed=SEED, train_per_scale=TRAIN_PER_SCALE, heldout_per_scale=HELDOUT_PER_SCALE, scales=SCALES):
    """Returns dict(x_train, y_train, x_heldout, y_heldout, class_names, counts)."""
    rng = np.random.default_rng(seed)
    xtr, ytr, xte, yte = [], [], [], []
    counts = {}
    for cls, (name, load, _) in enumerate(SOURCES):
        im = _to_rgb_uint8(load())
        ntr = nte = 0
        for s in scales:
            r = _resize_short_side(im, s)
            w = r.shape[1]
            strip = max(CROP, int(round(0.2 * w)))
            split = w - strip
            assert split >= CROP, (name, s, r.shape)
            a = _crops(r, train_per_scale, 0, split, rng)
            b = _crops(r, heldout_per_scale, split, w, rng)
            xtr.append(a); ytr.append(np.full(len(a), cls, np.int64)); ntr += len(a)
            xte.append(b); yte.append(np.full(len(b), cls, np.int64)); nte += len(b)
        counts[name] = dict(train=ntr, heldout=nte)
    return dict(
        x_train=np.concatenate(xtr), y_train=np.concatenate(ytr),
        x_heldout=np.concatenate(xte), y_heldout=np.concatenate(yte),
        class_names=list(CLASS_NAMES), counts=counts,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="optional .npz to write")
    args = ap.parse_args()
    d = build()
    print(f"{'idx':>3} {'class':<22}{'train':>7}{'heldout':>9}  source")
    for i, (name, _, note) in enumerate(SOURCES):
        c = d["counts"][name]
        print(f"{i:>3} {name:<22}{c['train']:>7}{c['heldout']:>9}  {note}")
    print("total", d["x_train"].shape, d["x_heldout"].shape)
    import hashlib
    print("sha256(x_train) =", hashlib.sha256(d["x_train"].tobytes()).hexdigest()[:16])
    if args.out:
        np.savez_compressed(args.out, **{k: v for k, v in d.items() if isinstance(v, np.ndarray)})


if __name__ == "__main__":
    main()
