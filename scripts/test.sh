#!/usr/bin/env bash
# Run the whole test suite (python -m pytest, two processes: pytest-xdist) with the Python that
# scripts/setup.sh installed into.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then py=.venv/bin/python; fi
exec "$py" -m pytest -q -n 2 --dist worksteal "$@"
