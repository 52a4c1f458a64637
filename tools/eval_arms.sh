#!/usr/bin/env bash
# Score training arms on the device's GPU, all on one path (tools/ae_probe.py eval: Middlebury and
# UCF101 PSNR / SSIM of each run's newest checkpoint, live and, with --ae-ema, its average), on the
# warm machine that trained them.
#   bash tools/eval_arms.sh runs/s20a runs/s20b ...     (carry .carry/eval = ../shared/data/eval, .carry/oiio)
#   WINNER=runs/s20b bash tools/eval_arms.sh            (no scoring: pack that run into $OUT to fetch it)
# START (default 23579): the step the arms started from; a run whose newest checkpoint is still that
# one did not train, and is reported rather than scored (it would score as its starting point).
set -uo pipefail
if [[ -n "${WINNER:-}" ]]; then
  exec python3 -m ldmvfi_core.train.carry pack "$WINNER" "$OUT/$(basename "$WINNER")" --part-mib 15
fi
pip install -q --no-index --no-deps --target /tmp/site .carry/oiio/*.whl 2>/dev/null
export PYTHONPATH="/tmp/site:$PWD"
start=$(printf 'step_%08d.pt' "${START:-23579}")
status=0
for run in "$@"; do
  ck=$(ls "$run"/checkpoints/step_*.pt 2>/dev/null | tail -1)
  if [[ -z "$ck" || "$(basename "$ck")" == "$start" ]]; then
    echo "== $run: did not train (newest checkpoint: ${ck:-none})"; status=1; continue
  fi
  echo "== $ck"
  # Both the last iterate and, where the run kept one (--ae-ema), the average: one JSON line each per set.
  out=$(python3 tools/ae_probe.py eval "$ck" .carry/eval --device cuda --weights both 2>&1)
  if grep -q '^{"probe"' <<<"$out"; then
    grep '^{"probe"' <<<"$out"
  else
    tail -3 <<<"$out"; status=1
  fi
done
exit $status
