#!/usr/bin/env bash
# The GPU checks of the speed-and-scale work, as one script for a lent GPU machine: the torch
# parity tests on CUDA, one step + ridge readout at d = N = n = 16,000 (GPU vs the machine's CPU)
# and 32,000 (GPU only) in float32, and batched seeds on CUDA. Tables go to ${OUT:-gpu-out}/;
# copy them into docs/performance.md (f) and (g).
#
# The device image has torch, numpy, scipy, pandas, pyyaml, click, rich, matplotlib and pytest
# but not pydantic: carry its wheels. Here, from the repository root (Python 3.12 there):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl pydantic pydantic-core annotated-types typing-inspection
# (pydantic's pinned pydantic-core version: `unzip -p .whl/pydantic-*.whl '*/METADATA' |
# grep Requires-Dist`), then run `bash benchmarks/gpu_check.sh` with `.whl` carried.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
step() {  # name, time limit (s), command...: run one check, keep its output, go on if it fails
    local name=$1 limit=$2
    shift 2
    echo "== $name" | tee -a "$out/log.txt"
    start=$(date +%s)
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    echo "   exit $?, $(( $(date +%s) - start )) s" | tee -a "$out/log.txt"
}
step nvidia-smi 30 nvidia-smi
step pytest-torch 180 python3 -m pytest -q -p no:cacheprovider -m torch tests/core
step gpu-16000 240 python3 benchmarks/run.py gpu --size 16000 --repeats 1
step batched 120 python3 benchmarks/run.py batched --size 1000 --repeats 3
step gpu-32000 180 python3 benchmarks/run.py gpu --size 32000 --repeats 1
