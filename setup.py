"""Builds torchao_cpp through CMake against the torch that `import torch` finds.

    pip install --no-build-isolation .        # or -e . for development

Environment:
    TORCHAO_CPP_BUILD_DIR    CMake build directory (default: build/<python>-torch<version>)
    TORCHAO_CPP_BUILD_TESTS  1 to also build the C++ tests and benchmarks, 0 not to (default: 0 for a new
                             build directory, unchanged for an existing one)
    MAX_JOBS                 parallel compile jobs (default: number of CPUs)
"""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


def _cmake_args(build_dir):
    import torch

    args = [
        f"-DPython_EXECUTABLE={sys.executable}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    prefix = getattr(torch.utils, "cmake_prefix_path", None)
    if prefix and os.path.isdir(prefix):
        args.append(f"-DCMAKE_PREFIX_PATH={prefix}")
    try:
        import pybind11

        args.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
    except (ImportError, AttributeError):
        pass  # Debian's pybind11-dev config is found without a hint
    # Tests and benchmarks: as asked, else off for a new build dir and unchanged
    # for an existing one (so a plain rebuild never drops the tests' binaries).
    tests = os.environ.get("TORCHAO_CPP_BUILD_TESTS")
    if tests is None and not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        tests = "0"
    if tests is not None:
        on = "ON" if tests == "1" else "OFF"
        args += [f"-DTORCHAO_CPP_BUILD_TESTS={on}", f"-DTORCHAO_CPP_BUILD_BENCHMARKS={on}"]
    if shutil.which("ninja"):
        args.append("-GNinja")
    return args


def _build_dir():
    import torch

    default = os.path.join(
        ROOT, "build", f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__.split('+')[0]}"
    )
    return os.path.abspath(os.environ.get("TORCHAO_CPP_BUILD_DIR", default))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = _build_dir()
        os.makedirs(build_dir, exist_ok=True)
        cache = os.path.join(build_dir, "CMakeCache.txt")
        generator_args = _cmake_args(build_dir)
        if os.path.exists(cache):  # the generator of an existing build cannot change
            generator_args = [a for a in generator_args if a != "-GNinja"]
        subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir] + generator_args)
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.check_call(["cmake", "--build", build_dir, "--parallel", jobs])

        # Place _C next to the package and the ops library in torchao_cpp/lib.
        ext_path = os.path.abspath(self.get_ext_fullpath(ext.name))
        pkg_dir = os.path.dirname(ext_path)
        os.makedirs(pkg_dir, exist_ok=True)
        module = glob.glob(os.path.join(build_dir, "_C*.so"))
        if not module:
            raise RuntimeError(f"CMake build in {build_dir} produced no _C module")
        shutil.copyfile(module[0], ext_path)
        lib = os.path.join(build_dir, "libtorchao_cpp_ops.so")
        targets = [pkg_dir]
        if self.inplace or getattr(self, "editable_mode", False):
            targets.append(os.path.join(ROOT, "torchao_cpp"))  # editable installs import from the source tree
        runner = os.path.join(build_dir, "torchao_cpp_run")
        for d in targets:
            os.makedirs(os.path.join(d, "lib"), exist_ok=True)
            os.makedirs(os.path.join(d, "bin"), exist_ok=True)
            shutil.copyfile(lib, os.path.join(d, "lib", "libtorchao_cpp_ops.so"))
            shutil.copy2(runner, os.path.join(d, "bin", "torchao_cpp_run"))


setup(
    ext_modules=[CMakeExtension("torchao_cpp._C")],
    cmdclass={"build_ext": CMakeBuild},
    packages=["torchao_cpp", "torchao_cpp.quantization", "torchao_cpp.dtypes", "torchao_cpp.float8", "torchao_cpp.models"],
    package_data={"torchao_cpp": ["lib/*.so", "bin/torchao_cpp_run"]},
)
