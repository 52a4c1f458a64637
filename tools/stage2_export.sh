#!/usr/bin/env bash
# Stage 2 (the U-Net) for a carried stage-1 checkpoint on the device machine, then the float16
# export split into 15-MiB parts in $OUT with its sha256 (the return limit is 16 MiB a file), ready
# for `tools/ship_candidate.py /work/.device/N --sha256 HEX --eval ../shared/data/eval`.
#
#   carry CKPT, .carry/train_cache and .carry/pwhl (not needed by stage 2 itself, but the shared
#   setup of train_slice.sh installs them), then run
#       CKPT=.carry/ckpt_s1m TIME_LIMIT=180 bash tools/stage2_export.sh
#   or, after a stage-1 slice in the same call, STAGE1=runs/a/checkpoints/step_N.pt instead of CKPT.
#   Environment: CKPT or STAGE1, TIME_LIMIT (seconds of training, default 180: the shipped model's
#   U-Net does not act yet, ~900 steps are plenty), RUN (default runs/s2). Extra arguments go to
#   `ldmvfi train --stage 2` (later ones win).
set -uo pipefail
out="${OUT:-stage2.out}"
run="${RUN:-runs/s2}"
mkdir -p "$out"
if [[ -z "${STAGE1:-}" ]]; then
  python3 -m ldmvfi_core.train.carry unpack "${CKPT:?set CKPT (a carried checkpoint) or STAGE1 (a .pt)}" runs/stage1 || exit 1
  STAGE1=$(ls runs/stage1/checkpoints/step_*.pt | sort | tail -1)
fi
export PYTHONPATH="${SITE:-/tmp/site}:$PWD"
rm -rf "$run"
python3 -m ldmvfi_core.train.loop --stage 2 --config small --data .carry/train_cache --init-from "$STAGE1" \
  --out "$run" --batch-size 64 --lr 1e-4 --precision bf16 --num-workers 12 --steps 100000 \
  --time-limit "${TIME_LIMIT:-180}" --channels-last --log-every 50 --export "$run/export.safetensors" \
  --export-dtype float16 "$@" > "$out/stage2_stdout.txt" 2>&1 || { tail -5 "$out/stage2_stdout.txt"; exit 1; }
cp "$run/train_log.jsonl" "$out/stage2_log.jsonl"
sha256sum "$run/export.safetensors" | tee "$out/export.sha256"
split -b 15M -d "$run/export.safetensors" "$out/export.part"
ls -la "$out"
