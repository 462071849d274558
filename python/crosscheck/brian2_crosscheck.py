#!/usr/bin/env python3
"""Cross-check a geodyn run against Brian2 (the field's reference simulator).

Usage::

    geodyn simulate weights --n-recurrent 20 --image 3 --export-run DIR
    python python/crosscheck/brian2_crosscheck.py DIR [--dt 0.01] [--feedforward]

It rebuilds the exported network (``DIR/network``) in Brian2 on a time grid of
step ``dt`` (ms), drives the input nodes with the exported stimulus trains
(``DIR/input_*.npy``, through a ``SpikeGeneratorGroup``), runs for the
exported duration and prints one JSON object comparing Brian2's run with
geodyn's (``DIR/run.json`` and the activation arrays).

The model mirrored (geodyn ``src/sim/mod.rs``): each recurrent node sums
arriving weights, the sum decaying exponentially with ``summation_tau_ms``
(integrated exactly between steps, ``method='exact'``); it activates when the
sum reaches ``threshold``; the sum resets to 0 and the node is refractory for
``refractory_period_ms``, during which arrivals are *lost* (they do not add to
the sum; they are counted). Pair-based STDP with exponential traces, timing at
the target (the synapse's pre pathway runs at the arrival, i.e. after the
delay): an arrival depresses by ``a_minus * post trace``, an activation
potentiates every incoming plastic edge by ``a_plus * pre trace`` (the causal
arrival included, dt = 0), weights clipped to ``[w_min, w_max]``, only edges
with ``edge_plastic = 1``. With ``stdp.lost_arrivals_count = true`` a lost
arrival still steps the pre trace and depresses; with ``false`` it does
neither. An arrival is weighted by its weight before its own STDP update. As in
geodyn, an update (and so the clip) happens only when the trace it uses is > 0:
an initial weight outside ``[w_min, w_max]`` stays until its first update
(geodyn's builder clips the initial weights of plastic edges to that range, so
its exports have none since 2026-12-02; an older export may).

Scheduling on the grid (what makes a hop one latency long): thresholders, the
input generator and the STDP post pathway run ``when='after_synapses'`` (the
thresholder first, so an arrival that crosses the threshold activates the node
in the same step and the post pathway sees that activation in the same step).
A spike found in step m is pushed into the queue in step m+1, so a synaptic
delay of ``max(round(latency/dt), 1) - 1`` steps delivers it
``round(latency/dt)`` steps after the spike (at least one step). Stimulus
times are rounded to the grid by the generator; a stimulus within the input
node's refractory period is dropped (as geodyn does) before it is given to
Brian2.

What differs by construction (and shrinks as dt -> 0): times are multiples of
dt; arrivals in the same step are summed before the threshold is checked
(geodyn checks after each, and an arrival in the same step after a crossing
is lost there but added-then-reset here).

Refused (exit status 2 with a message): edges into input nodes (an input node
is only driven by its stimulus here), STDP traces whose time constant or
amplitudes are not finite, and an export format version this does not know.

``--feedforward``: the control. Brian2 runs with recurrent->recurrent weights
and STDP amplitudes set to 0, so the recurrent nodes are driven by the inputs
alone. If the export itself has all recurrent->recurrent weights 0 and STDP
off (make it with a config whose ``network.recurrent_weights.scale = 0`` and
``stdp.enabled = false``), every quantity is compared; otherwise only what the
feedforward part determines whatever the recurrent weights are: the input
activations and the arrivals on input->recurrent edges. The JSON's
``compared`` says which.

Output keys: ``geodyn`` and ``brian2`` (totals: arrivals, lost_arrivals,
activations, recurrent_activations, input_activations), and ``comparison``:
``count_correlation`` (Pearson over recurrent nodes of per-node activation
counts), ``first_activation_abs_dt_ms_median`` (over recurrent nodes that
activate in both runs), ``spike_match_fraction`` (of geodyn's recurrent
activations, the fraction with a Brian2 activation of the same node within
``--match-ms``, default 0.05 ms), ``dw_correlation`` (Pearson over plastic
edges of final - initial weight; null without plastic edges or variance) and
relative differences of the totals.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


class Refused(Exception):
    pass


def load_export(d):
    net = os.path.join(d, "network")
    with open(os.path.join(net, "meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(d, "run.json")) as f:
        run = json.load(f)
    if meta.get("format_version") != 1 or run.get("format_version") != 1:
        raise Refused("unknown export format version (this script reads version 1)")
    a = {}
    for name in ["node_population", "node_refractory_period_ms", "node_threshold",
                 "node_summation_tau_ms", "edge_source", "edge_target",
                 "edge_latency_ms", "edge_weight", "edge_plastic", "edge_class"]:
        a[name] = np.load(os.path.join(net, name + ".npy"))
    for name in ["input_node", "input_time_ms", "activation_node", "activation_time_ms",
                 "activation_causal_edge", "node_activation_count",
                 "node_lost_arrival_count", "edge_weight_initial", "edge_weight_final"]:
        a[name] = np.load(os.path.join(d, name + ".npy"))
    return meta, run, a


def accepted_inputs(nodes, times, refractory):
    """Drop each stimulus within its node's refractory period after the last kept one."""
    order = np.lexsort((times, nodes))
    keep = np.zeros(len(nodes), dtype=bool)
    last_node, last_t = -1, -np.inf
    for i in order:
        n, t = nodes[i], times[i]
        if n != last_node:
            last_node, last_t = n, -np.inf
        if t - last_t >= refractory[n]:
            keep[i] = True
            last_t = t
    return keep


