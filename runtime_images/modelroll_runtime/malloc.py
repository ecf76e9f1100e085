"""glibc malloc settings that let a burst of large bodies go back to the system afterwards.

glibc raises its mmap threshold each time it frees a large mmapped block (up to 32 MiB), so
after the first large body, later ones come from the heap, and the heap keeps what it once
held. A fixed threshold keeps every block of 1 MiB or more mmapped, and so unmapped when it
is freed; malloc_trim hands back the free pages left inside the heaps. Both are no-ops where
the C library is not glibc (musl has neither call).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 1024 * 1024

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None)


def limit_retention() -> None:
    """Give blocks of MMAP_THRESHOLD_BYTES or more their own mapping (see above)."""
    mallopt = getattr(_libc, "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def trim() -> None:
    """Return the heaps' free pages to the system. ctypes releases the GIL for the call, so
    run it on a thread: it takes a few ms after a large burst."""
    malloc_trim = getattr(_libc, "malloc_trim", None)
    if malloc_trim is not None:
        malloc_trim(0)
