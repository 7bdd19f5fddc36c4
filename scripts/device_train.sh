#!/usr/bin/env bash
# Train on a lent GPU machine within a fixed budget and leave the weights and log in OUT.
# usage: bash scripts/device_train.sh PACK_DIR MINUTES OUT [extra `cramatte train` options]
# PACK_DIR comes from scripts/pack_data.py. The learning-rate cosine spans MINUTES of training time
# (--schedule-minutes), whatever the step rate; a checkpoint in OUT/run resumes.
# The GPU image has torch, onnx, onnxruntime, OpenCV, scipy, numba and safetensors but nothing can be
# fetched there: carry pymatting as a wheel in .whl/ (pip download --no-deps -d .whl pymatting).
# If the run passes MINUTES + 3 without finishing, Python's fault handler prints where every thread is.
set -euo pipefail
pack=$1 minutes=$2 out=$3
shift 3
cores=$(nproc --all)  # before OMP_NUM_THREADS=1 below, which plain nproc obeys
echo "cores $cores; $(free -g | awk '/Mem/ {print $2 " GiB RAM"}'); /dev/shm $(df -h /dev/shm | awk 'NR==2 {print $2}')"
python3 -c "import pymatting" 2>/dev/null || python3 -m pip install -q --no-index --no-deps .whl/*.whl
# pymatting compiles its numba kernels on import: once here, into a cache the workers share.
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba} OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1
python3 -c "import pymatting"
export PYTHONPATH="$PWD/core${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1
trunk=$(ls "$pack"/*.onnx 2>/dev/null | head -n1 || true)
workers=$(( cores > 16 ? 14 : cores > 2 ? cores - 2 : 1 ))
copy_back() { cp "$out/run/model.safetensors" "$out/run/log.csv" "$out/" 2>/dev/null || true; }  # the checkpoint stays in OUT/run
trap copy_back EXIT
timeout -s ABRT "$(python3 -c "print(int($minutes * 60 + 180))")" \
    python3 -m cramatte.cli train realtime --data "$pack/portraits" --cutouts "$pack/cutouts" \
    --backgrounds "$pack/backgrounds" ${trunk:+--init-trunk "$trunk"} --out "$out/run" \
    --schedule-minutes "$minutes" --batch 32 --workers "$workers" "$@"
