"""A tiny two-domain CSV dataset (blocky 32 x 32 images, 8 groups x 6 per domain): the training
tests' data and the GPU check's dry run."""
import csv
import os

import numpy as np
from PIL import Image


def _image(rng, quality: float, domain: str) -> np.ndarray:
    base = rng.random((4, 4, 3))
    img = np.kron(base, np.ones((8, 8, 1)))  # blocky content, 32 x 32
    noise = rng.normal(0, 1, img.shape) * (1 - quality) * (0.3 if domain == "source" else 0.15)
    if domain == "target":
        img = img * (0.6 + 0.4 * quality)  # darker when worse
    return (np.clip(img + noise, 0, 1) * 255).astype(np.uint8)


def make_tiny_data(folder) -> dict:
    """Write source and target CSV datasets (8 groups x 6 images each); return their specs."""
    specs = {}
    for d, domain in enumerate(("source", "target")):
        rng = np.random.default_rng(d)
        root = os.path.join(folder, domain)
        os.makedirs(root, exist_ok=True)
        rows = []
        for g in range(8):
            for k in range(6):
                q = (k + rng.random()) / 6
                name = f"{domain}_{g}_{k}.png"
                Image.fromarray(_image(rng, q, domain)).save(os.path.join(root, name))
                rows.append({"path": name, "score": f"{q:.4f}", "group": f"{domain}{g}"})
        table = os.path.join(root, "labels.csv")
        with open(table, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["path", "score", "group"])
            writer.writeheader()
            writer.writerows(rows)
        specs[domain] = f"csv:{table}"
    return specs
