"""Build freqalign and its compiled extension ``freqalign._C``.

The C++ CPU kernels always build. The CUDA kernels build too whenever a CUDA toolkit is found
(``CUDA_HOME`` or ``nvcc`` on the path) unless ``FREQALIGN_BUILD_CUDA=0``; the architectures come
from ``TORCH_CUDA_ARCH_LIST`` (default ``9.0``). ``FREQALIGN_BUILD_EXT=0`` skips the extension
entirely: the package then runs on its pure-PyTorch backend.
"""
import glob
import os

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name, default):
    return os.environ.get(name, default).strip().lower() not in ("0", "false", "no", "off", "")


def extension_modules():
    if not _flag("FREQALIGN_BUILD_EXT", "1"):
        return [], {}
    if "CUDA_HOME" not in os.environ and os.path.exists("/usr/local/cuda/bin/nvcc"):
        # torch's guess from `which nvcc` can land on a wrapper outside the toolkit.
        os.environ["CUDA_HOME"] = "/usr/local/cuda"
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cxx_flags = ["-O3", "-std=c++20", "-fopenmp", "-Wno-psabi"]
    with_cuda = _flag("FREQALIGN_BUILD_CUDA", "1") and CUDA_HOME is not None
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        ext = CUDAExtension(
            "freqalign._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=[("FREQALIGN_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++20", "--use_fast_math"]},
            extra_link_args=["-fopenmp"],
        )
    else:
        ext = CppExtension(
            "freqalign._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = extension_modules()

setup(
    packages=find_packages(include=["freqalign", "freqalign.*"]) + ["freqalign.kernels"],
    package_dir={"freqalign.kernels": "kernels"},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
