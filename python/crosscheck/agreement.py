#!/usr/bin/env python3
"""The geodyn-Brian2 agreement table (what ``scripts/crosscheck-brian2.sh`` prints).

Usage::

    python python/crosscheck/agreement.py --geodyn target/release/geodyn \\
        [--n-recurrent 200] [--duration-ms 600] [--images 0 1 2 3 4] \\
        [--dt 0.1 0.01 0.001] [--target numpy|cython] [--json]

For each image it writes two variants of ``configs/weights.toml`` (experiment 3)
with ``n_recurrent`` and ``duration_ms`` replaced, runs ``geodyn simulate CONFIG
--image I --export-run DIR`` on each, and rebuilds every export in Brian2 at
every dt (``brian2_crosscheck.py``):

- *feedforward* control: the config with ``network.recurrent_weights.scale =
  0`` and ``stdp.enabled = false``, so that geodyn's run is itself the
  feedforward run and everything is compared (``--feedforward`` in Brian2);
- *full*: the config as shipped (recurrent weights, STDP on).

It prints one table per variant, rows the quantities, columns the dts, each
entry the median over the images; with ``--json`` the last line is one JSON
object::

    {"feedforward": {"<dt>": {"arrivals_rel_diff", "lost_rel_diff",
                              "activations_rel_diff", "spikes_matched"}},
     "full": {"<dt>": {... the same, plus "count_corr",
                       "first_activation_abs_dt_ms", "dw_corr"}}}

Relative differences are (Brian2 - geodyn) / geodyn, fractions; ``spikes_matched``
is the fraction of geodyn's recurrent activations with a Brian2 activation of the
same node within 0.05 ms; ``first_activation_abs_dt_ms`` the median over nodes of
|first activation time difference|; ``count_corr`` and ``dw_corr`` Pearson
correlations of per-node activation counts and of the plastic edges' weight
changes. A quantity that is undefined for a run (no plastic edges, no variance)
is null. Progress goes to stderr.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import brian2_crosscheck as bc  # noqa: E402

FF_KEYS = {"arrivals_rel_diff": "arrivals_rel_diff",
           "lost_rel_diff": "lost_arrivals_rel_diff",
           "activations_rel_diff": "activations_rel_diff",
           "spikes_matched": "spike_match_fraction"}
FULL_KEYS = dict(FF_KEYS, count_corr="count_correlation",
                 first_activation_abs_dt_ms="first_activation_abs_dt_ms_median",
                 dw_corr="dw_correlation")


def config_text(feedforward, n_recurrent, duration_ms, base=None):
    """configs/weights.toml with N, the duration (one snapshot at its end) and,
    for the feedforward control, recurrent weights 0 and STDP off."""
    if base is None:
        with open(os.path.join(ROOT, "configs", "weights.toml")) as f:
            base = f.read()
    d = f"{float(duration_ms)}"
    subs = [("n_recurrent = 200", f"n_recurrent = {int(n_recurrent)}"),
            ("duration_ms = 600.0", f"duration_ms = {d}"),
            ('kind = "weights"', 'kind = "activity"'),
            ("snapshot_times_ms = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]",
             f"snapshot_times_ms = [{d}]")]
    if feedforward:
        subs += [("scale_reference_n = 50.0", "scale_reference_n = 50.0\nscale = 0.0"),
                 ("[stdp]\nenabled = true", "[stdp]\nenabled = false")]
    for old, new in subs:
        if base.count(old) != 1:
            raise SystemExit(f"agreement.py: configs/weights.toml changed: {old!r} not found "
                             "exactly once; update config_text")
        base = base.replace(old, new)
    return base


def export(geodyn, work, name, text, image):
    cfg = os.path.join(work, name + ".toml")
    with open(cfg, "w") as f:
        f.write(text)
    out = os.path.join(work, f"{name}_img{image}")
    r = subprocess.run([geodyn, "simulate", cfg, "--image", str(image), "--export-run", out],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"agreement.py: {geodyn} simulate {cfg} --image {image} failed "
                         f"(exit {r.returncode}):\n{r.stderr}")
    return out


def one(d, dt, feedforward, target, standalone_dir=None):
    meta, run, a = bc.load_export(d)
    b = bc.run_brian2(meta, a, dt, feedforward, target, standalone_dir)
    return bc.compare(meta, run, a, b, dt, feedforward, 0.05)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarise(results, keys):
    """results: {dt: [comparison dicts]} -> {dt: {key: median}}"""
    return {f"{dt:g}": {k: median([r["comparison"][src] for r in rs]) for k, src in keys.items()}
            for dt, rs in results.items()}


def table(title, summary, keys):
    dts = list(summary)
    lines = [f"{title}", "| quantity (median over images) | " + " | ".join(f"dt {d} ms" for d in dts) + " |",
             "|---|" + "---:|" * len(dts)]
    for k in keys:
        cells = []
        for d in dts:
            v = summary[d][k]
            if v is None:
                cells.append("-")
            elif k.endswith("rel_diff"):
                cells.append(f"{100 * v:+.2f} %")
            elif k == "first_activation_abs_dt_ms":
                cells.append(f"{v:.2g} ms")
            else:
                cells.append(f"{v:.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--geodyn", default=os.path.join(ROOT, "target", "release", "geodyn"))
    p.add_argument("--n-recurrent", type=int, default=200)
    p.add_argument("--duration-ms", type=float, default=600.0)
    p.add_argument("--images", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--dt", type=float, nargs="+", default=[0.1, 0.01, 0.001])
    p.add_argument("--target", default="numpy", choices=["numpy", "cython", "cpp_standalone"],
                   help="Brian2 target; cpp_standalone compiles one C++ project per variant and dt, "
                   "reused across images (g++)")
    p.add_argument("--json", action="store_true", help="last line: the summary as one JSON object")
    args = p.parse_args(argv)
    if not os.path.exists(args.geodyn):
        raise SystemExit(f"agreement.py: no geodyn binary at {args.geodyn} (cargo build --release)")
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="geodyn-agreement-") as work:
        variants = {"feedforward": config_text(True, args.n_recurrent, args.duration_ms),
                    "full": config_text(False, args.n_recurrent, args.duration_ms)}
        dirs = {v: [export(args.geodyn, work, v, text, i) for i in args.images]
                for v, text in variants.items()}
        results = {v: {dt: [] for dt in args.dt} for v in variants}
        for v in variants:
            for dt in args.dt:
                for i, d in zip(args.images, dirs[v]):
                    t0 = time.time()
                    sdir = os.path.join(work, f"cpp_{v}_dt{dt:g}")
                    r = one(d, dt, v == "feedforward", args.target, sdir)
                    if v == "feedforward" and not r["compared"].startswith("everything"):
                        raise SystemExit("agreement.py: the feedforward export still has recurrent "
                                         "weights or STDP: " + r["compared"])
                    results[v][dt].append(r)
                    print(f"{v} image {i} dt {dt:g} ms: Brian2 {r['brian2_wall_s']:.1f} s "
                          f"(total {time.time() - t0:.1f} s)", file=sys.stderr, flush=True)
    summary = {"feedforward": summarise(results["feedforward"], FF_KEYS),
               "full": summarise(results["full"], FULL_KEYS)}
    print(f"geodyn vs Brian2 2.9 ({args.target} target): experiment-3 network, "
          f"N = {args.n_recurrent}, {args.duration_ms:g} ms, images {args.images}; "
          f"{time.time() - t_start:.0f} s")
    print()
    print(table("Feedforward control (recurrent weights 0, STDP off):", summary["feedforward"], FF_KEYS))
    print()
    print(table("Full network (recurrent weights, STDP on):", summary["full"], FULL_KEYS))
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
