"""The binding itself: the cffi declarations are the C header's (generated from it, so a
function added to the header reaches Python with no edit), the bundled library is the
workspace's version, and the package ships its type information."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import cffi
import pytest

import cachekit_shm
from cachekit_shm._native import ffi, lib

REPO = Path(__file__).resolve().parents[2]
HEADER = REPO / "include" / "cachekit.h"

# The build script (python/_cffi_build.py, not installed), loaded by path: putting python/ on
# sys.path would make processes spawned by other tests import the source tree's cachekit_shm,
# which has no compiled module.
_spec = importlib.util.spec_from_file_location("_cffi_build", REPO / "python" / "_cffi_build.py")
assert _spec is not None and _spec.loader is not None
_cffi_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cffi_build)

# Where cbindgen closes the C declarations; a declaration added to ffi/src lands before it.
END_OF_DECLARATIONS = '#ifdef __cplusplus\n}  // extern "C"'

ADDED = """
/**
 * Added by the test: a constant, a struct and a function the header does not have.
 */
#define CACHEKIT_ADDED_BY_THE_TEST 42

typedef struct cachekit_added_info {
  uint64_t first;
  uint32_t second;
} cachekit_added_info;

cachekit_result cachekit_added_by_the_test(const struct cachekit_client *client,
                                           struct cachekit_added_info *out);
"""


def header() -> str:
    if not HEADER.is_file():
        pytest.fail(f"{HEADER} is missing: run the tests from a cachekit checkout (scripts/test-python)")
    return HEADER.read_text(encoding="utf-8")


def functions_in(c_text: str) -> set:
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", c_text, flags=re.DOTALL)  # "a cachekit_lease (..." in prose
    return set(re.findall(r"\b(cachekit_[a-z0-9_]+)\s*\(", code))


def declared_names(cdef: str) -> set:
    """The names a cdef declares (functions and constants), as an ABI-mode library lists them."""
    abi = cffi.FFI()
    abi.cdef(cdef)
    return set(dir(abi.dlopen(None)))  # dir() lists declarations, whether the symbols exist or not


def test_the_module_has_every_function_and_constant_of_the_header():
    text = header()
    in_module = {name for name in dir(lib) if name.startswith("cachekit_") and callable(getattr(lib, name))}
    assert in_module == functions_in(text)
    defines = dict(re.findall(r"^#define (CACHEKIT_[A-Z_]+) (\d+)$", text, re.MULTILINE))
    enums = dict(re.findall(r"^\s*(CACHEKIT_[A-Z_]+) = (\d+),$", text, re.MULTILINE))
    assert "CACHEKIT_OPEN_LAZY" in defines and "CACHEKIT_TOO_LARGE" in enums
    for name, value in {**defines, **enums}.items():
        assert getattr(lib, name) == int(value), name


def test_a_declaration_added_to_the_header_reaches_python():
    text = header()
    assert text.count(END_OF_DECLARATIONS) == 1, "cbindgen's closing of extern \"C\" moved; update this test"
    before = _cffi_build.cdef_from_header(text)
    after = _cffi_build.cdef_from_header(text.replace(END_OF_DECLARATIONS, ADDED + END_OF_DECLARATIONS))
    # Exactly the added declarations appear (comments and all else as before), in place.
    added = _cffi_build.cdef_from_header(ADDED)
    assert "cachekit_added_by_the_test" in added and "Added by the test" not in added
    assert added in after and after.replace(added, "", 1) == before
    # And cffi reads them: the function, the constant and the struct are declared.
    names = declared_names(after)
    assert names - declared_names(before) == {"cachekit_added_by_the_test", "CACHEKIT_ADDED_BY_THE_TEST"}
    assert functions_in(text) | {"cachekit_added_by_the_test"} == {n for n in names if n.startswith("cachekit_")}
    abi = cffi.FFI()
    abi.cdef(after)
    assert abi.dlopen(None).CACHEKIT_ADDED_BY_THE_TEST == 42
    assert abi.sizeof("cachekit_added_info") == 16


def test_preprocessor_lines_cffi_cannot_read_stop_the_build():
    for line in ("#pragma once", "#define CACHEKIT_NAME \"x\"", "#include <stdio.h>", "#if __GNUC__ > 3 ? 1 : 0"):
        with pytest.raises(ValueError, match="_cffi_build.py"):
            _cffi_build.cdef_from_header(line + "\n#endif\n" if line.startswith("#if") else line + "\n")


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
    from cachekit_shm import _hit

    assert Path(_hit.__file__).suffix == ".so"  # the C hit path of Client.get is built too
    assert (pkg / "libcachekit.so.0").exists()
    assert (pkg / "py.typed").exists()


def test_struct_sizes_match_the_header():
    assert ffi.sizeof("cachekit_options") == 128
    assert ffi.sizeof("cachekit_value_info") == 40
    assert ffi.sizeof("cachekit_set_options") == 48
