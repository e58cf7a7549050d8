"""Trained calibration rows, fast: the EfficientNet-Lite0 trunk (frozen stem outputs cached once,
``--stem FILE``) and the quality regressor fine-tuned on source labels (source-only) or on
target labels (target-oracle), AdamW with the trainer's warm-up + cosine schedule, batch 32,
one view per image; prints target-test and held-out source SRCC (splits as the trainer makes
them). Method-agnostic rows only: this is how the embedded v7 data was chosen
(benchmarks/results/method/benchmark.md); the reported rows come from ``freqalign compare``.
Usage: ``python -m benchmarks.method.calibrate_trained --data FILE --stem FILE [--bb 1.0]``.
"""
import argparse
import json
import time
import numpy as np
import torch
from benchmarks.method.calibrate import splits
from freqalign.method.efficientnet_lite import EfficientNetLite0Features
from freqalign.method.model import FreqAlignNet
from freqalign.metrics import srcc
ap = argparse.ArgumentParser()
ap.add_argument('--data'); ap.add_argument('--stem'); ap.add_argument('--k', type=int, default=15)
ap.add_argument('--steps', type=int, default=600); ap.add_argument('--lr', type=float, default=1e-3)
ap.add_argument('--bb', type=float, default=0.1); ap.add_argument('--seed', type=int, default=0)
ap.add_argument('--rows', default='source,oracle'); ap.add_argument('--photos', type=int, default=0)
ap.add_argument('--views', type=int, default=1)
a = ap.parse_args()
torch.set_num_threads(2)
d = torch.load(a.data, weights_only=False)
src, tgt = d['source'], d['target']
bb = EfficientNetLite0Features(a.k)
try:
    stem = torch.load(a.stem)
except FileNotFoundError:
    t = time.time(); stem = {}
    with torch.no_grad():
        for name, part in (('source', src), ('target', tgt)):
            im = part['images']; out = []
            for i in range(0, len(im), 64):
                x = im[i:i+64].float() / 255
                out.append(torch.stack([bb.stem(x)] + ([bb.stem(x.flip(-1))] if a.views == 2 else []), 1).half())
            stem[name] = torch.cat(out)
    torch.save(stem, a.stem); print('stem', time.time() - t, flush=True)
s = splits(src, {"train": 0.8, "val": 0.2}); t = splits(tgt, {"train": 0.5, "val": 0.2, "test": 0.3})
if a.photos:
    keep = ~np.asarray(src['chart'], bool); s = {k: v[keep[v]] for k, v in s.items()}
ys, yt = torch.tensor(np.asarray(src['scores']), dtype=torch.float32), torch.tensor(np.asarray(tgt['scores']), dtype=torch.float32)

def run(train_feats, train_y, rows, seed):
    torch.manual_seed(seed)
    bbm = EfficientNetLite0Features(a.k)
    net = FreqAlignNet(bbm, 128, 256, 0.5, 7); net.from_stem = True
    opt = torch.optim.AdamW([{'params': bbm.trunk.parameters(), 'lr': a.lr * a.bb},
                             {'params': net.regressor.parameters(), 'lr': a.lr}], weight_decay=1e-4)
    peaks = [g['lr'] for g in opt.param_groups]
    g = torch.Generator().manual_seed(seed)
    net.train(); t0 = time.time()
    for step in range(a.steps):
        f = min(1.0, (step + 1) / (0.05 * a.steps)) * 0.5 * (1 + np.cos(np.pi * step / a.steps))
        for grp, p in zip(opt.param_groups, peaks): grp['lr'] = p * f
        idx = torch.from_numpy(rows[torch.randint(0, len(rows), (32,), generator=g).numpy()])
        v = torch.randint(0, train_feats.shape[1], (32,), generator=g)
        x = train_feats[idx, v].float()
        pred, _, _ = net(x, 0.0)
        loss = torch.nn.functional.l1_loss(pred, train_y[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    net.eval()
    with torch.no_grad():
        pt = net(stem['target'][:, 0].float())[0].numpy(); ps = net(stem['source'][:, 0].float())[0].numpy()
    return dict(target=srcc(pt[t['test']], yt.numpy()[t['test']]), source_val=srcc(ps[s['val']], ys.numpy()[s['val']]),
                secs=time.time() - t0)
out = {}
if 'source' in a.rows: out['source_only'] = run(stem['source'], ys, s['train'], a.seed); print(out, flush=True)
if 'oracle' in a.rows: out['oracle'] = run(stem['target'], yt, t['train'], a.seed)
print(json.dumps({'args': vars(a), **out}))
