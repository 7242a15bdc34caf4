"""Small CNN classifier on the tinydit crops; its penultimate layer (128-d, after ReLU) gives the
features used for a Frechet distance ("FID-like"; Inception-v3 weights cannot be downloaded here).

Parameter names: conv1..conv5 (Conv2d 3x3), fc1 (128->128, feature layer), fc2 (128->classes).
Input: float images in [-1, 1], NCHW, 32x32.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FEATNET_CONFIG = dict(in_channels=3, width=32, feat_dim=128, num_classes=12)


class FeatNet(nn.Module):
    def __init__(self, in_channels=3, width=32, feat_dim=128, num_classes=12):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(in_channels, w, 3, padding=1)
        self.conv2 = nn.Conv2d(w, w, 3, padding=1)
        self.conv3 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.conv4 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.conv5 = nn.Conv2d(2 * w, 4 * w, 3, padding=1)
        self.fc1 = nn.Linear(4 * w, feat_dim)
        self.fc2 = nn.Linear(feat_dim, num_classes)

    def features(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)   # 16x16
        x = F.relu(self.conv3(x))
        x = F.max_pool2d(F.relu(self.conv4(x)), 2)   # 8x8
        x = F.relu(self.conv5(x))
        x = x.mean(dim=(2, 3))                       # global average pool
        return F.relu(self.fc1(x))                   # penultimate features (FID)

    def forward(self, x):
        return self.fc2(self.features(x))


def frechet_distance(f1, f2):
    """Frechet distance between Gaussians fitted to two feature sets (rows = samples)."""
    from scipy import linalg
    f1 = np.asarray(f1, np.float64)
    f2 = np.asarray(f2, np.float64)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(s1.shape[0])
        covmean = linalg.sqrtm((s1 + eps).dot(s2 + eps))
    covmean = covmean.real
    d = mu1 - mu2
    return float(d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@torch.no_grad()
def extract(net, x, batch=1000):
    """x: float tensor in [-1, 1], NCHW, on net's device -> (N, feat_dim) numpy."""
    net.eval()
    out = [net.features(x[i:i + batch]).float().cpu() for i in range(0, len(x), batch)]
    return torch.cat(out).numpy()


def train_featnet(x_train, y_train, x_held, y_held, num_classes, seed=0, steps=3000, batch=256,
                  max_seconds=60.0, log=print):
    """x_*: float tensors in [-1, 1], NCHW, on the GPU. Returns (net, info dict)."""
    import time
    torch.manual_seed(seed)
    dev = x_train.device
    net = FeatNet(num_classes=num_classes).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    g = torch.Generator(device=dev).manual_seed(seed)
    t0 = time.time()
    step = 0
    net.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x_train), (batch,), device=dev, generator=g)
        xb, yb = x_train[idx], y_train[idx]
        flip = torch.rand(batch, device=dev, generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            log(f"featnet step {step} loss {loss.item():.4f} {time.time() - t0:.1f}s")
        if time.time() - t0 > max_seconds:
            break
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x_held[i:i + 1000]).argmax(1) for i in range(0, len(x_held), 1000)])
        acc = (pred == y_held).float().mean().item()
        pred_tr = torch.cat([net(x_train[i:i + 1000]).argmax(1) for i in range(0, 6000, 1000)])
        acc_tr = (pred_tr == y_train[:6000]).float().mean().item()
    info = dict(steps=step, seconds=round(time.time() - t0, 1), heldout_accuracy=round(acc, 4),
                train_accuracy_first6000=round(acc_tr, 4), final_loss=round(loss.item(), 4))
    log(f"featnet done: {info}")
    return net, info
