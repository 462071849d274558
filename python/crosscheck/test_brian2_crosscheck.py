"""geodyn against Brian2 on a small network (N = 20 recurrent, image 3, 100 ms).

Runs the built geodyn binary (env GEODYN_BIN, else target/release/geodyn) on
copies of configs/weights.toml shortened to 100 ms, exports the runs, rebuilds
them in Brian2 (brian2_crosscheck.py) and checks the agreement.

Tolerances, from the values measured (Brian2 2.9.0, numpy target; geodyn run
of configs/weights.toml at 100 ms, N = 20, image 3; measured again after the
build-time clip of plastic weights to [w_min, w_max], 2026-12-02, with
``pytest -s``), each with margin but tight enough that a modelling error fails
them (the Brian2 STDP post pathway wired to the presynaptic spikes, a bug found
while writing this, gave dw correlation 0.88 and recurrent activations -9 to
-13 %, measured before the clip fix):

=====================================  ==========  ============
check (dt = 0.01 ms unless said)       measured    required
=====================================  ==========  ============
arrivals, relative difference          -0.08 %     within 1 %
activations, relative difference       -0.18 %     within 1 %
recurrent activations, rel. diff.      -1.8 %      within 8 %
per-node count correlation             0.976       >= 0.95
dw correlation (plastic edges)         0.957       >= 0.93
spike match (0.05 ms)                  0.55        >= 0.35
first-activation |dt| median           0.0019 ms   <= 0.01 ms
  same at dt = 0.1 ms                  0.041 ms    ratio <= 0.25
feedforward control: count corr.       1.000       >= 0.99
  recurrent activations, rel. diff.    0 %         within 3 %
  spike match                          0.905       >= 0.8
  arrivals, relative difference        -0.04 %     within 0.5 %
feedforward part of the STDP run:
  input->recurrent arrivals rel. diff  -0.007 %    within 0.1 %
=====================================  ==========  ============

The spike match is low with recurrent weights because the recurrent network
is chaotic: one activation that the grid moves (an inhibitory arrival 0.5 us
after the crossing one lands in the same step) changes every later one, while
the totals, counts and weight changes stay close; without recurrent weights
(the control) most spikes match.

Before the clip fix, 22 % of the recurrent weights at N = 20 (inhibitory
U(-7/3, 0) x sqrt(50/20)) started below w_min = -1 and their first update
snapped them to -1 in both simulators alike, a large shared part of dw: the
dw correlation was 0.997 then. Without it, 0.957 is what the chaos leaves (the
issue measured 0.93-0.95 at N = 200, the same as geodyn against itself with
its inputs jittered by dt), hence the bound 0.93.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import brian2_crosscheck as bc  # noqa: E402

GEODYN = os.environ.get("GEODYN_BIN", os.path.join(ROOT, "target", "release", "geodyn"))


def config_text(feedforward):
    with open(os.path.join(ROOT, "configs", "weights.toml")) as f:
        s = f.read()
    subs = [("duration_ms = 600.0", "duration_ms = 100.0"),
            ('kind = "weights"', 'kind = "activity"'),
            ("snapshot_times_ms = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]",
             "snapshot_times_ms = [100.0]")]
    if feedforward:
        subs += [("scale_reference_n = 50.0", "scale_reference_n = 50.0\nscale = 0.0"),
                 ("[stdp]\nenabled = true", "[stdp]\nenabled = false")]
    for old, new in subs:
        assert s.count(old) == 1, f"configs/weights.toml changed: {old!r} not found once"
        s = s.replace(old, new)
    return s


def export(tmp, name, feedforward):
    if not os.path.exists(GEODYN):
        pytest.fail(f"no geodyn binary at {GEODYN}: cargo build --release, or set GEODYN_BIN")
    cfg = os.path.join(tmp, name + ".toml")
    with open(cfg, "w") as f:
        f.write(config_text(feedforward))
    out = os.path.join(tmp, name)
    subprocess.run([GEODYN, "simulate", cfg, "--n-recurrent", "20", "--image", "3",
                    "--export-run", out], check=True, stdout=subprocess.DEVNULL)
    return out


def crosscheck(d, dt, feedforward=False):
    meta, run, a = bc.load_export(d)
    b = bc.run_brian2(meta, a, dt, feedforward, "numpy")
    return bc.compare(meta, run, a, b, dt, feedforward, 0.05)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("geodyn_export"))
    return {"stdp": export(tmp, "stdp", False), "ff": export(tmp, "ff", True)}


@pytest.fixture(scope="module")
def stdp_runs(exports):
    return {dt: crosscheck(exports["stdp"], dt) for dt in (0.1, 0.01)}


def test_totals_counts_and_weights_at_dt_001(stdp_runs):
    r = stdp_runs[0.01]
    c, g, b = r["comparison"], r["geodyn"], r["brian2"]
    print(json.dumps(r, indent=1))
    assert g["recurrent_activations"] > 50, "too little recurrent activity to compare"
    assert b["input_activations"] == g["input_activations"]
    assert abs(c["arrivals_rel_diff"]) <= 0.01
    assert abs(c["activations_rel_diff"]) <= 0.01
    assert abs(c["recurrent_activations_rel_diff"]) <= 0.08
    assert c["count_correlation"] >= 0.95
    assert c["dw_correlation"] >= 0.93
    assert c["spike_match_fraction"] >= 0.35
    assert c["first_activation_nodes_compared"] >= 10


def test_first_activation_converges_as_dt_shrinks(stdp_runs):
    coarse = stdp_runs[0.1]["comparison"]["first_activation_abs_dt_ms_median"]
    fine = stdp_runs[0.01]["comparison"]["first_activation_abs_dt_ms_median"]
    print("first-activation |dt| median: dt 0.1 ->", coarse, "; dt 0.01 ->", fine)
    assert fine <= 0.01
    assert fine <= 0.25 * coarse


def test_feedforward_control(exports):
    r = crosscheck(exports["ff"], 0.01, feedforward=True)
    c = r["comparison"]
    print(json.dumps(r, indent=1))
    assert r["compared"].startswith("everything")
    assert r["geodyn"]["recurrent_activations"] > 50
    assert r["brian2"]["input_activations"] == r["geodyn"]["input_activations"]
    assert abs(c["arrivals_rel_diff"]) <= 0.005
    assert abs(c["recurrent_activations_rel_diff"]) <= 0.03
    assert c["count_correlation"] >= 0.99
    assert c["spike_match_fraction"] >= 0.8


def test_feedforward_part_of_the_stdp_run(exports):
    r = crosscheck(exports["stdp"], 0.01, feedforward=True)
    c = r["comparison"]
    assert r["compared"].startswith("feedforward part only")
    assert c["input_activations_brian2"] == c["input_activations_geodyn"]
    assert abs(c["input_to_recurrent_arrivals_rel_diff"]) <= 0.001


def test_refuses_edges_into_input_nodes(exports, tmp_path):
    d = str(tmp_path / "bad")
    shutil.copytree(exports["ff"], d)
    p = os.path.join(d, "network", "edge_target.npy")
    t = np.load(p)
    t[0] = 0  # node 0 is an input node
    np.save(p, t)
    r = subprocess.run([sys.executable, os.path.join(HERE, "brian2_crosscheck.py"), d],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "edges into input nodes" in r.stderr


def test_weights_round_trip_exactly_at_t0(exports):
    """export -> Brian2 -> weights read back from Brian2's synapses at t = 0:
    every edge's weight, in the export's edge order, equal as float64."""
    meta, run, a = bc.load_export(exports["stdp"])
    meta = dict(meta, simulation=dict(meta["simulation"], duration_ms=0.0))
    b = bc.run_brian2(meta, a, 0.01, False, "numpy")
    w = a["edge_weight"].astype(np.float64)
    assert len(w) > 1000
    assert np.array_equal(b["w_final"], w)
    assert b["arrivals"] == 0
