#!/usr/bin/env bash
# The documented parameter search of experiment 3 (docs/experiments/weights.md):
# one variant of configs/weights.toml at a time, each on the same stratified
# 2,000 built-in digits (--limit 2000), same protocol (10 random 90/10 splits,
# distance-weighted Euclidean kNN, k = 5), each report beside its own baselines.
# Only the built-in data are used: no held-out set is looked at.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./target/release/geodyn
OUT=${OUT:-runs/search}
LIMIT=${LIMIT:-2000}
mkdir -p "$OUT"
variant() { # name, sed expression applied to configs/weights.toml
  local name=$1 expr=$2
  sed -e "$expr" -e 's/^linear = \["svm"\]/linear = []/' configs/weights.toml > "$OUT/$name.toml"
  $BIN run "$OUT/$name.toml" --limit "$LIMIT" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
  python3 - "$OUT/$name/report.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); name = sys.argv[2]
best = max((x for x in r["results"] if x["classifier"] == "knn"), key=lambda x: x["accuracy_mean"])
raw = [x for x in r["baselines"] if x["embedding"] == "raw_pixels" and x["classifier"] == "knn"][0]
act = [x for x in r["results"] if x["embedding"] == "activity" and x["classifier"] == "knn"][0]
print(f"{name:28s} best {best['embedding']:14s} {100*best['accuracy_mean']:6.2f} +/- {100*best['accuracy_sd']:.2f} | activity {100*act['accuracy_mean']:6.2f} | raw {100*raw['accuracy_mean']:6.2f} | rate {r['extra']['mean_recurrent_rate_hz']:.1f} Hz, lost {100*r['extra']['lost_arrival_share']:.1f}%")
PY
}
variant base                 's/^seed = 1$/seed = 1/'
variant velocity_1000        's/^velocity_um_per_ms = 100.0.*/velocity_um_per_ms = 1000.0/'
variant velocity_20          's/^velocity_um_per_ms = 100.0.*/velocity_um_per_ms = 20.0/'
variant balanced_stdp        's/^a_minus = 0.04.*/a_minus = 0.02/'
variant l2_normalised        's/^activity_bin_ms = 100.0/activity_bin_ms = 100.0\nnormalize = "l2"/'
variant refractory_1ms       '/^\[network.recurrent_nodes\]/,/^summation/ s/^refractory_period_ms = 5.0/refractory_period_ms = 1.0/'
variant threshold_3          's/^threshold = 5.0/threshold = 3.0/'
variant threshold_8          's/^threshold = 5.0/threshold = 8.0/'
variant input_weights_in_vector 's/^plastic_edges = "recurrent"/plastic_edges = "input_and_recurrent"/; s/^weight_edges = "recurrent"/weight_edges = "input_and_recurrent"/'
