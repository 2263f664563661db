"""The cffi declarations, read from include/cachekit.h, and the builders of both cffi modes.

Shipped: **API mode** (``cachekit_shm._cachekit``, a C extension compiled against
include/cachekit.h and linked with the bundled libcachekit.so.0). ``bench/ffi_modes.py`` builds
the ABI-mode variant (``ffi.dlopen`` of the same library) next to it and times both;
python/README.md has the figures that decided it.

The declarations are not written here: ``cdef()`` takes them from the header itself (generated
by cbindgen from ffi/src), so a function, type or constant added to the C API reaches Python
with no edit in this directory. What it changes before cffi sees the header is only what cffi
cannot parse: the preprocessor lines. It evaluates the ``#if``/``#ifdef`` branches as the C11
compiler that builds the extension does (``-std=c11``, not C++: cbindgen's ``enum X : uint32_t``
and ``extern "C"`` branches drop out), drops ``#include`` of the standard headers cffi already
knows and the include guard, and keeps ``#define NAME <integer>`` (cffi checks each value against
the header when it compiles the API-mode module). Comments go first, so nothing in one is taken
for a directive. Anything else in the header stops the build with a message saying what to
extend here.

This file is used by setup.py at build time, by the benchmark and by tests/test_native.py; it
is not installed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

import cffi

# The repository's header: setup.py passes the one of the repository it builds from.
HEADER = Path(__file__).resolve().parent.parent / "include" / "cachekit.h"

# Standard headers whose types (bool, size_t, uint8_t...) cffi knows without a declaration.
KNOWN_INCLUDES = {"<stdbool.h>", "<stddef.h>", "<stdint.h>"}

# The predefined macros of the compiler the API-mode module is built with (gcc/clang -std=c11).
# Every other name that #if tests and the header did not #define is 0, as in C.
PREDEFINED = {"__STDC__": 1, "__STDC_VERSION__": 201112}

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_DIRECTIVE = re.compile(r"^\s*#\s*(\w+)\s*(.*?)\s*$")
_INTEGER = re.compile(r"^(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*$")
_DEFINED = re.compile(r"\bdefined\s*(?:\(\s*(\w+)\s*\)|(\w+))")
_IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b")
# What a condition may hold once names are replaced by numbers: numbers, comparisons, and, or,
# not, parentheses.
_ARITHMETIC = re.compile(r"^(?:\s|\d|[()<>=!]|\band\b|\bor\b|\bnot\b)*$")


def _condition(expr: str, defined: Dict[str, Optional[int]], where: str) -> bool:
    """The value of an ``#if`` condition (the subset cbindgen writes: defined(), names,
    integer comparisons, ||, &&, !)."""
    e = _DEFINED.sub(lambda m: "1" if (m.group(1) or m.group(2)) in defined else "0", expr)
    e = re.sub(r"\b(\d+)[uUlL]+\b", r"\1", e)

    def value(m: "re.Match[str]") -> str:
        name = m.group(0)
        v = defined.get(name, PREDEFINED.get(name, 0))
        return str(v if v is not None else 0)

    e = _IDENTIFIER.sub(value, e)
    e = e.replace("||", " or ").replace("&&", " and ")
    e = re.sub(r"!(?!=)", " not ", e)
    if not _ARITHMETIC.match(e):
        raise ValueError(
            f"{where}: _cffi_build.py cannot evaluate `#if {expr}`; "
            "extend _condition() in python/_cffi_build.py"
        )
    return bool(eval(e, {"__builtins__": {}}, {}))  # only numbers and operators, checked above


def cdef_from_header(text: str, name: str = "cachekit.h") -> str:
    """The declarations of a header, as ``ffi.cdef`` takes them (see the module docstring)."""
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = text.replace("\\\n", " ")
    defined: Dict[str, Optional[int]] = {}
    # One entry per open #if: (this branch is emitted, some branch of this #if was taken).
    stack: List[List[bool]] = []
    out: List[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        active = all(emit for emit, _ in stack)
        m = _DIRECTIVE.match(line)
        if not m:
            if active and line.strip():
                out.append(line.rstrip())
            continue
        directive, rest = m.groups()
        if directive in ("if", "ifdef", "ifndef"):
            if directive == "if":
                taken = active and _condition(rest, defined, where)
            else:
                taken = active and ((rest in defined) == (directive == "ifdef"))
            stack.append([taken, taken or not active])
        elif directive in ("elif", "else", "endif"):
            if not stack:
                raise ValueError(f"{where}: #{directive} without #if")
            if directive == "endif":
                stack.pop()
                continue
            outer = all(emit for emit, _ in stack[:-1])
            done = stack[-1][1]
            if directive == "elif":
                taken = outer and not done and _condition(rest, defined, where)
            else:
                taken = outer and not done
            stack[-1] = [taken, done or taken]
        elif not active:
            continue
        elif directive == "include":
            if rest not in KNOWN_INCLUDES:
                raise ValueError(
                    f"{where}: #include {rest} is not one of {sorted(KNOWN_INCLUDES)}, whose "
                    "types cffi knows; declare what it provides in python/_cffi_build.py"
                )
        elif directive == "define":
            macro, _, value = rest.partition(" ")
            value = value.strip()
            if not value:
                defined[macro] = None  # the include guard: nothing to declare
            elif _INTEGER.match(value):
                defined[macro] = int(re.sub(r"[uUlL]+$", "", value), 0)
                out.append(f"#define {macro} {value}")
            else:
                raise ValueError(
                    f"{where}: #define {macro} {value} is not an integer constant, which is all "
                    "cffi declares; extend cdef_from_header() in python/_cffi_build.py"
                )
        else:
            raise ValueError(
                f"{where}: #{directive} is not handled by python/_cffi_build.py; extend "
                "cdef_from_header() there"
            )
    if stack:
        raise ValueError(f"{name}: {len(stack)} #if without #endif")
    return "\n".join(out) + "\n"


def cdef(header: Path = HEADER) -> str:
    """The cffi declarations of ``header`` (by default the repository's include/cachekit.h)."""
    return cdef_from_header(header.read_text(encoding="utf-8"), str(header))


# Compiled into the API-mode module, which includes the header itself: cffi checks every
# declaration of cdef() against it (a drifted signature or constant is a compile error), and
# these pin the struct sizes the header documents.
CHECKS = r"""
#include "cachekit.h"
_Static_assert(sizeof(cachekit_options) == 128, "cachekit_options is 128 bytes (cachekit.h)");
_Static_assert(sizeof(cachekit_value_info) == 40, "cachekit_value_info is 40 bytes");
_Static_assert(sizeof(cachekit_set_options) == 48, "cachekit_set_options is 48 bytes");
"""

MODULE = "cachekit_shm._cachekit"


def api_builder(include_dir: Path, lib_dir: Path, module: str = MODULE) -> cffi.FFI:
    """The API-mode builder: a C extension linked with libcachekit (found through $ORIGIN)."""
    ffi = cffi.FFI()
    ffi.cdef(cdef(include_dir / "cachekit.h"))
    ffi.set_source(
        module,
        CHECKS,
        include_dirs=[str(include_dir)],
        library_dirs=[str(lib_dir)],
        libraries=["cachekit"],
        # DT_RPATH (not RUNPATH): the bundled libcachekit.so.0 next to the extension wins
        # over LD_LIBRARY_PATH, so the library always matches these declarations.
        extra_link_args=["-Wl,-rpath,$ORIGIN", "-Wl,--disable-new-dtags"],
        extra_compile_args=["-std=c11", "-Werror=incompatible-pointer-types"],
    )
    return ffi


def abi_builder(module: str, header: Path = HEADER) -> cffi.FFI:
    """The out-of-line ABI-mode builder (a pure-Python module; ``ffi.dlopen`` at run time)."""
    ffi = cffi.FFI()
    ffi.cdef(cdef(header))
    ffi.set_source(module, None)
    return ffi
