#!/usr/bin/env bash
# Score training arms on the device's GPUs, all on one path (tools/ae_probe.py eval: Middlebury and
# UCF101 PSNR / SSIM of each run's newest checkpoint, live and, with --ae-ema, its average), on the
# warm machine that trained them. Runs are scored side by side, one a GPU (~25 s each), and
# printed in the order given.
#   bash tools/eval_arms.sh runs/s20a runs/s20b ...     (carry .carry/eval = ../shared/data/eval, .carry/oiio)
#   AT=24000 bash tools/eval_arms.sh runs/s22a ...      (each run's checkpoint of that step instead)
#   WINNER=runs/s20b bash tools/eval_arms.sh            (no scoring: pack that run into $OUT to fetch it)
#   SETS=".carry/val .carry/eval" bash tools/eval_arms.sh runs/s22a ...   (the validation set first:
#       tools/build_validation_set.py; choose on it, report on the eval sets; default SETS=.carry/eval)
# With $OUT set, each set's scores also go to $OUT/eval_scores_partial.jsonl as soon as they exist
# (a timed-out call still returns them); the file is removed once every run is printed.
# START (default 24000, the shipped weights' stage-1 step since session 25): the step the arms started from; a run whose newest checkpoint is still that
# one did not train, and is reported rather than scored (it would score as its starting point).
set -uo pipefail
if [[ -n "${WINNER:-}" ]]; then
  exec python3 -m ldmvfi_core.train.carry pack "$WINNER" "$OUT/$(basename "$WINNER")" --part-mib 15
fi
pip install -q --no-index --no-deps --target /tmp/site .carry/oiio/*.whl 2>/dev/null
export PYTHONPATH="/tmp/site:$PWD"
start=$(printf 'step_%08d.pt' "${START:-24000}")
status=0
# Which checkpoint of each run to score.
checkpoints=()
for run in "$@"; do
  if [[ -n "${AT:-}" ]]; then
    ck="$run/checkpoints/$(printf 'step_%08d.pt' "$AT")"
    [[ -f "$ck" ]] || { echo "== $run: no checkpoint of step $AT"; status=1; continue; }
  else
    ck=$(ls "$run"/checkpoints/step_*.pt 2>/dev/null | tail -1)
    if [[ -z "$ck" || "$(basename "$ck")" == "$start" ]]; then
      echo "== $run: did not train (newest checkpoint: ${ck:-none})"; status=1; continue
    fi
  fi
  checkpoints+=("$ck")
done
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
(( gpus >= 1 )) || gpus=1
scores=$(mktemp -d)
# Each set's scores also reach $OUT as soon as they exist (session 24 lost a call's five scored
# runs to a timeout: this script printed nothing until the last run was done). Removed at the end,
# when stdout has them all, in order.
partial=${OUT:+$OUT/eval_scores_partial.jsonl}
[[ -n "$partial" ]] && mkdir -p "$OUT" && : > "$partial"
read -ra sets <<< "${SETS:-.carry/eval}"
for i in "${!checkpoints[@]}"; do
  # Both the last iterate and, where the run kept one (--ae-ema), the average: one JSON line each per set.
  (for set in "${sets[@]}"; do
     lines=$(CUDA_VISIBLE_DEVICES=$((i % gpus)) python3 tools/ae_probe.py eval "${checkpoints[$i]}" "$set" \
       --device cuda --weights both 2>&1) || lines+=$'\n'"eval_arms: failed on $set"
     printf '%s\n' "$lines"
     # Into $OUT at once, named by checkpoint: a call that runs past its limit keeps what was scored.
     [[ -n "$partial" ]] && printf '%s\n' "$lines" |
       sed -n "s|^{\"probe\"|{\"checkpoint\": \"${checkpoints[$i]}\", \"probe\"|p" >> "$partial"
   done) > "$scores/$i.txt" 2>&1 &
  (( (i + 1) % gpus == 0 )) && wait
done
wait
for i in "${!checkpoints[@]}"; do
  echo "== ${checkpoints[$i]}"
  grep '^{"probe"' "$scores/$i.txt"
  if grep -q '^eval_arms: failed' "$scores/$i.txt" || ! grep -q '^{"probe"' "$scores/$i.txt"; then
    grep -v '^{"probe"' "$scores/$i.txt" | tail -4; status=1
  fi
done
rm -rf "$scores"
[[ -n "$partial" ]] && rm -f "$partial"
exit $status
