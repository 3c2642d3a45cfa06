#!/usr/bin/env bash
# Downloads into .whl/ the wheels (CPython 3.12, manylinux x86-64) of the packages cnnjax needs that the lent GPU
# machines' image lacks (its package list: /work/.library/device/KINDS.md), so that a device run can install them
# offline: carry .whl and start the command with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
# The versions are the ones this project's CPU environment resolves (BUILD.md, "GPU").
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PACKAGES=(array-record==0.8.6 dm-tree==0.1.10 docstring-parser==0.18.0 googleapis-common-protos==1.76.0
          grain==0.2.18 immutabledict==4.3.1 importlib-resources==7.1.0 ml-collections==1.1.0 portpicker==1.6.0
          pycocotools==2.0.11 simple-parsing==0.1.9 tensorboardx==2.6.5 tensorflow-datasets==4.9.10
          tensorflow-metadata==1.21.0 termcolor==3.3.0 toml==0.10.2)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
  -d .whl "${PACKAGES[@]}"
python3 -m pip wheel -q --no-deps -w .whl promise==2.3  # pure Python, published as a source archive only
ls .whl
