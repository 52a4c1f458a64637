#!/usr/bin/env bash
# One stage-1 training slice on the device machine: DDP over its GPUs, then the log and a carried
# (slimmed, split) checkpoint into $OUT. The recipe of docs/NOTES.md in one place.
#
#   call 1 (fresh machine, carry .carry/ckpt):
#       python3 -m ldmvfi_core.train.carry unpack .carry/ckpt runs/s1
#   call 2.. (carry .carry/train_cache and .carry/pwhl):
#       bash tools/train_slice.sh                       # all GPUs, the lineage's options
#       GPUS=2 CUDA_VISIBLE_DEVICES=2,3 RUN=runs/s1cd bash tools/train_slice.sh --context-dropout 0.25
#   Extra arguments go to `ldmvfi train` after the lineage's own (later ones win).
#   The rate is pinned (--lr 6.4e-4, the rate of a global batch of 64): by default it grows with
#   the number of GPUs, and a 4-GPU slice at 1.28e-3 (session 7) left the model worse than it found it.
#   Environment: RUN (run folder, default runs/s1), GPUS (processes, default: every GPU seen),
#   TIME_LIMIT (seconds of training, default 510), PACK (0: skip packing the checkpoint; the
#   machine returns at most 64 MiB a call), SITE (where the wheels go, default /tmp/site: give two
#   runs started together their own, so one install does not replace files the other is importing).
# The autoencoder's moving average is kept (--ae-ema 0.998, about the last 500 steps): session 23 found
# it steadier than the last iterate, never with its UCF101 SSIM collapses, and level or ahead on the
# validation set; export, --init-from and the soup take it. Pass --ae-ema 0 to drop it.
# The GAN term stays off (--disc-start 1e9): session 10 let it start at step 20,000 and both arms
# lost 0.3-0.6 dB on the eval sets within 400 steps (l1 0.0234 -> 0.0256). Pass --disc-start N to try it.
set -euo pipefail
out="${OUT:-train_slice.out}"
run="${RUN:-runs/s1}"
gpus="${GPUS:-$(nvidia-smi -L | wc -l)}"
name="$(basename "$run")"
# NVLink multicast off (the device notes: it is not set up on these machines).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# The perceptual network's wheels; /tmp/site, not an untracked repo folder: a call replaces those.
site="${SITE:-/tmp/site}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
  .carry/pwhl/*.whl
export PYTHONPATH="$site:$PWD"
torchrun --standalone --nproc-per-node "$gpus" -m ldmvfi_core.train.loop --stage 1 --config small \
  --data .carry/train_cache --crop 256 --steps 100000 --num-workers 14 --perceptual on --precision bf16 \
  --flow-teacher 0.05 --disc-start 1000000000 --ae-ema 0.998 --resume --out "$run" --batch-size 32 --lr 6.4e-4 \
  --time-limit "${TIME_LIMIT:-510}" --log-every 50 "$@"
mkdir -p "$out"
cp "$run/train_log.jsonl" "$out/${name}_log.jsonl"
if [[ "${PACK:-1}" != 0 ]]; then
  python3 -m ldmvfi_core.train.carry pack "$run" "$out/$name" --part-mib 15
fi
