# The compiled cffi module (API mode, built by setup.py from _cffi_build.py).
from typing import Any

ffi: Any
lib: Any
