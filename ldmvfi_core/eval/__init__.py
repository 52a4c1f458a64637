# SPDX-License-Identifier: MIT
"""Quality evaluation: PSNR/SSIM on ground-truth triplets, model-free baselines, contact sheets.

``ldmvfi eval`` is ``ldmvfi_core.eval.run.main_eval``. OpenCV (flow baseline) and Pillow (contact
sheet) are imported only when used.
"""

from ldmvfi_core.eval.baselines import flow_baseline, frame_average
from ldmvfi_core.eval.metrics import psnr, ssim
from ldmvfi_core.eval.run import EvalResults, SetScore, TripletScore, evaluate_folder, main_eval

__all__ = [
    "EvalResults",
    "SetScore",
    "TripletScore",
    "evaluate_folder",
    "flow_baseline",
    "frame_average",
    "main_eval",
    "psnr",
    "ssim",
]
