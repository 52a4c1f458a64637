#!/usr/bin/env bash
# Park carried caches on the device machine for the next call: copies each .carry/NAME into
# runs/keep/NAME. runs/ survives only while the machine stays warm (it goes back ~30 s after a call),
# so fire the call that uses them at once. Why: the carry limit (tree + carried <= 64 MiB) holds one
# 22-MiB training cache beside the perceptual wheels; more caches ride in earlier, short calls.
#   bash tools/park_caches.sh train_cache_hdri train_cache_bird     (carry those two)
# The call that trains restores them with `tools/park_caches.sh --restore NAME...`.
set -euo pipefail
if [[ "${1:-}" == --restore ]]; then
  shift
  mkdir -p .carry  # a call that carries nothing under .carry/ has no such folder
  for name in "$@"; do
    [[ -d ".carry/$name" ]] && continue
    [[ -d "runs/keep/$name" ]] || { echo "park_caches: no runs/keep/$name: park it first (fresh machine?)"; exit 1; }
    cp -r "runs/keep/$name" ".carry/$name"
  done
  exit 0
fi
mkdir -p runs/keep
for name in "$@"; do
  [[ -d ".carry/$name" ]] || { echo "park_caches: no .carry/$name (not carried?)"; exit 1; }
  rm -rf "runs/keep/$name"
  cp -r ".carry/$name" runs/keep/
done
du -sh runs/keep/*
