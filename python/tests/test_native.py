"""The binding itself: the cffi declarations cover the whole C header, the bundled library is
the workspace's version, and the package ships its type information."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cachekit_shm
from cachekit_shm._native import ffi, lib

REPO = Path(__file__).resolve().parents[2]
HEADER = REPO / "include" / "cachekit.h"


@pytest.mark.skipif(not HEADER.exists(), reason="needs the repository's include/cachekit.h")
def test_every_function_of_the_header_is_declared():
    in_header = set(re.findall(r"\b(cachekit_[a-z_]+)\(", HEADER.read_text()))
    declared = {name for name in dir(lib) if name.startswith("cachekit_") and callable(getattr(lib, name))}
    assert in_header == declared


def test_bundled_library_version():
    cargo = (REPO / "Cargo.toml").read_text() if (REPO / "Cargo.toml").exists() else None
    v = cachekit_shm.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", v)
    assert v.split(".")[0] == str(lib.CACHEKIT_VERSION_MAJOR)
    if cargo:
        assert f'version = "{v}"' in cargo


def test_shipped_as_api_mode_with_its_own_library():
    from cachekit_shm import _cachekit

    pkg = Path(cachekit_shm.__file__).parent
    assert Path(_cachekit.__file__).suffix == ".so"  # compiled (API mode), not dlopen
    assert (pkg / "libcachekit.so.0").exists()
    assert (pkg / "py.typed").exists()


def test_struct_sizes_match_the_header():
    assert ffi.sizeof("cachekit_options") == 72
    assert ffi.sizeof("cachekit_value_info") == 32
