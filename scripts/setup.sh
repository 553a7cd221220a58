#!/usr/bin/env bash
# Install sdfkit with everything it needs on a Debian or Ubuntu machine, then run the demo:
# prepare the bundled MNIST digits and write a preview PNG.
#
#   bash scripts/setup.sh                # .venv + install + demo
#   bash scripts/setup.sh --no-demo      # install only
#   bash scripts/setup.sh --system       # install into the active Python environment instead
#
# Python: a project virtual environment in .venv (made if missing), so that pip never reports
# conflicts with unrelated packages of a shared interpreter. When the interpreter it is made from
# already imports torch (a CUDA build, say), .venv sees that interpreter's packages so the build is
# kept; otherwise .venv is isolated. --system installs into the active environment (a virtualenv,
# a conda env or the interpreter on PATH) instead. PyTorch: installed (torch==2.13.0) only when no
# torch is importable.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=1
system=0
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    --system) system=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (use --no-demo, --system)" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }

step "system libraries (OSMesa/EGL/GL for headless rendering, libusb for open3d)"
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    libosmesa6 libegl1 libgl1 libusb-1.0-0 >/dev/null
else
  echo "no apt-get: install OSMesa, EGL, OpenGL and libusb-1.0 with your system's package manager"
fi

py=${PYTHON:-python3}
if [ "$system" = 1 ]; then
  step "Python: the active environment, $("$py" -c 'import sys; print(sys.prefix)') (--system)"
else
  if [ ! -x .venv/bin/python ]; then
    if "$py" -c "import torch" >/dev/null 2>&1; then
      step "Python: making .venv, with access to $py's packages (it has torch, which is kept)"
      "$py" -m venv --system-site-packages .venv
    else
      step "Python: making an isolated virtual environment in .venv"
      "$py" -m venv .venv
    fi
  else
    step "Python: using the existing .venv"
  fi
  py=.venv/bin/python
fi
"$py" -c 'import sys; assert sys.version_info >= (3, 11), "sdfkit needs Python 3.11 or newer"'

step "PyTorch"
if "$py" -c "import torch" >/dev/null 2>&1; then
  echo "keeping the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
else
  "$py" -m pip install -q "torch==2.13.0"
fi

step "sdfkit and its Python dependencies"
"$py" -m pip install -q -e ".[render,cluster,remote,dev]"
# pyrender pins PyOpenGL==3.1.0, which cannot render headless; its other needs came with [render]
"$py" -m pip install -q --no-deps "pyrender==0.1.45"

step "s3rver (an S3 API server on Node.js) for the object-storage tests and benchmarks, into .tools/"
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null \
    || echo "could not install Node.js: the s3rver tests will be skipped"
fi
if command -v npm >/dev/null 2>&1; then
  npm install --prefix .tools --no-audit --no-fund --loglevel=error s3rver@3.7.1 >/dev/null \
    && "$py" scripts/s3rver_suffix_ranges.py .tools/node_modules/s3rver \
    || echo "could not install s3rver: the s3rver tests will be skipped"
else
  echo "no Node.js: the s3rver tests will be skipped"
fi

bin=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
"$bin/sdfkit" env

if [ "$demo" = 1 ]; then
  step "demo: the bundled digits -> out/mnist.zarr, preview in out/mnist-preview.png"
  "$bin/sdfkit" prepare-mnist -o out/mnist.zarr
  "$bin/sdfkit" show out/mnist.zarr --sheet 24 -o out/mnist-preview.png
  step "demo: 12 procedural shapes with ShapeNet's defects -> out/shapes.zarr"
  [ -d out/shapes ] || "$bin/sdfkit" make-shapes out/shapes --n 12
  "$bin/sdfkit" prepare-shapenet out/shapes --split out/shapes/splits/train.json \
    --split out/shapes/splits/test.json -o out/shapes.zarr
  step "demo: renders, a picture and a check -> out/renders.zarr, out/shape.png"
  "$bin/sdfkit" render out/shapes.zarr -o out/renders.zarr --views 8 --size 64
  "$bin/sdfkit" show out/shapes.zarr --index 0 -o out/shape.png
  "$bin/sdfkit" validate out/shapes.zarr
fi
if [ "$system" = 1 ]; then
  step "done, installed into $("$py" -c 'import sys; print(sys.prefix)'). Run the tests with: bash scripts/test.sh"
else
  step "done, installed into .venv (activate: source .venv/bin/activate). Run the tests with: bash scripts/test.sh"
fi
