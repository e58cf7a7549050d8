"""Degradations for the embedded dataset (docs/design.md section 5).

Images are float32 numpy arrays (h, w, 3) in [0, 1], sRGB. Two families, chosen so that the
two domains differ in kind, not only in content:

- ``SOURCE_DISTORTIONS``: single, clean, synthetic distortions at five fixed levels, KADID
  style (``fn(image, level, rng)``, level 0 = mildest .. 4 = strongest), applied in sRGB.
  (v6 dropped KADID's saturation change: from one crop a blind model cannot tell a
  desaturated photo from a pale one, measured held-out SRCC 0.03-0.26 on that kind, and the
  target pipeline changes no colours; see ``benchmarks/results/method/learning.md``.)
- ``camera_pipeline``: an in-camera chain of 1-4 degradations with random continuous
  parameters, applied in linear light: exposure error (over: highlight clipping; under:
  less light, then ISO gain that amplifies the sensor noise), defocus or motion blur,
  signal-dependent Poisson-Gaussian sensor noise with demosaicking-like spatial
  correlation, then gamma and JPEG with 4:2:0 chroma subsampling.
"""
import io
from typing import Callable, Dict

import numpy as np
from PIL import Image
from scipy import ndimage

GAMMA = 2.2
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 with rounding."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int, subsampling: int) -> np.ndarray:
    """JPEG round trip through PIL; ``subsampling`` 0 = 4:4:4, 2 = 4:2:0."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="JPEG", quality=int(quality),
                                          subsampling=subsampling)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), mode="reflect")


def _disk_kernel(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    # anti-aliased disk: coverage falls off linearly over one pixel at the rim
    k = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    r = int(np.ceil(length / 2))
    size = 2 * r + 1
    k = np.zeros((size, size), dtype=np.float32)
    for t in np.linspace(-length / 2, length / 2, 4 * size):
        x, y = r + t * np.cos(angle), r + t * np.sin(angle)
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                            (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                k[y0 + dy, x0 + dx] += wgt
    return k / k.sum()


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.convolve(image[..., c], kernel, mode="reflect")
                     for c in range(image.shape[-1])], axis=-1)


# ---- source: single synthetic distortions, five levels each ------------------------------

def gaussian_blur(image, level, rng):
    return _blur(image, (0.7, 1.1, 1.6, 2.3, 3.2)[level])


def white_noise(image, level, rng):
    std = (0.02, 0.04, 0.065, 0.10, 0.15)[level]
    return np.clip(image + rng.normal(0.0, std, image.shape).astype(np.float32), 0.0, 1.0)


def jpeg_compression(image, level, rng):
    return jpeg(image, (45, 28, 16, 9, 4)[level], subsampling=0)


def contrast_change(image, level, rng):
    k = (0.75, 0.58, 0.43, 0.30, 0.18)[level]
    mean = float((image @ LUMA).mean())
    return np.clip(mean + k * (image - mean), 0.0, 1.0)


def pixelation(image, level, rng):
    factor = (2, 3, 4, 6, 8)[level]
    h, w = image.shape[:2]
    small = Image.fromarray(to_uint8(image)).resize(
        (max(1, round(w / factor)), max(1, round(h / factor))), Image.BOX)
    return np.asarray(small.resize((w, h), Image.NEAREST), dtype=np.float32) / 255.0


def color_quantization(image, level, rng):
    colors = (32, 16, 8, 4, 2)[level]
    quant = Image.fromarray(to_uint8(image)).quantize(
        colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return np.asarray(quant.convert("RGB"), dtype=np.float32) / 255.0


def lens_blur(image, level, rng):
    return _convolve(image, _disk_kernel((1.0, 1.5, 2.0, 3.0, 4.0)[level]))


def motion_blur(image, level, rng):
    return _convolve(image, _motion_kernel((3.0, 4.5, 6.0, 8.0, 11.0)[level],
                                           float(rng.uniform(0.0, np.pi))))


def brighten(image, level, rng):
    """Over-exposure: more light in linear light, highlights clipped."""
    gain = 2.0 ** (0.3, 0.6, 0.9, 1.25, 1.6)[level]
    return np.power(np.clip(np.power(image, GAMMA) * gain, 0.0, 1.0), 1.0 / GAMMA)


def darken(image, level, rng):
    """Under-exposure: less light in linear light (no noise: a synthetic change)."""
    gain = 2.0 ** -(0.6, 1.1, 1.6, 2.2, 2.8)[level]
    return np.power(np.power(image, GAMMA) * gain, 1.0 / GAMMA)


def multiplicative_noise(image, level, rng):
    std = (0.05, 0.09, 0.14, 0.21, 0.30)[level]
    return np.clip(image * (1.0 + rng.normal(0.0, std, image.shape).astype(np.float32)), 0.0, 1.0)


def jpeg420_compression(image, level, rng):
    return jpeg(image, (45, 28, 16, 9, 4)[level], subsampling=2)


def jpeg2000_compression(image, level, rng):
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="JPEG2000", quality_mode="rates",
                                          quality_layers=[(24, 48, 96, 192, 384)[level]])
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0


SOURCE_DISTORTIONS: Dict[str, Callable] = {
    "gaussian_blur": gaussian_blur,
    "white_noise": white_noise,
    "jpeg": jpeg_compression,
    "contrast": contrast_change,
    "pixelation": pixelation,
    "quantization": color_quantization,
    "lens_blur": lens_blur,
    "motion_blur": motion_blur,
    "brighten": brighten,
    "darken": darken,
    "multiplicative_noise": multiplicative_noise,
    "jpeg420": jpeg420_compression,
    "jpeg2000": jpeg2000_compression,
}


# ---- target: in-camera pipeline --------------------------------------------------------

CAMERA_STAGES = ("exposure", "blur", "noise", "jpeg")
# sensor noise of a good camera at base ISO: used when only "exposure" asks for noise
DEFAULT_SENSOR = {"shot": 10 ** -3.3, "read": 10 ** -5.0, "noise_corr": 0.6}


def sample_camera_params(rng: np.random.Generator) -> dict:
    """Random pipeline: 1-4 of ``CAMERA_STAGES`` (kept in pipeline order) and their parameters."""
    k = int(rng.integers(1, len(CAMERA_STAGES) + 1))
    chosen = sorted(rng.choice(len(CAMERA_STAGES), size=k, replace=False))
    params = {"stages": tuple(CAMERA_STAGES[i] for i in chosen)}
    if "exposure" in params["stages"]:
        over = rng.random() < 0.5
        params["exposure_ev"] = float(rng.uniform(0.4, 1.5) if over else rng.uniform(-3.5, -1.0))
    if "blur" in params["stages"]:
        if rng.random() < 0.5:
            params["defocus_radius"] = float(rng.uniform(0.5, 2.5))
        else:
            params["motion_length"] = float(rng.uniform(2.0, 6.0))
            params["motion_angle"] = float(rng.uniform(0.0, np.pi))
    if "noise" in params["stages"]:
        params["shot"] = float(10 ** rng.uniform(-3.3, -1.9))  # Poisson part: var = shot * x
        params["read"] = float(10 ** rng.uniform(-5.0, -3.3))  # Gaussian part: var = read
        params["noise_corr"] = float(rng.uniform(0.3, 0.9))    # demosaic spatial correlation
    if "jpeg" in params["stages"]:
        params["jpeg_quality"] = int(rng.integers(12, 80))
    return params


def camera_pipeline(image: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Apply the stages in ``params`` (from ``sample_camera_params``) in camera order.

    Exposure is what a camera does, not a plain brightness shift a blind viewer cannot see:
    over-exposure (ev > 0) scales the light and blows out the highlights; under-exposure
    (ev < 0) collects 2**ev of the light, so the sensor noise is relatively stronger, and
    the camera's digital (ISO) gain then restores the brightness, amplifying that noise.
    """
    linear = np.power(image, GAMMA)
    gain = np.float32(2.0 ** params.get("exposure_ev", 0.0))
    linear = linear * gain
    if "defocus_radius" in params:
        linear = _convolve(linear, _disk_kernel(params["defocus_radius"]))
    elif "motion_length" in params:
        linear = _convolve(linear, _motion_kernel(params["motion_length"],
                                                  params["motion_angle"]))
    if "shot" in params or gain < 1:
        shot = params.get("shot", DEFAULT_SENSOR["shot"])
        read = params.get("read", DEFAULT_SENSOR["read"])
        corr = params.get("noise_corr", DEFAULT_SENSOR["noise_corr"])
        signal = np.clip(linear, 0.0, 1.0)
        field = ndimage.gaussian_filter(rng.standard_normal(linear.shape).astype(np.float32),
                                        sigma=(corr, corr, 0))
        field = field / max(float(field.std()), 1e-6)
        linear = np.clip(linear + field * np.sqrt(shot * signal + read), 0.0, None)
    if gain < 1:
        linear = linear / gain
    out = np.power(np.clip(linear, 0.0, 1.0), 1.0 / GAMMA).astype(np.float32)
    if "jpeg_quality" in params:
        out = jpeg(out, params["jpeg_quality"], subsampling=2)
    return out


def apply_source(image: np.ndarray, kind: str, level: int,
                 rng: np.random.Generator) -> np.ndarray:
    """One source distortion ``kind`` at ``level`` (0..4)."""
    if kind not in SOURCE_DISTORTIONS:
        raise ValueError(f"unknown distortion {kind!r}; known: {sorted(SOURCE_DISTORTIONS)}")
    if not 0 <= level <= 4:
        raise ValueError(f"level must be in 0..4, got {level}")
    return SOURCE_DISTORTIONS[kind](image, level, rng).astype(np.float32)
