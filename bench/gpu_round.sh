#!/usr/bin/env bash
# One device call that re-measures issue 8 after a change (one H100, one process at a time:
# benchmarks sharing a host's CPUs give unusable figures, session 8):
#   run: WHEELS=.carry/oiio bash bench/gpu_round.sh
# Steps, each optional through the environment:
#   TESTS=1     the GPU tests (~110 s)
#   VARIANTS    `bench/speed.py` runs at 1920x1080, 10 steps, released config, bf16, graphs,
#               compiled, 8 in-betweens along a shot, one after the other: a `;`-separated list
#               of extra flag sets, each named by its flags (" " = the defaults); default: the
#               defaults, then `--sequence-batch 8` (8 in-betweens per call: one batched DDIM
#               run, then one decode per frame), then the same with `--decode-batch 8` (one
#               decode of all 8, as before session 9). Each run compiles for a minute or more.
#               Other candidates: `--heads padded-first`, `--compile-mode max-autotune-no-cudagraphs`.
#   ACCURACY=1  `bench/fast_path_accuracy.py --compile` (with OpenImageIO from WHEELS it adds a
#               real-frame pair; ~200 s)
#   WHEELS      a folder of wheels to install first (default .whl)
# Everything lands in $OUT (or ./gpu_round.out); copy the JSON files into bench/raw/ and the
# figures into bench/RESULTS.md with the card and date.
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
if [[ "${TESTS:-1}" == 1 ]]; then
  section "GPU tests"
  timeout 150 python3 -m pytest -q -p no:cacheprovider --tb=line -rf tests/gpu 2>&1 | tail -6
fi
IFS=';' read -r -a variants <<< "${VARIANTS- ;--sequence-batch 8;--sequence-batch 8 --decode-batch 8}"
for variant in "${variants[@]}"; do
  read -r -a flags <<< "$variant"
  name=$(echo "${variant:-default}" | tr -c 'a-zA-Z0-9\n' '_' | sed 's/^_*//')
  section "end to end, released, bf16, compiled, 1080p, 10 steps, along a shot: ${variant:-defaults}"
  timeout 300 python3 bench/speed.py --config released --precision bfloat16 --cuda-graphs --compile \
    --sizes 1920x1080 --steps 10 --sequence 24 "${flags[@]}" --out "$out/speed_released_1080p_${name:-default}.json" \
    2>&1 | quiet | tail -3
done
if [[ "${ACCURACY:-1}" == 1 ]]; then
  section "fast path accuracy (bf16 + graphs, and compiled)"
  timeout 240 python3 bench/fast_path_accuracy.py --config released --device cuda --compile \
    --out "$out/fast_path_accuracy_released.json" 2>&1 | quiet | tail -8
fi
section "done"
