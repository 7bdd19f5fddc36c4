#!/usr/bin/env bash
# Train on a lent GPU machine within a fixed budget and leave the weights in OUT.
# usage: bash scripts/device_train.sh PACK_DIR MINUTES OUT [extra `cramatte train` options]
# PACK_DIR comes from scripts/pack_data.py; a checkpoint in OUT/run resumes exactly.
set -euo pipefail
pack=$1 minutes=$2 out=$3
shift 3
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q torch
python3 -m pip install -q -e . safetensors onnx pymatting scipy
trunk=$(ls "$pack"/*.onnx 2>/dev/null | head -n1 || true)
python3 -m cramatte.cli train realtime --data "$pack/portraits" --cutouts "$pack/cutouts" \
    --backgrounds "$pack/backgrounds" ${trunk:+--init-trunk "$trunk"} --out "$out/run" \
    --max-minutes "$minutes" --batch 32 --workers 8 "$@"
cp "$out/run/model.safetensors" "$out/run/log.csv" "$out/"
