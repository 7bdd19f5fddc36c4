#!/usr/bin/env bash
# Issue 22's long run: one cosine over several stretches of work. Each call trains MINUTES more,
# resuming exactly from the checkpoint under ~/.cache/cramatte/runs/NAME, then copies the run's
# learning curve and its last weights into docs/runs/ (commit them). If the checkpoint is gone (a new
# machine) but the curve is committed, the schedule goes on from the committed weights (INIT, default
# the run's last ones, else the shipped ones) at step START (default where the curve stops), with a
# fresh optimiser, and says so; the curve past START is dropped.
# usage: [INIT=weights.safetensors START=step] bash scripts/long_run.sh MINUTES
#        (run from the checkout, with cramatte[train] installed)
set -euo pipefail
minutes=$1
name=long1 steps=30000
data=${CRAMATTE_DATA:-../shared/data}
runs=${CRAMATTE_RUNS:-$HOME/.cache/cramatte/runs}
out=$runs/$name curve=docs/runs/${name}_log.csv
last=docs/runs/${name}_last.safetensors  # the weights at the curve's last step
init=${INIT:-$( [ -f "$last" ] && echo "$last" || echo core/cramatte/weights/cramatte.safetensors )}
start=0
if [ ! -f "$out/last.safetensors" ] && [ -f "$curve" ]; then
    start=${START:-$(tail -n 1 "$curve" | cut -d, -f1)}
    echo "checkpoint of $name is gone: going on from $init at step $start, with a fresh optimiser" >&2
    mkdir -p "$out" && cp "$curve" "$out/log.csv" && cp "docs/runs/${name}_eval.csv" "$out/eval.csv" \
        && cp "docs/runs/${name}_eval_ema.csv" "$out/eval_ema.csv" 2>/dev/null || true
fi
cramatte train realtime --data "$data/portraits" --cutouts "$data/cutouts" --backgrounds "$data/backgrounds" \
    --init-weights "$init" --out "$out" --start-step "$start" --max-minutes "$minutes" \
    --steps $steps --batch 8 --size 320 --lr 1e-4 --warmup 100 --seed 8 --real-prob 0.75 \
    --exclude docs/bad_labels.csv --eval-data "$data/dev_real" --eval-every 500 --eval-count 40 --eval-full-every 1000 \
    --ema 0.999
cp "$out/log.csv" "$curve"
cp "$out/model.safetensors" "$last"
for f in eval eval_ema; do
    if [ -f "$out/$f.csv" ]; then cp "$out/$f.csv" "docs/runs/${name}_$f.csv"; fi
done
