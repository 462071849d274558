"""SONATA round trip: geodyn network --export -> export_sonata.py -> read back
with libsonata (the BlueBrain SONATA reader; h5py for the ids libsonata does
not expose) and compared array by array, exactly, in geodyn's order."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import libsonata  # noqa: E402
import h5py  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import export_sonata as es  # noqa: E402

GEODYN = os.environ.get("GEODYN_BIN", os.path.join(ROOT, "target", "release", "geodyn"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if not os.path.exists(GEODYN):
        pytest.fail(f"no geodyn binary at {GEODYN}: cargo build --release, or set GEODYN_BIN")
    tmp = tmp_path_factory.mktemp("sonata")
    export = str(tmp / "export")
    subprocess.run([GEODYN, "network", "weights", "--n-recurrent", "20", "--export", export],
                   check=True, stdout=subprocess.DEVNULL)
    out = str(tmp / "sonata")
    assert es.main([export, out]) == 0
    meta, a = es.load(export)
    return export, out, meta, a


def test_circuit_config_names_both_populations(exported):
    _, out, meta, _ = exported
    c = libsonata.CircuitConfig.from_file(os.path.join(out, "circuit_config.json"))
    assert c.node_populations == {"geodyn"}
    assert c.edge_populations == {"geodyn__geodyn"}
    with open(os.path.join(out, "circuit_config.json")) as f:
        geo = json.load(f)["geodyn"]
    assert geo["config_hash"] == meta["config_hash"] and geo["stdp"] == meta["stdp"]


def test_nodes_round_trip(exported):
    _, out, meta, a = exported
    pop = libsonata.NodeStorage(os.path.join(out, "nodes.h5")).open_population("geodyn")
    s = pop.select_all()
    assert pop.size == meta["n_nodes"] == len(a["node_population"])
    for k, axis in enumerate("xyz"):
        assert np.array_equal(pop.get_attribute(axis, s), a["node_position_um"][:, k])
    for name in ["threshold", "refractory_period_ms", "summation_tau_ms"]:
        got = pop.get_dynamics_attribute(name, s)
        assert got.dtype == np.float64
        assert np.array_equal(got, a["node_" + name]), name
    with h5py.File(os.path.join(out, "nodes.h5")) as f:
        assert np.array_equal(f["nodes/geodyn/node_type_id"][:], a["node_population"])
    with open(os.path.join(out, "node_types.csv")) as f:
        rows = list(csv.DictReader(f, delimiter=" "))
    assert [(r["node_type_id"], r["pop_name"]) for r in rows] == [("0", "input"), ("1", "recurrent")]
    with open(os.path.join(out, "components", "dynamics", "geodyn_recurrent.json")) as f:
        rec = json.load(f)
    assert rec["n_nodes"] == meta["n_recurrent"] == 20


def test_edges_round_trip(exported):
    _, out, meta, a = exported
    pop = libsonata.EdgeStorage(os.path.join(out, "edges.h5")).open_population("geodyn__geodyn")
    s = pop.select_all()
    assert (pop.source, pop.target) == ("geodyn", "geodyn")
    assert pop.size == meta["n_edges"] == len(a["edge_source"]) > 10_000
    assert np.array_equal(pop.source_nodes(s), a["edge_source"])
    assert np.array_equal(pop.target_nodes(s), a["edge_target"])
    delay = pop.get_attribute("delay", s)
    assert delay.dtype == np.float64 and np.array_equal(delay, a["edge_latency_ms"])
    w = pop.get_attribute("syn_weight", s)
    assert w.dtype == np.float32 and np.array_equal(w, a["edge_weight"])
    assert (w < 0).any() and (w > 0).any()
    for sonata, geodyn in [("length_um", "edge_length_um"),
                           ("velocity_um_per_ms", "edge_velocity_um_per_ms"),
                           ("edge_class", "edge_class")]:
        assert np.array_equal(pop.get_attribute(sonata, s), a[geodyn]), sonata
    with h5py.File(os.path.join(out, "edges.h5")) as f:
        assert np.array_equal(f["edges/geodyn__geodyn/edge_type_id"][:], a["edge_plastic"])
        assert f["edges/geodyn__geodyn/source_node_id"].attrs["node_population"] == "geodyn"
    assert a["edge_plastic"].sum() == meta["n_plastic_edges"] == 20 * 19
    with open(os.path.join(out, "components", "dynamics", "geodyn_stdp.json")) as f:
        assert json.load(f)["parameters"] == meta["stdp"]


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(HERE, "export_sonata.py"), *args],
                          capture_output=True, text=True)


def test_refusals_name_the_file(exported, tmp_path):
    export = exported[0]
    r = run_cli(str(tmp_path / "nothing"), str(tmp_path / "o1"))
    assert r.returncode == 2 and "meta.json" in r.stderr
    bad = str(tmp_path / "bad")
    shutil.copytree(export, bad)
    np.save(os.path.join(bad, "edge_weight.npy"), np.load(os.path.join(bad, "edge_weight.npy"))[:-1])
    r = run_cli(bad, str(tmp_path / "o2"))
    assert r.returncode == 2 and "edge_weight.npy" in r.stderr and "meta.json says" in r.stderr
