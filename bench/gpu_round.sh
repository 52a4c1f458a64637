#!/usr/bin/env bash
# One device call that re-measures issue 8 after a change (about 8-9 minutes on an H100):
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
timeout 120 python3 -m pytest -q -p no:cacheprovider --tb=line -rf tests/gpu 2>&1 | tail -15
section "U-Net step: SDPA / fused window kernel, batched steps"
timeout 100 python3 bench/profile_step.py --config released --sizes 448x256,1920x1080 --batches 2,4,8 \
  --variants bf16_weights_sdpa,bf16_channels_last_sdpa,bf16_channels_last \
  --out "$out/profile_released_h100.json" 2>&1 | quiet | tail -8
section "U-Net step: torch.compile with the fused kernel, 1080p"
timeout 130 python3 bench/profile_step.py --config released --sizes 1920x1080 --variants bf16_compiled \
  --out "$out/profile_released_compiled_h100.json" 2>&1 | quiet | tail -2
section "fast path accuracy"
timeout 70 python3 bench/fast_path_accuracy.py --config released --device cuda \
  --out "$out/fast_path_accuracy_released_h100.json" 2>&1 | quiet
section "end to end, released, bf16"
timeout 110 python3 bench/speed.py --config released --precision bfloat16 --cuda-graphs \
  --sizes 448x256,1920x1080 --steps 200,10 --batches 4,8 --out "$out/speed_released_bf16_h100.json" 2>&1 | quiet
section "end to end, small, bf16"
timeout 50 python3 bench/speed.py --config small --precision bfloat16 --cuda-graphs \
  --sizes 448x256,1920x1080,3840x2160 --steps 200,10 --out "$out/speed_small_bf16_h100.json" 2>&1 | quiet
section "done"
