"""Build of cachekit-shm: libcachekit (Rust, built with cargo) plus a cffi API-mode extension.

`pip install ./python` (from the repository root) runs, in `build_ext`:

1. ``cargo build --release -p cachekit-ffi`` in the repository this file lives in (or takes a
   ready library from ``$CACHEKIT_LIB``), and copies ``libcachekit.so`` into the package as
   ``libcachekit.so.0`` (its SONAME; debug info stripped);
2. compiles ``cachekit_shm._cachekit`` against ``include/cachekit.h``, linked with that copy
   through ``$ORIGIN``: the wheel carries its own library and needs nothing installed; and
   ``cachekit_shm._hit`` (``cachekit_shm/_hit.c``, the hit path of ``Client.get``), the same way.

The sdist (``python -m build``, or ``python -m build --sdist``) carries what step 1 needs, so
it builds on its own: the Rust crates of libcachekit (``ffi`` and its path dependencies, plus
the test kit their dev-dependencies name, which cargo must find to read the workspace), the
workspace's Cargo.toml (its member list cut to those crates) and Cargo.lock, and
include/cachekit.h, all under ``rust/``. A build from an unpacked sdist uses ``rust/``; a build
from a checkout uses the checkout. Building needs cargo and a C compiler; installing a built
wheel needs neither (``scripts/wheel`` makes a manylinux one).

Environment:
  CACHEKIT_LIB            path of a built libcachekit.so to bundle (cargo is not run)
  CACHEKIT_CARGO_PROFILE  cargo profile to build (default: release; scripts/test-python: ci)
  CACHEKIT_REPO           the cachekit sources (default: rust/ of an sdist, else the parent of
                          this directory)
  CARGO_TARGET_DIR        honoured as cargo does
Network: crates.io (cargo) and PyPI (build requirements) only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _cffi_build  # noqa: E402  (next to this file)

LIB_NAME = "libcachekit.so.0"  # the SONAME the extension records
GENERATED_C = HERE / "build" / "cffi" / "_cachekit.c"


# Where an sdist carries the Rust sources, and which crates: cachekit-ffi's path dependencies
# (checked when the sdist is made) and the test kit that their dev-dependencies name.
SDIST_RUST = HERE / "rust"
SDIST_CRATES = ("ffi", "libclient", "shm", "proto", "envelope", "redis", "testkit")


def repo_root() -> Path:
    default = SDIST_RUST if (SDIST_RUST / "ffi" / "Cargo.toml").is_file() else HERE.parent
    root = Path(os.environ.get("CACHEKIT_REPO", default)).resolve()
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


class SDist(sdist):
    """An sdist that builds: the Python package plus, under rust/, the sources of libcachekit."""

    def make_release_tree(self, base_dir: str, files: list) -> None:
        super().make_release_tree(base_dir, files)
        root = repo_root()
        dest = Path(base_dir) / "rust"
        skip = shutil.ignore_patterns("target", "fuzz", "*.pyc", "__pycache__", "proptest-regressions")
        for crate in SDIST_CRATES:
            manifest = (root / crate / "Cargo.toml").read_text()
            for dep in re.findall(r'path\s*=\s*"\.\./([^"/]+)"', manifest):
                if dep not in SDIST_CRATES:
                    sys.exit(
                        f"cachekit-shm: {crate}/Cargo.toml depends on ../{dep}, which the sdist "
                        "does not carry; add it to SDIST_CRATES in python/setup.py"
                    )
            shutil.copytree(root / crate, dest / crate, ignore=skip)
        (dest / "include").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "include" / "cachekit.h", dest / "include" / "cachekit.h")
        shutil.copyfile(root / "Cargo.lock", dest / "Cargo.lock")
        workspace = (root / "Cargo.toml").read_text()
        members = "members = [" + ", ".join(f'"{c}"' for c in SDIST_CRATES) + "]"
        workspace, n = re.subn(r"(?m)^members\s*=\s*\[[^\]]*\]", members, workspace)
        if n != 1:
            sys.exit("cachekit-shm: the workspace Cargo.toml has no one-line `members = [...]` to cut")
        (dest / "Cargo.toml").write_text(workspace)


ext = Extension(
    "cachekit_shm._cachekit",
    sources=[os.path.relpath(GENERATED_C, HERE)],
    libraries=["cachekit"],
    extra_compile_args=["-std=c11", "-Werror=incompatible-pointer-types"],
    extra_link_args=["-Wl,-rpath,$ORIGIN", "-Wl,--disable-new-dtags"],
)

# The hit path of Client.get_raw / get in one C call (cachekit_shm/_hit.c): the same C ABI and
# library as the cffi module, without cffi's per-argument conversion around the call.
hit_ext = Extension(
    "cachekit_shm._hit",
    sources=["cachekit_shm/_hit.c"],
    libraries=["cachekit"],
    extra_compile_args=["-std=c11", "-Wall", "-Werror"],
    extra_link_args=["-Wl,-rpath,$ORIGIN", "-Wl,--disable-new-dtags"],
)

setup(ext_modules=[ext, hit_ext], cmdclass={"build_ext": BuildExt, "sdist": SDist})
