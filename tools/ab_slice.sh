#!/usr/bin/env bash
# Two stage-1 arms side by side on a 4-GPU (or 2-GPU) device machine, from one carried checkpoint, in
# one call: each arm trains on half the GPUs (4: GPUs 0,1 arm A, 2,3 arm B; 2: one each), each with
# `tools/train_slice.sh`, and each packs its checkpoint and log into $OUT (8 files, about 49 MB: just inside the return's
# 8 files and 64 MiB). A checkpoint with a trained discriminator is 35 MB, three parts: then the
# second arm's last parts do not come back (session 10), so the script says so; fetch them from the
# still-warm machine at once (`carry pack` the arm's checkpoint into $OUT in a second call).
# Sessions 6-8 ran every comparison this way; judge the two with `tools/ae_probe.py eval`.
#
#   carry CKPT, .carry/train_cache and .carry/pwhl (move the large tracked files aside first, the
#   shipped weights too unless CKPT is that file: docs/NOTES.md), then run
#       CKPT=.carry/ckpt_s1m A="--lr 5e-5" B="--lr 5e-5 --offset-smoothness 0.02" bash tools/ab_slice.sh
#   Both arms get COMMON (default: --channels-last --mattes 0.1) before their own arguments, after
#   the lineage's options of train_slice.sh (later ones win).
#   Environment: CKPT (a carried checkpoint folder: carry.json + parts, or a weights file such as
#   ldmvfi_core/weights/ldmvfi-default.safetensors with STEP, its stage-1 step: train.from_weights), A, B, COMMON, REOPEN (A, B
#   or AB: re-initialise that arm's latent path first, ldmvfi_core.train.reopen), TIME_LIMIT
#   (seconds of training per arm, default 460), RUN_A / RUN_B (run folders, default runs/a, runs/b;
#   their names are the names of the packed folders and logs in $OUT).
set -uo pipefail
ckpt="${CKPT:?set CKPT to a carried checkpoint folder}"
run_a="${RUN_A:-runs/a}"
run_b="${RUN_B:-runs/b}"
common="${COMMON:---channels-last --mattes 0.1}"
started=$SECONDS
nvidia-smi -L 2>/dev/null
rm -rf "$run_a" "$run_b"
if [[ "$ckpt" == *.safetensors ]]; then  # a weights file (the shipped model): its autoencoder, at STEP
  python3 -m ldmvfi_core.train.from_weights "$ckpt" "$run_a" --step "${STEP:-0}" || exit 1
else
  python3 -m ldmvfi_core.train.carry unpack "$ckpt" "$run_a" || exit 1
fi
cp -r "$run_a" "$run_b"
# REOPEN=A, B or AB: that arm starts from the checkpoint with its latent path re-initialised
# (python -m ldmvfi_core.train.reopen; docs/NOTES.md, the unused latent).
for arm in A B; do
  if [[ "${REOPEN:-}" == *"$arm"* ]]; then
    run=$([[ $arm == A ]] && echo "$run_a" || echo "$run_b")
    ckpt_file=$(ls "$run"/checkpoints/step_*.pt | tail -1)
    python3 -m ldmvfi_core.train.reopen "$ckpt_file.reopened" "$ckpt_file" && mv "$ckpt_file.reopened" "$ckpt_file" \
      || exit 1
  fi
done
# Half the machine's GPUs for each arm (4: 0,1 and 2,3; 2: 0 and 1).
per_arm=$(( $(nvidia-smi -L | wc -l) / 2 ))
(( per_arm >= 1 )) || { echo "ab_slice: needs at least 2 GPUs"; exit 1; }
gpus_a=$(seq -s, 0 $((per_arm - 1)))
gpus_b=$(seq -s, "$per_arm" $((2 * per_arm - 1)))
echo "ab_slice: arm A on GPUs $gpus_a, arm B on GPUs $gpus_b"
# Word splitting of $common, $A and $B is wanted: they are argument lists.
# shellcheck disable=SC2086
CUDA_VISIBLE_DEVICES="$gpus_a" GPUS=$per_arm RUN="$run_a" SITE=/tmp/site_a TIME_LIMIT="${TIME_LIMIT:-460}" \
  bash tools/train_slice.sh $common ${A:-} > /tmp/arm_a.txt 2>&1 &
arm_a=$!
# shellcheck disable=SC2086
CUDA_VISIBLE_DEVICES="$gpus_b" GPUS=$per_arm RUN="$run_b" SITE=/tmp/site_b TIME_LIMIT="${TIME_LIMIT:-460}" \
  bash tools/train_slice.sh $common ${B:-} > /tmp/arm_b.txt 2>&1 &
arm_b=$!
status=0
wait $arm_a || { status=1; echo "arm A failed:"; tail -5 /tmp/arm_a.txt; }
wait $arm_b || { status=1; echo "arm B failed:"; tail -5 /tmp/arm_b.txt; }
for run in "$run_a" "$run_b"; do
  echo "== $run: $(grep -h '"event": "end"' "${OUT:-train_slice.out}/$(basename "$run")_log.jsonl" 2>/dev/null)"
done
count=$(find "${OUT:-train_slice.out}" -type f | wc -l)
bytes=$(find "${OUT:-train_slice.out}" -type f -printf '%s\n' | awk '{ total += $1 } END { print total + 0 }')
if (( count > 8 || bytes > 64 * 1024 * 1024 )); then
  echo "ab_slice: $count files, $bytes bytes in \$OUT; the device returns 8 files and 64 MiB:" \
    "fetch the rest in a second call now"
fi
echo "ab_slice: $((SECONDS - started)) s"
exit $status
