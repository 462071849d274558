#!/usr/bin/env python3
"""Instruction counts beside the disassembly of hot functions.

    RAYON_NUM_THREADS=1 valgrind --tool=callgrind --dump-instr=yes
        --callgrind-out-file=cg.out target/release/geodyn bench engine --digits 1
    scripts/callgrind-asm.py cg.out target/release/geodyn "Ctx::phase" "Simulator>::gather" [--min 100000]

For every function of BIN whose demangled name contains one of the given
strings and that ran at least a million instructions, prints its total and
each instruction executed at least --min times (default 0: all), as
"count address instruction". Per-instruction counts show what no
per-line profile of inlined code does: the bounds checks, stack spills and
conversions of a hot loop, and how often each block runs (the loop's
header count against its body's gives the trips per visit).

Needs valgrind's callgrind output with --dump-instr=yes, nm and objdump.
Addresses are matched as the file's (a non-PIE binary, or one valgrind
loaded at its link address, as the release geodyn is).
"""
import collections
import re
import subprocess
import sys


def self_costs(path, binary):
    """Self instruction count per address of `binary` in a callgrind file."""
    cost = collections.Counter()
    names, ob, addr, skip = {}, None, 0, False
    for line in open(path):
        line = line.rstrip("\n")
        m = re.match(r"(c?ob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1) == "ob":
                ob = names.get(m.group(2))
            continue
        if line.startswith(("cfn=", "cfi=", "cfl=")):
            continue
        if line.startswith("calls="):
            skip = True  # the next cost line is the call's inclusive cost
            continue
        if not line or line[0] not in "0123456789+-*":
            continue
        parts = line.split()
        a = parts[0]
        if a.startswith("0x"):
            addr = int(a, 16)
        elif a[0] in "+-":
            addr += int(a)
        if skip:
            skip = False
            continue
        if ob and ob.endswith(binary.split("/")[-1]) and len(parts) >= 3:
            cost[addr] += int(parts[2])
    return cost


def main(argv):
    args = list(argv[1:])
    minimum = 0
    if "--min" in args:
        i = args.index("--min")
        minimum = int(args[i + 1])
        del args[i : i + 2]
    if len(args) < 3:
        sys.exit(__doc__)
    path, binary, wanted = args[0], args[1], args[2:]
    cost = self_costs(path, binary)
    nm = subprocess.run(["nm", "-C", "-S", binary], capture_output=True, text=True, check=True)
    for line in nm.stdout.splitlines():
        p = line.split(None, 3)
        if len(p) < 4 or not any(w in p[3] for w in wanted):
            continue
        start, size = int(p[0], 16), int(p[1], 16)
        total = sum(c for a, c in cost.items() if start <= a < start + size)
        if total < 1_000_000:
            continue
        print(f"==== {p[3]} {start:#x} total {total}")
        dis = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", "-C",
             f"--start-address={start}", f"--stop-address={start + size}", binary],
            capture_output=True, text=True, check=True)
        for dl in dis.stdout.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s*(.*)", dl)
            if m and cost.get(int(m.group(1), 16), 0) >= minimum:
                print(f"{cost.get(int(m.group(1), 16), 0):>12} {m.group(1)} {m.group(2)[:100]}")


if __name__ == "__main__":
    main(sys.argv)
