#!/usr/bin/env python3
"""Finds the functions of vmrun's binary that a running VMM touched, for
the linker's symbol ordering file (`vmm/hot-text.order`).

  hot-text.py pages PID BINARY
      print the ELF addresses of the pages of BINARY's code that PID has
      mapped
  hot-text.py order [--shuffle] BINARY=PAGEFILE[,PAGEFILE...] ...
      print the functions found executed (see below), in the address order
      of the first BINARY, or with --shuffle in an order that puts other
      neighbours side by side

Read with the kernel's fault-around at one page
(`/sys/kernel/debug/fault_around_bytes` = 4096), a mapped page of the code
is a page the process executed in; every function on it may have run. A
function counts as executed when, in every measured binary that has it, one
of its pages was mapped (in any of that binary's page files): measurements
of binaries with their functions laid out differently rule out the cold
functions that only shared a page with an executed one.
`tests/measure-hot-text.sh` drives this in the test host.
"""

import hashlib
import os
import struct
import subprocess
import sys

PAGE = 4096
PRESENT = 1 << 63


def load_segments(binary):
    """(p_offset, p_vaddr, p_filesz) of every PT_LOAD segment."""
    with open(binary, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            sys.exit(f"{binary}: not a 64-bit ELF file")
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        segments = []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack(
                "<IIQQQQ", f.read(40)
            )
            if p_type == 1:
                segments.append((p_offset, p_vaddr, p_filesz))
        return segments


def file_offset_to_vaddr(segments, offset):
    for p_offset, p_vaddr, p_filesz in segments:
        if p_offset <= offset < p_offset + p_filesz:
            return p_vaddr + (offset - p_offset)
    return None


def pages(pid, binary):
    """ELF addresses of the executable pages of `binary` mapped in `pid`."""
    target = os.stat(binary)
    segments = load_segments(binary)
    found = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if len(fields) < 6 or "x" not in fields[1]:
                continue
            try:
                st = os.stat(fields[5])
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != (target.st_dev, target.st_ino):
                continue
            start, end = (int(v, 16) for v in fields[0].split("-"))
            offset = int(fields[2], 16)
            count = (end - start) // PAGE
            pagemap.seek(start // PAGE * 8)
            entries = struct.unpack(f"<{count}Q", pagemap.read(count * 8))
            for i, entry in enumerate(entries):
                if entry & PRESENT:
                    vaddr = file_offset_to_vaddr(segments, offset + i * PAGE)
                    if vaddr is not None:
                        found.append(vaddr)
    if not found:
        sys.exit(f"process {pid} has no page of {binary}'s code mapped")
    for vaddr in found:
        print(f"{vaddr:#x}")


def functions(binary):
    """{name: (address, size)} of the binary's function symbols (the first
    of equal local names)."""
    nm = subprocess.run(
        ["nm", "--defined-only", "--print-size", binary],
        check=True, capture_output=True, text=True,
    ).stdout
    found = {}
    for line in nm.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW":
            found.setdefault(fields[3], (int(fields[0], 16), int(fields[1], 16)))
    return found


def executed(binary, page_files):
    """(the binary's functions as `functions` gives them, names of the
    functions on a mapped page)."""
    touched = set()
    for name in page_files:
        with open(name) as f:
            touched.update(int(line, 16) // PAGE for line in f if line.strip())
    every = functions(binary)
    hot = set()
    for name, (addr, size) in every.items():
        first, last = addr // PAGE, (addr + max(size, 1) - 1) // PAGE
        if any(p in touched for p in range(first, last + 1)):
            hot.add(name)
    return every, hot


def order(measurements, shuffle):
    """Prints the functions executed in every measurement that has them."""
    chosen = None
    layout = None
    for measurement in measurements:
        binary, _, files = measurement.partition("=")
        if not files:
            sys.exit(f"{measurement}: expected BINARY=PAGEFILE[,PAGEFILE...]")
        every, hot = executed(binary, files.split(","))
        if chosen is None:
            chosen, layout = hot, every
        else:
            chosen = {n for n in chosen if n not in every or n in hot} | (hot - set(layout))
    if shuffle:
        key = lambda n: hashlib.sha256(n.encode()).digest()
    else:
        key = lambda n: layout.get(n, (1 << 64, 0))[0]
    for name in sorted(chosen, key=key):
        print(name)


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "pages":
        pages(int(args[1]), args[2])
    elif len(args) >= 2 and args[0] == "order":
        shuffle = args[1] == "--shuffle"
        measurements = args[2:] if shuffle else args[1:]
        if not measurements:
            sys.exit(__doc__)
        order(measurements, shuffle)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
