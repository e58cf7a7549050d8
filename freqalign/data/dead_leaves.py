"""Dead-leaves charts: procedural natural-like content for the embedded dataset.

The dead-leaves model (Matheron; Lee, Mumford and Huang 2001) stacks opaque disks with a
power-law radius density ``p(r) ~ r**-3`` at random places; its images are scale-invariant
with a ``1/f**2`` power spectrum, like natural photos, which is why camera image-quality
testing uses them (IEEE P1858, ISO 19567-2) to measure texture loss, noise and sharpening.
Here they give the quality model more content variety beside the few photos scikit-image
ships: each leaf has a random colour, a linear shading and a fine texture, so that flat
areas, edges and textures all occur at every scale.
"""
import numpy as np

R_MIN, R_MAX = 1.5, 48.0  # leaf radii in pixels at a 64-pixel chart (scaled with the side)
TEXTURE_STD = 0.03        # fine per-leaf texture (intensity std)
CHROMA_STD = 0.07         # per-leaf colour deviation from grey


def _radius(rng: np.random.Generator, r_min: float, r_max: float) -> float:
    """A radius with density ~ r**-3 on [r_min, r_max] (inverse-CDF sampling)."""
    u = rng.random()
    return float((r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5)


def dead_leaves(side: int, rng: np.random.Generator, max_leaves: int = 4000) -> np.ndarray:
    """A ``side`` x ``side`` chart, float32 (side, side, 3) in [0, 1].

    Leaves are placed front to back: a leaf paints only pixels no earlier leaf covered, and
    drawing stops once every pixel is covered (exact dead leaves, no wasted disks).
    """
    scale = side / 64.0
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    out = np.zeros((side, side, 3), np.float32)
    free = np.ones((side, side), bool)
    tint = rng.normal(0, 0.08, 3)  # a chart-wide colour cast: charts differ in palette
    for _ in range(max_leaves):
        r = _radius(rng, R_MIN * scale, R_MAX * scale)
        cy, cx = rng.uniform(-r, side + r, 2)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, side)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, side)
        if y0 >= y1 or x0 >= x1:
            continue
        box = (slice(y0, y1), slice(x0, x1))
        paint = free[box] & ((yy[box] - cy) ** 2 + (xx[box] - cx) ** 2 <= r * r)
        if not paint.any():
            continue
        # mostly lightness, some chroma: about as colourful as everyday photos
        colour = rng.uniform(0.05, 0.95) + tint + rng.normal(0, CHROMA_STD, 3)
        slope = rng.normal(0, 0.15 / max(r, 1.0), 2)  # shading across the leaf
        shade = slope[0] * (yy[box] - cy) + slope[1] * (xx[box] - cx)
        texture = rng.normal(0, TEXTURE_STD * rng.random(), paint.shape)
        value = colour[None, None, :] + (shade + texture)[..., None]
        out[box][paint] = value[paint]
        free[box] &= ~paint
        if not free.any():
            break
    return np.clip(out, 0.0, 1.0)


__all__ = ["dead_leaves"]
