#!/usr/bin/env bash
# geodyn against Brian2 2.9 (the field's reference simulator) on the
# experiment-3 network: the agreement table at several time steps, for the
# feedforward control (recurrent weights 0, STDP off) and the full network.
#
#   scripts/crosscheck-brian2.sh [--quick] [--json] [--target numpy|cython|cpp_standalone]
#
# Default: N = 200, 600 ms, images 0-4, dt 0.1, 0.01 and 0.001 ms (slow: the
# numpy target at dt 0.001 ms takes minutes per run). --quick: N = 20, 100 ms,
# image 3, dt 0.1 and 0.01 ms (the CI version, about a minute). --json: the last
# line is one JSON object (python/crosscheck/agreement.py documents it).
# Env: GEODYN_BIN (a built geodyn; otherwise cargo build --release), PYTHON or
# VENV (scripts/venv.sh), IMAGES and DTS (space-separated overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 json=() target=numpy
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --json) json=(--json) ;;
    --target) target=${2:?--target needs numpy, cython or cpp_standalone}; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "crosscheck-brian2.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
. scripts/venv.sh
if [ -z "${GEODYN_BIN:-}" ]; then
  cargo build --release --quiet
  GEODYN_BIN=target/release/geodyn
fi
if [ $quick = 1 ]; then
  n=20 dur=100 images=${IMAGES:-3} dts=${DTS:-0.1 0.01}
else
  n=200 dur=600 images=${IMAGES:-0 1 2 3 4} dts=${DTS:-0.1 0.01 0.001}
fi
# shellcheck disable=SC2086
exec "$PY" python/crosscheck/agreement.py --geodyn "$GEODYN_BIN" --n-recurrent $n \
  --duration-ms $dur --images $images --dt $dts --target "$target" "${json[@]}"
