# Sourced by the Brian2 scripts: sets PY to a Python with the pinned packages.
# PYTHON=... uses that interpreter as it is; otherwise VENV (default .venv-ci,
# the one .ci/run makes) is created with the pins if it has no python yet.
# numpy is pinned below 2.4: Brian2 2.9.0 uses ndarray.ptp, which numpy 2.4 removed.
PINS="brian2==2.9.0 numpy==2.3.5 pytest==9.2.0 h5py==3.16.0 libsonata==0.2.2"
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
else
  VENV=${VENV:-.venv-ci}
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setting up $VENV ($PINS)" >&2
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet $PINS
  fi
  PY=$VENV/bin/python
fi
