#!/usr/bin/env bash
# The side-by-side speed bench: geodyn against Brian2 2.9 cpp_standalone (g++)
# at dt 0.1 and 0.01 ms on the same experiment-3 network (N = 200, 600 ms),
# the same digits and the same input trains; CPU time per digit for the loop
# and for the whole process (the one-off compile excluded); runs alternated;
# medians and ratios as a table (python/crosscheck/bench_brian2.py documents
# what is timed).
#
#   scripts/bench-vs-brian2.sh [--json] [--digits D] [--rounds R]
#
# --json: the last line is {"geodyn_loop_ms", "geodyn_process_ms",
# "brian2_cpp": {"<dt>": {"loop_ms", "process_ms"}}}. Env: GEODYN_BIN (a built
# geodyn; otherwise cargo build --release), PYTHON or VENV (scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
json=() digits=5 rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --json) json=(--json) ;;
    --digits) digits=${2:?--digits needs a number}; shift ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench-vs-brian2.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
command -v g++ > /dev/null || { echo "bench-vs-brian2.sh: g++ not found (Brian2 cpp_standalone needs it)" >&2; exit 1; }
. scripts/venv.sh
if [ -z "${GEODYN_BIN:-}" ]; then
  cargo build --release --quiet
  GEODYN_BIN=target/release/geodyn
fi
exec "$PY" python/crosscheck/bench_brian2.py --geodyn "$GEODYN_BIN" --digits "$digits" \
  --rounds "$rounds" --dt 0.1 0.01 "${json[@]}"
