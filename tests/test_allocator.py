"""The entry points' allocator setting: a freed large block stays in the heap for the next step to reuse."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

KEPT = '''
import os, sys
import numpy as np
if sys.argv[1] == "keep":
    from hpsearch.allocator import keep_freed_memory
    assert keep_freed_memory()

def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

before = resident_mib()
block = np.ones(16 * 2**20, dtype=np.float32)  # 64 MiB, as an activation of a large batch would be
del block
print(resident_mib() - before)
'''


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_freed_large_block_stays_in_the_heap_for_reuse():
    def kept_mib(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", KEPT, mode], capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    assert kept_mib("default") < 16  # glibc unmapped it: the next step maps and zeroes it again
    assert kept_mib("keep") > 48  # kept: the next step reuses these pages
