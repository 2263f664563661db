"""Build of cachekit-shm: libcachekit (Rust, built with cargo) plus a cffi API-mode extension.

`pip install ./python` (from the repository root) runs, in `build_ext`:

1. ``cargo build --release -p cachekit-ffi`` in the repository this file lives in (or takes a
   ready library from ``$CACHEKIT_LIB``), and copies ``libcachekit.so`` into the package as
   ``libcachekit.so.0`` (its SONAME; debug info stripped);
2. compiles ``cachekit_shm._cachekit`` against ``include/cachekit.h``, linked with that copy
   through ``$ORIGIN``: the wheel carries its own library and needs nothing installed.

Environment:
  CACHEKIT_LIB            path of a built libcachekit.so to bundle (cargo is not run)
  CACHEKIT_CARGO_PROFILE  cargo profile to build (default: release; scripts/test-python: ci)
  CACHEKIT_REPO           the cachekit repository (default: the parent of this directory)
  CARGO_TARGET_DIR        honoured as cargo does
Network: crates.io (cargo) and PyPI (build requirements) only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _cffi_build  # noqa: E402  (next to this file)

LIB_NAME = "libcachekit.so.0"  # the SONAME the extension records
GENERATED_C = HERE / "build" / "cffi" / "_cachekit.c"


def repo_root() -> Path:
    root = Path(os.environ.get("CACHEKIT_REPO", HERE.parent)).resolve()
    if not (root / "ffi" / "Cargo.toml").is_file() or not (root / "include" / "cachekit.h").is_file():
        sys.exit(
            f"cachekit-shm: {root} is not the cachekit repository (no ffi/Cargo.toml); "
            "build from a checkout (pip install ./python) or set CACHEKIT_REPO"
        )
    return root


def build_libcachekit(root: Path) -> Path:
    """Runs cargo (unless $CACHEKIT_LIB names a built library) and returns the .so's path."""
    given = os.environ.get("CACHEKIT_LIB")
    if given:
        lib = Path(given).resolve()
        if not lib.is_file():
            sys.exit(f"cachekit-shm: CACHEKIT_LIB={given} does not exist")
        return lib
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(cargo).exists():
        sys.exit("cachekit-shm: cargo is needed to build libcachekit (https://rustup.rs)")
    profile = os.environ.get("CACHEKIT_CARGO_PROFILE", "release")
    cmd = [cargo, "build", "-p", "cachekit-ffi"]
    cmd += ["--release"] if profile == "release" else ["--profile", profile]
    print("cachekit-shm: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    if not target.is_absolute():
        target = root / target
    lib = target / ("debug" if profile == "dev" else profile) / "libcachekit.so"
    if not lib.is_file():
        sys.exit(f"cachekit-shm: cargo built no {lib}")
    return lib


class BuildExt(build_ext):
    def run(self) -> None:
        root = repo_root()
        lib = build_libcachekit(root)
        # The linker gets its own directory holding only libcachekit.so (a target dir also
        # holds libcachekit.a), then the extension finds the bundled copy through $ORIGIN.
        link_dir = Path(self.build_temp).resolve() / "cachekit-lib"
        link_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lib, link_dir / "libcachekit.so")
        strip = shutil.which("strip")
        if strip:
            subprocess.run([strip, "--strip-debug", str(link_dir / "libcachekit.so")], check=True)
        ffi = _cffi_build.api_builder(root / "include", link_dir)
        GENERATED_C.parent.mkdir(parents=True, exist_ok=True)
        ffi.emit_c_code(str(GENERATED_C))
        for ext in self.extensions:
            ext.include_dirs = [str(root / "include")]
            ext.library_dirs = [str(link_dir)]
        super().run()
        # Ship the library next to the extension (and in the source tree for --inplace).
        ext_path = Path(self.get_ext_fullpath(self.extensions[0].name))
        for dest_dir in {ext_path.parent.resolve()}:
            dest_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(link_dir / "libcachekit.so", dest_dir / LIB_NAME)


ext = Extension(
    "cachekit_shm._cachekit",
    sources=[os.path.relpath(GENERATED_C, HERE)],
    libraries=["cachekit"],
    extra_compile_args=["-std=c11", "-Werror=incompatible-pointer-types"],
    extra_link_args=["-Wl,-rpath,$ORIGIN", "-Wl,--disable-new-dtags"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