def pearson(x, y):
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


# C++ inserted around the network run in cpp_standalone: the loop's process
# CPU time (the binary is single-threaded), written next to Brian2's results.
LOOP_CPU_FILE = "geodyn_loop_cpu_s.txt"
_LOOP_CPU_BEFORE = "std::clock_t _geodyn_c0 = std::clock();"
_LOOP_CPU_AFTER = ('{ std::ofstream _geodyn_f(brian::results_dir + "' + LOOP_CPU_FILE + '"); '
                   '_geodyn_f.precision(17); '
                   '_geodyn_f << double(std::clock() - _geodyn_c0) / CLOCKS_PER_SEC << std::endl; }')


def run_brian2(meta, a, dt_ms, feedforward, target, standalone_dir=None):
    """Runs the export in Brian2. ``target``: numpy or cython (runtime), or
    cpp_standalone: the C++ project is written to and compiled in
    ``standalone_dir`` (reused: Brian2 rewrites only changed files, so make
    recompiles only those), run once, and its results read back; the returned
    ``standalone`` entry gives the directory, the compile time and the loop's
    CPU time (for scripts/bench-vs-brian2.sh, which reruns the binary)."""
    import brian2 as b2

    standalone = target == "cpp_standalone"
    if standalone:
        if standalone_dir is None:
            raise ValueError("cpp_standalone needs standalone_dir")
        b2.set_device("cpp_standalone", build_on_run=False)
        b2.device.reinit()
        b2.device.activate(build_on_run=False)
    else:
        b2.prefs.codegen.target = target
    b2.start_scope()
    b2.defaultclock.dt = dt_ms * b2.ms
    ms = b2.ms

    pop = a["node_population"]
    src, tgt = a["edge_source"].astype(np.int64), a["edge_target"].astype(np.int64)
    if np.any(pop[tgt] == 0):
        raise Refused("edges into input nodes: an input node is driven by its stimulus only here")
    stdp = meta["stdp"]
    lost_count = bool(stdp.get("lost_arrivals_count", True))
    stdp_on = bool(stdp.get("enabled", False)) and not feedforward
    for k in ["a_plus", "a_minus", "tau_plus_ms", "tau_minus_ms", "w_min", "w_max"]:
        if not np.isfinite(stdp[k]):
            raise Refused(f"stdp.{k} is not finite")
    if stdp["tau_plus_ms"] <= 0 or stdp["tau_minus_ms"] <= 0:
        raise Refused("STDP time constants must be > 0")

    inputs = np.flatnonzero(pop == 0)
    rec = np.flatnonzero(pop == 1)
    local = np.full(len(pop), -1, dtype=np.int64)
    local[inputs] = np.arange(len(inputs))
    local[rec] = np.arange(len(rec))
    duration = float(meta["simulation"]["duration_ms"])

    # stimulus: refractory filter, then the grid
    keep = accepted_inputs(a["input_node"], a["input_time_ms"], a["node_refractory_period_ms"])
    in_nodes = a["input_node"][keep].astype(np.int64)
    in_times = a["input_time_ms"][keep]
    steps = np.round(in_times / dt_ms).astype(np.int64)
    ok = steps * dt_ms < duration
    # two stimuli of one node in one step cannot happen if R >= dt (checked above)
    gen = b2.SpikeGeneratorGroup(len(inputs), local[in_nodes[ok]], steps[ok] * dt_ms * ms,
                                 when="after_synapses", order=0, name="inputs")

    G = b2.NeuronGroup(
        len(rec),
        """dv/dt = -v/tau : 1 (unless refractory)
           tau : second (constant)
           theta : 1 (constant)
           R : second (constant)""",
        threshold="v >= theta", reset="v = 0", refractory="R", method="exact",
        name="recurrent")
    G.tau = a["node_summation_tau_ms"][rec] * ms
    G.theta = a["node_threshold"][rec]
    G.R = a["node_refractory_period_ms"][rec] * ms
    G.thresholder["spike"].when = "after_synapses"
    G.thresholder["spike"].order = 0

    nr = "int(not_refractory_post)"
    count = "1" if lost_count else nr
    model = """w : 1
               plastic : 1 (constant)
               narr : 1
               nlost : 1
               u : 1
               dapre/dt = -apre/taup : 1 (event-driven)
               dapost/dt = -apost/taum : 1 (event-driven)"""
    on_pre = f"""v_post += w * {nr}
                 narr += 1
                 nlost += 1 - {nr}
                 u = plastic * {count} * int(apost > 0)
                 w = u * clip(w - Am * apost, wmin, wmax) + (1 - u) * w
                 apre += {count}"""
    on_post = """u = plastic * int(apre > 0)
                 w = u * clip(w + Ap * apre, wmin, wmax) + (1 - u) * w
                 apost += 1"""
    ns = dict(taup=stdp["tau_plus_ms"] * ms, taum=stdp["tau_minus_ms"] * ms,
              Ap=stdp["a_plus"] if stdp_on else 0.0, Am=stdp["a_minus"] if stdp_on else 0.0,
              wmin=stdp["w_min"], wmax=stdp["w_max"])

    lat_steps = np.maximum(np.round(a["edge_latency_ms"] / dt_ms).astype(np.int64), 1)
    delay_steps = lat_steps - 1
    w0 = a["edge_weight"].astype(np.float64)
    if feedforward:
        w0 = np.where((pop[src] == 1) & (pop[tgt] == 1), 0.0, w0)

    syn = {}
    for name, source, mask in [("input_syn", gen, pop[src] == 0), ("rec_syn", G, pop[src] == 1)]:
        idx = np.flatnonzero(mask)
        # on_post: the "post" pathway, triggered by the target's activations
        S = b2.Synapses(source, G, model=model, on_pre=on_pre, on_post=on_post,
                        namespace=ns, name=name)
        S.connect(i=local[src[idx]], j=local[tgt[idx]])
        S.pre.delay = delay_steps[idx] * dt_ms * ms
        S.post.delay = 0 * ms
        S.post.when = "after_synapses"
        S.post.order = 1
        S.w = w0[idx]
        S.plastic = a["edge_plastic"][idx].astype(np.float64) if stdp_on else 0.0
        syn[name] = (S, idx)

    mon = b2.SpikeMonitor(G, name="rec_spikes")
    in_mon = b2.SpikeMonitor(gen, name="in_spikes")
    net = b2.Network(gen, G, mon, in_mon, *[s for s, _ in syn.values()])
    if standalone:
        b2.device.insert_code("before_network_run", _LOOP_CPU_BEFORE)
        b2.device.insert_code("after_network_run", _LOOP_CPU_AFTER)
    t0 = time.time()
    net.run(duration * ms)
    info = None
    if standalone:
        b2.device.build(directory=standalone_dir, compile=True, run=True, with_output=False)
        results = b2.device.results_dir
        with open(os.path.join(results, LOOP_CPU_FILE)) as f:
            loop_cpu_s = float(f.read())
        info = dict(directory=os.path.abspath(standalone_dir), results_dir=results,
                    compile_s=b2.device.timers["compile"]["make"],
                    run_binary_s=b2.device.timers["run_binary"], loop_cpu_s=loop_cpu_s)
    wall = time.time() - t0 if not standalone else info["run_binary_s"]

    w_final = w0.copy()
    arrivals = lost = 0
    input_arrivals = int(np.sum(syn["input_syn"][0].narr[:]))
    for S, idx in syn.values():
        w_final[idx] = np.asarray(S.w[:])
        arrivals += int(np.sum(S.narr[:]))
        lost += int(np.sum(S.nlost[:]))
    act_node = np.concatenate([inputs[np.asarray(in_mon.i[:])], rec[np.asarray(mon.i[:])]])
    act_time = np.concatenate([np.asarray(in_mon.t[:] / ms), np.asarray(mon.t[:] / ms)])
    if standalone:
        b2.device.reinit()
        b2.set_device("runtime")
    return dict(arrivals=arrivals, lost=lost, input_arrivals=input_arrivals, act_node=act_node, act_time=act_time,
                w_initial=w0, w_final=w_final, wall_s=wall,
                stdp_on=stdp_on, lost_arrivals_count=lost_count, standalone=info)


