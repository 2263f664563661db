# The C hit path (cachekit_shm/_hit.c, built by setup.py).
from typing import Tuple, Union

HIT_INT: int
HIT_LOCAL: int
HIT_PICKLE: int
HIT_BUF: int

def hit(addr: int, key: object, flags: int) -> Union[bytes, int, None, Tuple[int]]: ...
