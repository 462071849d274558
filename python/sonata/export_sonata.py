#!/usr/bin/env python3
"""Write a geodyn network export as a SONATA circuit (nodes.h5, edges.h5, CSV
types, circuit_config.json), the format NEST, BMTK and NEURON users exchange
networks in.

Usage::

    geodyn network CONFIG --export EXPORT_DIR
    python python/sonata/export_sonata.py EXPORT_DIR OUT_DIR [--population NAME]

Layout written to OUT_DIR (SONATA 0.1 / libsonata; every array keeps geodyn's
order, so node i and edge j here are node i and edge j of the export):

- ``nodes.h5``: one node population (default ``geodyn``), ``/nodes/geodyn/``
  with ``node_type_id`` (0 = input node, 1 = recurrent node, geodyn's
  ``node_population``), ``node_id``, ``node_group_id`` (all 0),
  ``node_group_index`` (0..n) and group ``0/``: ``x``, ``y``, ``z`` (um,
  float64) and ``0/dynamics_params/``: ``threshold``, ``refractory_period_ms``,
  ``summation_tau_ms`` (float64, per node: geodyn may draw them per node);
- ``edges.h5``: one edge population ``geodyn__geodyn`` from and to that node
  population, ``/edges/geodyn__geodyn/`` with ``source_node_id``,
  ``target_node_id`` (uint64, attribute ``node_population``), ``edge_type_id``
  (0 = static, 1 = plastic: geodyn's ``edge_plastic``), ``edge_group_id`` (all
  0), ``edge_group_index`` (0..m) and group ``0/``: ``delay`` (ms, float64: the
  exact latency = length / velocity; a clock-driven simulator rounds it to its
  grid), ``syn_weight`` (float32, geodyn's initial weight, in threshold units;
  negative = inhibitory), ``length_um``, ``velocity_um_per_ms`` (float64),
  ``edge_class`` (uint8: 0 input->input, 1 input->recurrent, 2 recurrent->input,
  3 recurrent->recurrent);
- ``node_types.csv`` / ``edge_types.csv`` (space-separated, SONATA's
  convention) naming ``components/dynamics/*.json``: the node model and each
  population's parameter ranges, the STDP rule and its parameters (from
  ``meta.json``);
- ``circuit_config.json``: the two files and their type files, ``$BASE_DIR``
  relative, plus ``geodyn``: the source export's format version, config hash,
  seed and stimulus rule (not part of the circuit: SONATA keeps inputs in the
  simulation config).

Why a Python tool and not a ``geodyn`` flag: HDF5 needs the C library
(``libhdf5``, through the ``hdf5`` crate and its build-time headers), which
would end "a fresh clone needs only the Rust toolchain"; and a binary that ran
this script would depend on a venv and on where the repository is. The export
directory is the interface: ``geodyn network --export`` then this script.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np

NODE_ARRAYS = ["node_population", "node_position_um", "node_refractory_period_ms",
               "node_threshold", "node_summation_tau_ms"]
EDGE_ARRAYS = ["edge_source", "edge_target", "edge_latency_ms", "edge_weight", "edge_plastic",
               "edge_class", "edge_length_um", "edge_velocity_um_per_ms"]
NODE_TYPES = {0: "input", 1: "recurrent"}


class ExportError(Exception):
    pass


def load(export_dir):
    meta_path = os.path.join(export_dir, "meta.json")
    if not os.path.exists(meta_path):
        raise ExportError(f"{meta_path}: no meta.json (write the export with geodyn network CONFIG --export DIR)")
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get("format_version") != 1:
        raise ExportError(f"{meta_path}: format_version = {meta.get('format_version')!r}; this reads 1")
    a = {}
    for name in NODE_ARRAYS + EDGE_ARRAYS:
        path = os.path.join(export_dir, name + ".npy")
        if not os.path.exists(path):
            raise ExportError(f"{path}: missing")
        a[name] = np.load(path)
    n, m = meta["n_nodes"], meta["n_edges"]
    for name in NODE_ARRAYS + EDGE_ARRAYS:
        want = n if name.startswith("node_") else m
        if a[name].shape[0] != want:
            raise ExportError(f"{export_dir}/{name}.npy: {a[name].shape[0]} rows, meta.json says {want}")
    bad = set(np.unique(a["node_population"]).tolist()) - set(NODE_TYPES)
    if bad:
        raise ExportError(f"{export_dir}/node_population.npy: values {sorted(bad)} (0 input, 1 recurrent)")
    for name in ["edge_source", "edge_target"]:
        if m and (a[name].max() >= n):
            raise ExportError(f"{export_dir}/{name}.npy: node id {a[name].max()} >= n_nodes = {n}")
    return meta, a


def param_summary(values):
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return None
    return float(v[0]) if np.all(v == v[0]) else {"min": float(v.min()), "max": float(v.max()),
                                                 "per_node": "nodes.h5 0/dynamics_params"}


def write(meta, a, out_dir, pop="geodyn"):
    import h5py

    os.makedirs(os.path.join(out_dir, "components", "dynamics"), exist_ok=True)
    n, m = int(meta["n_nodes"]), int(meta["n_edges"])
    edge_pop = f"{pop}__{pop}"

    with h5py.File(os.path.join(out_dir, "nodes.h5"), "w") as f:
        f.attrs["version"] = np.array([0, 1], dtype=np.uint32)
        f.attrs["magic"] = np.uint32(0x0A7A)
        g = f.create_group(f"nodes/{pop}")
        g.create_dataset("node_type_id", data=a["node_population"].astype(np.int64))
        g.create_dataset("node_id", data=np.arange(n, dtype=np.uint64))
        g.create_dataset("node_group_id", data=np.zeros(n, dtype=np.uint32))
        g.create_dataset("node_group_index", data=np.arange(n, dtype=np.uint64))
        g0 = g.create_group("0")
        pos = a["node_position_um"].astype(np.float64)
        for k, axis in enumerate("xyz"):
            g0.create_dataset(axis, data=pos[:, k])
        dp = g0.create_group("dynamics_params")
        dp.create_dataset("threshold", data=a["node_threshold"].astype(np.float64))
        dp.create_dataset("refractory_period_ms", data=a["node_refractory_period_ms"].astype(np.float64))
        dp.create_dataset("summation_tau_ms", data=a["node_summation_tau_ms"].astype(np.float64))

    with h5py.File(os.path.join(out_dir, "edges.h5"), "w") as f:
        f.attrs["version"] = np.array([0, 1], dtype=np.uint32)
        f.attrs["magic"] = np.uint32(0x0A7A)
        g = f.create_group(f"edges/{edge_pop}")
        for name, src in [("source_node_id", "edge_source"), ("target_node_id", "edge_target")]:
            d = g.create_dataset(name, data=a[src].astype(np.uint64))
            d.attrs["node_population"] = pop
        g.create_dataset("edge_type_id", data=a["edge_plastic"].astype(np.int64))
        g.create_dataset("edge_group_id", data=np.zeros(m, dtype=np.uint32))
        g.create_dataset("edge_group_index", data=np.arange(m, dtype=np.uint64))
        g0 = g.create_group("0")
        g0.create_dataset("delay", data=a["edge_latency_ms"].astype(np.float64))
        g0.create_dataset("syn_weight", data=a["edge_weight"].astype(np.float32))
        g0.create_dataset("length_um", data=a["edge_length_um"].astype(np.float64))
        g0.create_dataset("velocity_um_per_ms", data=a["edge_velocity_um_per_ms"].astype(np.float64))
        g0.create_dataset("edge_class", data=a["edge_class"].astype(np.uint8))

    model = meta.get("model", {})
    for tid, name in NODE_TYPES.items():
        sel = a["node_population"] == tid
        params = {"model": "geodyn event-driven leaky threshold node", "description": model.get("activation"),
                  "population": name, "n_nodes": int(sel.sum()),
                  "threshold": param_summary(a["node_threshold"][sel]),
                  "refractory_period_ms": param_summary(a["node_refractory_period_ms"][sel]),
                  "summation_tau_ms": param_summary(a["node_summation_tau_ms"][sel])}
        if tid == 0:
            params["driven_by"] = "the stimulus (circuit_config.json geodyn.stimulus)"
        with open(os.path.join(out_dir, "components", "dynamics", f"geodyn_{name}.json"), "w") as f:
            json.dump(params, f, indent=2)
    stdp = meta.get("stdp")
    edge_params = {
        0: {"model": "static", "description": "weight fixed; each arrival adds syn_weight to the target's sum"},
        1: {"model": "geodyn pair-based STDP at the target", "description": model.get("stdp"),
            "parameters": stdp},
    }
    names = {0: "static", 1: "stdp"}
    for tid, params in edge_params.items():
        with open(os.path.join(out_dir, "components", "dynamics", f"geodyn_{names[tid]}.json"), "w") as f:
            json.dump(params, f, indent=2)

    with open(os.path.join(out_dir, "node_types.csv"), "w", newline="") as f:
        w = csv.writer(f, delimiter=" ")
        w.writerow(["node_type_id", "pop_name", "model_type", "model_template", "dynamics_params"])
        for tid, name in NODE_TYPES.items():
            w.writerow([tid, name, "point_process", "geodyn:leaky_threshold", f"geodyn_{name}.json"])
    with open(os.path.join(out_dir, "edge_types.csv"), "w", newline="") as f:
        w = csv.writer(f, delimiter=" ")
        w.writerow(["edge_type_id", "model_template", "dynamics_params", "plastic"])
        for tid in (0, 1):
            w.writerow([tid, f"geodyn:{names[tid]}", f"geodyn_{names[tid]}.json", tid])

    circuit = {
        "manifest": {"$BASE_DIR": "."},
        "components": {"point_neuron_models_dir": "$BASE_DIR/components/dynamics",
                       "synaptic_models_dir": "$BASE_DIR/components/dynamics"},
        "networks": {
            "nodes": [{"nodes_file": "$BASE_DIR/nodes.h5", "node_types_file": "$BASE_DIR/node_types.csv",
                       "populations": {pop: {"type": "point_neuron"}}}],
            "edges": [{"edges_file": "$BASE_DIR/edges.h5", "edge_types_file": "$BASE_DIR/edge_types.csv",
                       "populations": {edge_pop: {"type": "chemical"}}}],
        },
        "geodyn": {"source": "geodyn network --export", "format_version": meta.get("format_version"),
                   "geodyn_version": meta.get("geodyn_version"), "experiment": meta.get("experiment"),
                   "seed": meta.get("seed"), "config_hash": meta.get("config_hash"),
                   "units": meta.get("units"), "stimulus": meta.get("stimulus"),
                   "stimulus_rule": model.get("stimulus"), "simulation": meta.get("simulation"),
                   "stdp": stdp},
    }
    with open(os.path.join(out_dir, "circuit_config.json"), "w") as f:
        json.dump(circuit, f, indent=2)
    return {"nodes": n, "edges": m, "node_population": pop, "edge_population": edge_pop}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir", help="a directory written by geodyn network CONFIG --export DIR")
    p.add_argument("out_dir")
    p.add_argument("--population", default="geodyn", help="SONATA node population name (default geodyn)")
    args = p.parse_args(argv)
    try:
        meta, a = load(args.export_dir)
    except ExportError as e:
        print(f"export_sonata: {e}", file=sys.stderr)
        return 2
    info = write(meta, a, args.out_dir, args.population)
    print(f"export_sonata: {info['nodes']} nodes, {info['edges']} edges -> {args.out_dir} "
          f"(populations {info['node_population']}, {info['edge_population']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
