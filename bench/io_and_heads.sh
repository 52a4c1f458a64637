#!/usr/bin/env bash
# One device call (one H100) for what session 15 could not measure on a GPU:
#   1. the retime's I/O overlap with the model on the GPU: `bench/retime_io.py` (in-line writes,
#      background writes, background writes + read-ahead), 1080p, shipped model, bf16, 10 steps,
#      the retime's defaults (CUDA graphs, no compile);
#   2. cuDNN's fused conv+ReLU in the heads by GPU kernel time of one compiled decode
#      (`bench/codec_modules.py --kernels --compile`), `padded-block` (the default) against
#      `padded-block-relu` (opt-in).
#   run: WHEELS=.carry/oiio bash bench/io_and_heads.sh      (OpenImageIO wheel for Python 3.12)
# Everything lands in $OUT (or ./io_and_heads.out): copy the JSON files into bench/raw/ and the
# figures into bench/RESULTS.md with the card and date.
set -uo pipefail
out="${OUT:-io_and_heads.out}"
wheels="${WHEELS:-.carry/oiio}"
mkdir -p "$out"
if compgen -G "$wheels/*.whl" >/dev/null; then
  pip install -q --no-index --no-deps --target /tmp/site "$wheels"/*.whl >/dev/null 2>&1 && export PYTHONPATH="/tmp/site:."
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
echo "== retime I/O, 1080p, cuda ($(date +%T))"
timeout 300 python3 bench/retime_io.py --frames 17 --device cuda --precision bfloat16 --steps 10 --repeats 2 \
  --out "$out/retime_io_cuda.json" 2>&1 | grep '^{' | tail -7
for heads in padded-block padded-block-relu; do
  (( SECONDS > 480 )) && break
  echo "== decode kernels, compiled, heads $heads ($(date +%T))"
  timeout $((590 - SECONDS)) python3 bench/codec_modules.py --config released --size 1920x1080 --kernels --compile \
    --heads "$heads" --out "$out/codec_kernels_${heads}.json" 2>&1 | grep -v -i warn | tail -4
done
echo "== done ($(date +%T))"