def first_times(nodes, times, n):
    first = np.full(n, np.inf)
    np.minimum.at(first, nodes, times)
    return first


def compare(meta, run, a, b, dt_ms, feedforward, match_ms):
    pop = a["node_population"]
    n = len(pop)
    rec = pop == 1
    src, tgt = a["edge_source"], a["edge_target"]
    rr = (pop[src] == 1) & (pop[tgt] == 1)
    tot = run["totals"]

    g_nodes = a["activation_node"].astype(np.int64)
    g_times = a["activation_time_ms"]
    g_counts = a["node_activation_count"].astype(np.int64)
    b_counts = np.bincount(b["act_node"], minlength=n)

    ff_exact = bool(np.all(a["edge_weight"][rr] == 0)) and not meta["stdp"].get("enabled", False)
    full = (not feedforward) or ff_exact

    g = dict(arrivals=int(tot["arrivals"]), lost_arrivals=int(tot["lost_arrivals"]),
             activations=int(tot["activations"]),
             recurrent_activations=int(g_counts[rec].sum()),
             input_activations=int(g_counts[~rec].sum()))
    br = dict(arrivals=b["arrivals"], lost_arrivals=b["lost"],
              activations=int(len(b["act_node"])),
              recurrent_activations=int(b_counts[rec].sum()),
              input_activations=int(b_counts[~rec].sum()))
    out = {"dt_ms": dt_ms, "feedforward": feedforward, "brian2_wall_s": round(b["wall_s"], 3),
           "stdp_in_brian2": b["stdp_on"], "lost_arrivals_count": b["lost_arrivals_count"]}

    def rel(x, y):
        return None if x == 0 else (y - x) / x

    if full:
        out["compared"] = ("everything: totals, per-node counts, timing, weights"
                           if not feedforward else
                           "everything: the export has recurrent->recurrent weights 0 and STDP "
                           "off, so geodyn's run is the feedforward run")
        first_g = first_times(g_nodes, g_times, n)
        first_b = first_times(b["act_node"], b["act_time"], n)
        both = rec & np.isfinite(first_g) & np.isfinite(first_b)
        # spike match: every geodyn recurrent activation vs the nearest Brian2 one of its node
        matched = 0
        g_rec = np.flatnonzero(rec[g_nodes])
        order = np.lexsort((b["act_time"], b["act_node"]))
        bn, bt = b["act_node"][order], b["act_time"][order]
        starts = np.searchsorted(bn, np.arange(n + 1))
        for node in np.unique(g_nodes[g_rec]):
            ts = g_times[g_nodes == node]
            mine = bt[starts[node]:starts[node + 1]]
            if len(mine) == 0:
                continue
            k = np.searchsorted(mine, ts)
            hi = np.clip(k, 0, len(mine) - 1)
            lo = np.clip(k - 1, 0, len(mine) - 1)
            near = np.minimum(np.abs(mine[hi] - ts), np.abs(mine[lo] - ts))
            matched += int(np.sum(near <= match_ms + 1e-9))
        plastic = a["edge_plastic"] == 1
        dw_g = a["edge_weight_final"].astype(np.float64) - a["edge_weight_initial"].astype(np.float64)
        dw_b = b["w_final"] - b["w_initial"]
        cmp = dict(
            arrivals_rel_diff=rel(g["arrivals"], br["arrivals"]),
            lost_arrivals_rel_diff=rel(g["lost_arrivals"], br["lost_arrivals"]),
            activations_rel_diff=rel(g["activations"], br["activations"]),
            recurrent_activations_rel_diff=rel(g["recurrent_activations"], br["recurrent_activations"]),
            count_correlation=pearson(g_counts[rec], b_counts[rec]),
            first_activation_abs_dt_ms_median=(float(np.median(np.abs(first_g[both] - first_b[both])))
                                               if both.any() else None),
            first_activation_nodes_compared=int(both.sum()),
            spike_match_ms=match_ms,
            spike_match_fraction=(matched / len(g_rec)) if len(g_rec) else None,
            dw_correlation=pearson(dw_g[plastic], dw_b[plastic]) if plastic.any() else None,
            n_plastic_edges=int(plastic.sum()),
        )
    else:
        out["compared"] = ("feedforward part only (the export has nonzero recurrent->recurrent "
                           "weights or STDP on): input activations and arrivals on "
                           "input->recurrent edges, which do not depend on the recurrent weights")
        # arrivals on input->recurrent edges within the run, from geodyn's activations
        ir = pop[src] == 0
        ir_arr_g = 0
        lat = a["edge_latency_ms"]
        duration = float(meta["simulation"]["duration_ms"])
        order = np.argsort(src[ir], kind="stable")
        e_src, e_lat = src[ir][order], lat[ir][order]
        st = np.searchsorted(e_src, np.arange(n + 1))
        for node, t in zip(g_nodes, g_times):
            if pop[node] == 0:
                ir_arr_g += int(np.sum(t + e_lat[st[node]:st[node + 1]] < duration))
        ir_arr_b = b["input_arrivals"]
        cmp = dict(input_activations_geodyn=g["input_activations"],
                   input_activations_brian2=br["input_activations"],
                   input_to_recurrent_arrivals_geodyn=ir_arr_g,
                   input_to_recurrent_arrivals_brian2=ir_arr_b,
                   input_to_recurrent_arrivals_rel_diff=rel(ir_arr_g, ir_arr_b))
    out["geodyn"] = g
    out["brian2"] = br
    out["comparison"] = cmp
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir")
    p.add_argument("--dt", type=float, default=0.01, help="time step in ms (default 0.01)")
    p.add_argument("--feedforward", action="store_true",
                   help="control: recurrent->recurrent weights and STDP amplitudes 0 in Brian2")
    p.add_argument("--match-ms", type=float, default=0.05,
                   help="spike match window in ms (default 0.05)")
    p.add_argument("--target", default="numpy", choices=["numpy", "cython", "cpp_standalone"],
                   help="Brian2 code generation target (default numpy)")
    p.add_argument("--standalone-dir", default=None,
                   help="cpp_standalone: the project directory (default: a temporary one)")
    args = p.parse_args(argv)
    try:
        meta, run, a = load_export(args.export_dir)
        if np.min(a["node_refractory_period_ms"][a["node_population"] == 0]) < args.dt:
            raise Refused("an input refractory period shorter than dt: two stimuli could share a step")
        if args.target == "cpp_standalone" and args.standalone_dir is None:
            import tempfile
            with tempfile.TemporaryDirectory(prefix="geodyn-brian2-") as tmp:
                b = run_brian2(meta, a, args.dt, args.feedforward, args.target, tmp)
        else:
            b = run_brian2(meta, a, args.dt, args.feedforward, args.target, args.standalone_dir)
        out = compare(meta, run, a, b, args.dt, args.feedforward, args.match_ms)
    except Refused as e:
        print(f"brian2_crosscheck: refused: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
