#!/usr/bin/env bash
# One device call that re-measures issue 8 after a change (about 7-8 minutes on one H100; one
# process at a time: benchmarks sharing a host's CPUs give unusable figures, session 8):
#   run: WHEELS=.carry/oiio bash bench/gpu_round.sh   (WHEELS: a folder of wheels to install,
#        default .whl; with OpenImageIO the accuracy check adds a real-frame pair)
# Everything lands in $OUT (or ./gpu_round.out); copy the JSON files into bench/ and the figures
# into bench/RESULTS.md with the card and date.
set -uo pipefail
out="${OUT:-gpu_round.out}"
wheels="${WHEELS:-.whl}"
mkdir -p "$out"
if compgen -G "$wheels/*.whl" >/dev/null; then
  pip install -q --no-index --no-deps --target /tmp/site "$wheels"/*.whl >/dev/null 2>&1 && export PYTHONPATH="/tmp/site:."
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
section() { echo "== $1 ($(date +%T))"; }
quiet() { grep -v -i warn; }
section "GPU tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider --tb=line -rf tests/gpu 2>&1 | tail -6
for variant in crop heads-on-padding; do
  section "end to end, released, bf16, compiled, 1080p, 10 steps: $variant"
  flag=(--sequence 8); [[ $variant == heads-on-padding ]] && flag=(--heads-on-padding)
  timeout 150 python3 bench/speed.py --config released --precision bfloat16 --cuda-graphs --compile \
    --sizes 1920x1080 --steps 10 "${flag[@]}" --out "$out/speed_released_1080p_$variant.json" 2>&1 | quiet | tail -3
done
section "fast path accuracy (bf16 + graphs, and compiled)"
timeout 240 python3 bench/fast_path_accuracy.py --config released --device cuda --compile \
  --out "$out/fast_path_accuracy_released.json" 2>&1 | quiet | tail -8
section "done"
