#!/usr/bin/env bash
# Submits a sharded encode to Slurm: an array of NSHARDS encode tasks
# (scripts/slurm-encode.sbatch), then a merge job (scripts/slurm-merge.sbatch)
# that starts only when every task has succeeded (afterok). Prints the two job
# ids. Afterwards: `geodyn evaluate $OUT`.
#
#   NSHARDS=16 CONFIG=weights OUT=runs/weights GEODYN=$PWD/target/release/geodyn \
#     scripts/slurm-submit.sh [more sbatch options, e.g. --partition=cpu]
#
# Parameters (environment): NSHARDS (default 8) and those of the two scripts
# (GEODYN, CONFIG, OUT, SHARDS, GEODYN_ARGS, THREADS), exported to the jobs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export NSHARDS=${NSHARDS:-8}
export GEODYN=${GEODYN:-geodyn} CONFIG=${CONFIG:-weights} OUT=${OUT:-runs/encode}
export SHARDS=${SHARDS:-$OUT.shards}
if ! [[ "$NSHARDS" =~ ^[1-9][0-9]*$ ]]; then
  echo "slurm-submit.sh: NSHARDS = $NSHARDS: expected a positive integer" >&2
  exit 2
fi
array=$(sbatch --parsable --export=ALL --array="0-$((NSHARDS - 1))" "$@" "$here/slurm-encode.sbatch")
array=${array%%;*} # --parsable prints "id" or "id;cluster"
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$array" "$@" "$here/slurm-merge.sbatch")
echo "encode array: $array ($NSHARDS tasks), merge: ${merge%%;*} (after the array succeeds) -> $OUT"
