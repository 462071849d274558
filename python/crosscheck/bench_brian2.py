#!/usr/bin/env python3
"""Side-by-side speed: geodyn against Brian2 cpp_standalone (what
``scripts/bench-vs-brian2.sh`` runs).

Usage::

    python python/crosscheck/bench_brian2.py --geodyn target/release/geodyn \\
        [--digits 5] [--dt 0.1 0.01] [--rounds 3] [--json]

The same network (experiment 3, ``configs/weights.toml``: 784 inputs -> 200
recurrent all-to-all, STDP on the 39,800 recurrent edges, 600 ms per digit),
the same digits (rows 0..digits-1 of ``--limit digits``) and the same input
trains: each digit is exported by ``geodyn simulate weights --limit D --image I
--export-run`` and rebuilt in Brian2 (``brian2_crosscheck.run_brian2``, the
cross-check's model and schedule) as a cpp_standalone project, compiled once
per dt (the project directory is reused across digits, so make recompiles only
what changed) and copied per digit. Then ``--rounds`` rounds, each running,
alternated digit by digit (the order reversed every other round):

- geodyn loop: ``geodyn bench engine --digits D`` (one thread's CPU time for
  the simulation loop of each digit, recording totals only; one block per round);
- geodyn process: ``geodyn simulate weights --limit D --image I``, the whole
  process's CPU time (user + system: reading the data, building the network,
  the stimulus, the run, the report);
- Brian2 process: the compiled binary (``./main``) of that digit and dt, its
  whole process's CPU time (reading its arrays, the run, writing results; the
  one-off Python code generation and compile excluded); Brian2 loop: the CPU
  time around the network run, measured by code inserted into its ``main.cpp``
  (``std::clock``; the binary is single-threaded).

Brian2 records more than geodyn's loop here (spike monitors, per-synapse arrival
and loss counters); that is its whole model, as the cross-check runs it.
Printed: the medians (over rounds, and over digits for the per-digit runs) in
CPU ms per digit and their ratios to geodyn; with ``--json`` the last line is::

    {"geodyn_loop_ms", "geodyn_process_ms", "brian2_cpp": {"<dt>": {"loop_ms", "process_ms"}}}
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import brian2_crosscheck as bc  # noqa: E402


def cpu_run(cmd, cwd=None):
    """Runs cmd; returns (stdout, CPU seconds of the child: user + system)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if code != 0:
            raise SystemExit(f"bench_brian2.py: {' '.join(map(str, cmd))} (in {cwd or os.getcwd()}) "
                             f"failed with exit {code}:\n{err.read().decode()[-2000:]}")
    return text, ru.ru_utime + ru.ru_stime


def geodyn_loop_ms(geodyn, digits):
    text, _ = cpu_run([geodyn, "bench", "engine", "--digits", str(digits)])
    m = re.search(r"ms per digit\s+([0-9.]+) CPU", text)
    if not m:
        raise SystemExit(f"bench_brian2.py: no 'ms per digit ... CPU' in geodyn bench engine's output:\n{text}")
    return float(m.group(1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--geodyn", required=True)
    p.add_argument("--digits", type=int, default=5)
    p.add_argument("--dt", type=float, nargs="+", default=[0.1, 0.01])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.digits < 1 or args.rounds < 1:
        raise SystemExit("bench_brian2.py: --digits and --rounds must be >= 1")
    geodyn = os.path.abspath(args.geodyn)
    images = list(range(args.digits))
    limit = ["--limit", str(args.digits)]
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="geodyn-bench-") as work:
        projects = {}
        for i in images:
            d = os.path.join(work, f"img{i}")
            subprocess.run([geodyn, "simulate", "weights", *limit, "--image", str(i), "--export-run", d],
                           check=True, stdout=subprocess.DEVNULL)
            meta, run, a = bc.load_export(d)
            for dt in args.dt:
                build = os.path.join(work, f"cpp_dt{dt:g}")
                b = bc.run_brian2(meta, a, dt, False, "cpp_standalone", build)
                c = bc.compare(meta, run, a, b, dt, False, 0.05)["comparison"]
                copy = os.path.join(work, f"cpp_dt{dt:g}_img{i}")
                shutil.copytree(build, copy, symlinks=True)
                projects[(dt, i)] = copy
                print(f"built Brian2 dt {dt:g} ms, image {i}: make {b['standalone']['compile_s']:.1f} s, "
                      f"arrivals {100 * c['arrivals_rel_diff']:+.2f} % vs geodyn", file=sys.stderr, flush=True)
        g_loop, g_proc = [], []
        b_loop = {dt: [] for dt in args.dt}
        b_proc = {dt: [] for dt in args.dt}
        for r in range(args.rounds):
            order = images if r % 2 == 0 else images[::-1]
            g_loop.append(geodyn_loop_ms(geodyn, args.digits))
            for i in order:
                dts = args.dt if r % 2 == 0 else args.dt[::-1]
                _, cpu = cpu_run([geodyn, "simulate", "weights", *limit, "--image", str(i)])
                g_proc.append(1e3 * cpu)
                for dt in dts:
                    proj = projects[(dt, i)]
                    res = os.path.join(proj, "results", "")
                    _, cpu = cpu_run(["./main", "--results_dir", res], cwd=proj)
                    with open(os.path.join(res, bc.LOOP_CPU_FILE)) as f:
                        b_loop[dt].append(1e3 * float(f.read()))
                    b_proc[dt].append(1e3 * cpu)
            print(f"round {r + 1}/{args.rounds} done ({time.time() - t_start:.0f} s)", file=sys.stderr, flush=True)
    med = statistics.median
    out = {"geodyn_loop_ms": med(g_loop), "geodyn_process_ms": med(g_proc),
           "brian2_cpp": {f"{dt:g}": {"loop_ms": med(b_loop[dt]), "process_ms": med(b_proc[dt])}
                          for dt in args.dt}}
    print(f"geodyn vs Brian2 2.9 cpp_standalone: experiment-3 network (N = 200, 600 ms), "
          f"{args.digits} digits, {args.rounds} rounds; CPU ms per digit, medians")
    print()
    print("| | loop | whole process | loop / geodyn | process / geodyn |")
    print("|---|---:|---:|---:|---:|")
    gl, gp = out["geodyn_loop_ms"], out["geodyn_process_ms"]
    print(f"| geodyn (exact, event-driven) | {gl:.1f} | {gp:.1f} | 1 | 1 |")
    for dt, v in out["brian2_cpp"].items():
        print(f"| Brian2 cpp_standalone, dt {dt} ms | {v['loop_ms']:.1f} | {v['process_ms']:.1f} | "
              f"{v['loop_ms'] / gl:.2f} | {v['process_ms'] / gp:.2f} |")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
