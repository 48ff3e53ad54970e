"""Build the Cython kernels: -O3, OpenMP, typed memoryviews, BLAS through scipy.linalg.cython_blas."""
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    openmp_compile, openmp_link = ["/openmp", "/O2"], []
elif sys.platform == "darwin":
    openmp_compile, openmp_link = ["-Xpreprocessor", "-fopenmp", "-O3"], ["-lomp"]
else:
    openmp_compile, openmp_link = ["-fopenmp", "-O3"], ["-fopenmp"]

KERNELS = ["bcm", "krotov", "locally_connected", "conv"]

extensions = [
    Extension(
        f"plasticity_kit.kernels.{name}",
        [f"plasticity_kit/kernels/{name}.pyx"],
        depends=["plasticity_kit/kernels/team.h", "plasticity_kit/kernels/soft_wta.h", "plasticity_kit/kernels/sample_space.h", "plasticity_kit/kernels/blas.pxd"],
        include_dirs=[numpy.get_include()],
        extra_compile_args=openmp_compile,
        extra_link_args=openmp_link,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
