#!/usr/bin/env bash
# Two stage-1 arms side by side on a 4-GPU (or 2-GPU) device machine, from one carried checkpoint, in
# one call (or four, one GPU each, on a 4-GPU machine when C and D are set; run with PACK=0 then: four
# checkpoints do not fit the return): each arm trains on an equal share of the GPUs (4: GPUs 0,1 arm
# A, 2,3 arm B; 2: one each), each with
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
#   Environment: A, B (each arm's own arguments; C, D: optional third and fourth arms), CKPT (a
#   carried checkpoint folder: carry.json + parts, a run folder left by an earlier call on the same
#   warm machine (runs/s20b: continued), or a weights file such as
#   ldmvfi_core/weights/ldmvfi-default.safetensors with STEP, its stage-1 step:
#   train.from_weights), COMMON, REOPEN (any of A-D: re-initialise that arm's latent path first,
#   ldmvfi_core.train.reopen), TIME_LIMIT (seconds of training per arm, default 460), RUN_A to
#   RUN_D (run folders, default runs/a to runs/d; their names are the names of the packed folders
#   and logs in $OUT), PACK=0 (skip packing the checkpoints), PROGRESS_EVERY (seconds, default 20:
#   how often each arm's last lines go to $OUT/arms_progress.txt while the arms run, for a call that
#   times out; the file is removed when they end).
set -uo pipefail
ckpt="${CKPT:?set CKPT to a carried checkpoint folder}"
# The arms: A and B always, C and D when set (then one GPU each on a 4-GPU machine).
declare -A args=([A]="${A:-}" [B]="${B:-}" [C]="${C:-}" [D]="${D:-}")
declare -A runs=([A]="${RUN_A:-runs/a}" [B]="${RUN_B:-runs/b}" [C]="${RUN_C:-runs/c}" [D]="${RUN_D:-runs/d}")
arms=(A B)
[[ -n "${C:-}" ]] && arms+=(C)
[[ -n "${D:-}" ]] && arms+=(D)
common="${COMMON:---channels-last --mattes 0.1}"
started=$SECONDS
nvidia-smi -L 2>/dev/null
# An equal share of the machine's GPUs for each arm (2 arms on 4: 0,1 and 2,3; 2 on 2, 4 on 4: one each).
per_arm=$(( $(nvidia-smi -L | wc -l) / ${#arms[@]} ))
(( per_arm >= 1 )) || { echo "ab_slice: ${#arms[@]} arms need at least ${#arms[@]} GPUs"; exit 1; }
# Each arm's run folder is emptied first: a CKPT that is one of them would be deleted with it.
for arm in "${arms[@]}"; do
  if [[ -e "${runs[$arm]}" && "$ckpt" -ef "${runs[$arm]}" ]]; then
    echo "ab_slice: CKPT $ckpt is arm $arm's run folder, which each arm starts empty: name another RUN_$arm"
    exit 1
  fi
done
for arm in "${arms[@]}"; do rm -rf "${runs[$arm]}"; done
first="${runs[A]}"
if [[ "$ckpt" == *.safetensors ]]; then  # a weights file (the shipped model): its autoencoder, at STEP
  python3 -m ldmvfi_core.train.from_weights "$ckpt" "$first" --step "${STEP:-0}" || exit 1
elif [[ -d "$ckpt/checkpoints" ]]; then  # a run folder still on this warm machine: continue it
  cp -r "$ckpt" "$first" || exit 1
else
  python3 -m ldmvfi_core.train.carry unpack "$ckpt" "$first" || exit 1
fi
for arm in "${arms[@]:1}"; do cp -r "$first" "${runs[$arm]}" || exit 1; done
# REOPEN=A, B, AB, ...: that arm starts from the checkpoint with its latent path re-initialised
# (python -m ldmvfi_core.train.reopen; docs/NOTES.md, the unused latent).
for arm in "${arms[@]}"; do
  if [[ "${REOPEN:-}" == *"$arm"* ]]; then
    ckpt_file=$(ls "${runs[$arm]}"/checkpoints/step_*.pt | tail -1)
    python3 -m ldmvfi_core.train.reopen "$ckpt_file.reopened" "$ckpt_file" && mv "$ckpt_file.reopened" "$ckpt_file" \
      || exit 1
  fi
done
declare -A pids
for i in "${!arms[@]}"; do
  arm=${arms[$i]}
  gpus=$(seq -s, $((i * per_arm)) $(((i + 1) * per_arm - 1)))
  echo "ab_slice: arm $arm on GPUs $gpus"
  # Word splitting of $common and the arm's arguments is wanted: they are argument lists.
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES="$gpus" GPUS=$per_arm RUN="${runs[$arm]}" SITE="/tmp/site_$arm" \
    TIME_LIMIT="${TIME_LIMIT:-460}" bash tools/train_slice.sh $common ${args[$arm]} > "/tmp/arm_$arm.txt" 2>&1 &
  pids[$arm]=$!
done
# While the arms train, each one's last lines are mirrored into $OUT every PROGRESS_EVERY seconds: a
# call that runs past its limit returns only what $OUT holds, and then shows where each arm stood
# (session 23 lost a call blind). Removed once the arms end: a packing call needs all 8 files.
progress="${OUT:-train_slice.out}/arms_progress.txt"
mkdir -p "$(dirname "$progress")"
mirror() {
  for arm in "${arms[@]}"; do
    echo "== arm $arm (${runs[$arm]}), $((SECONDS - started)) s"
    tail -n 8 "/tmp/arm_$arm.txt" 2>/dev/null
  done > "$progress.part" && mv "$progress.part" "$progress"
}
# (Its output to /dev/null: a sleep left behind by the kill below must not hold the call's stdout open.)
(while sleep "${PROGRESS_EVERY:-20}"; do mirror; done) > /dev/null 2>&1 &
mirror_pid=$!
status=0
for arm in "${arms[@]}"; do
  wait "${pids[$arm]}" || { status=1; echo "arm $arm failed:"; tail -5 "/tmp/arm_$arm.txt"; }
done
kill "$mirror_pid" 2>/dev/null
wait "$mirror_pid" 2>/dev/null
rm -f "$progress" "$progress.part"
for arm in "${arms[@]}"; do
  run=${runs[$arm]}
  # The newest end only: a continued run's log carries the run's earlier slices too.
  echo "== $run: $(grep -h '"event": "end"' "${OUT:-train_slice.out}/$(basename "$run")_log.jsonl" 2>/dev/null | tail -1)"
done
count=$(find "${OUT:-train_slice.out}" -type f | wc -l)
bytes=$(find "${OUT:-train_slice.out}" -type f -printf '%s\n' | awk '{ total += $1 } END { print total + 0 }')
if (( count > 8 || bytes > 64 * 1024 * 1024 )); then
  echo "ab_slice: $count files, $bytes bytes in \$OUT; the device returns 8 files and 64 MiB:" \
    "fetch the rest in a second call now"
fi
echo "ab_slice: $((SECONDS - started)) s"
exit $status
