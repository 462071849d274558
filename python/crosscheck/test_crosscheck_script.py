"""scripts/crosscheck-brian2.sh --quick --json: the JSON's shape and the
issue's tolerances (N = 20, 100 ms, image 3, numpy target).

Required (issue 11) and measured on 2026-12-02 (the script's own run):

=============================================  ==========  ==========
check at dt = 0.01 ms                          measured    required
=============================================  ==========  ==========
feedforward: arrivals, relative difference     -0.04 %     within 2 %
feedforward: lost arrivals, relative diff.     -0.90 %     within 2 %
feedforward: activations, relative diff.       0 %         within 2 %
feedforward: spikes matched within 0.05 ms     0.905       >= 0.85
full: arrivals, relative difference            -0.08 %     within 3 %
full: lost arrivals, relative difference       -1.99 %     within 3 %
full: activations, relative difference         -0.18 %     within 3 %
=============================================  ==========  ==========
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "crosscheck-brian2.sh")
GEODYN = os.environ.get("GEODYN_BIN", os.path.join(ROOT, "target", "release", "geodyn"))

FF = {"arrivals_rel_diff", "lost_rel_diff", "activations_rel_diff", "spikes_matched"}
FULL = FF | {"count_corr", "first_activation_abs_dt_ms", "dw_corr"}


def run_script(*args):
    env = dict(os.environ, GEODYN_BIN=GEODYN, PYTHON=sys.executable)
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env)


def test_quick_json_shape_and_tolerances():
    assert os.path.exists(GEODYN), f"no geodyn binary at {GEODYN}: cargo build --release"
    r = run_script("--quick", "--json")
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    lines = r.stdout.strip().splitlines()
    assert any(line.startswith("| spikes_matched |") for line in lines), "no table printed"
    out = json.loads(lines[-1])
    assert set(out) == {"feedforward", "full"}
    for variant, keys in [("feedforward", FF), ("full", FULL)]:
        assert set(out[variant]) == {"0.1", "0.01"}, out[variant].keys()
        for dt, row in out[variant].items():
            assert set(row) == keys, (variant, dt, row.keys())
            for k, v in row.items():
                assert isinstance(v, float), (variant, dt, k, v)
    ff, full = out["feedforward"]["0.01"], out["full"]["0.01"]
    for k in ["arrivals_rel_diff", "lost_rel_diff", "activations_rel_diff"]:
        assert abs(ff[k]) <= 0.02, (k, ff[k])
        assert abs(full[k]) <= 0.03, (k, full[k])
    assert ff["spikes_matched"] >= 0.85
    # fractions, not percents; and the timing error shrinks with dt
    assert 0 <= full["spikes_matched"] <= 1 and -1 <= full["dw_corr"] <= 1
    assert full["first_activation_abs_dt_ms"] < out["full"]["0.1"]["first_activation_abs_dt_ms"]


def test_unknown_argument_fails_loudly():
    r = run_script("--quik")
    assert r.returncode == 2
    assert "unknown argument '--quik'" in r.stderr
