# SPDX-License-Identifier: MIT
"""Is a newly trained model better than the shipped one? Reassemble, check, score, compare, ship.

    # the parts a device call returned (split -b 15M ... export.part), checked against its sha256
    python tools/ship_candidate.py /work/.device/3 --sha256 7d82d79... --eval ../shared/data/eval
    # then, if it wins on every set, put it in place (weights, eval JSON, contact sheet)
    python tools/ship_candidate.py runs/candidate/export.safetensors --eval ../shared/data/eval --ship

Scores with ``ldmvfi eval`` (the shipped model's settings: 200 DDIM steps, eta 1, seed 0, CPU
float32) into ``--out`` and compares the set means with ``bench/eval_shipped_model.json``. A
candidate counts as better only if its PSNR is higher on every set. ``--ship`` copies it over the
shipped files and writes its recommended step count (``--default-steps``) into the shipped copy's
metadata; the model card and bench/RESULTS.md are still yours to update.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ldmvfi_core.eval.run import main_eval  # noqa: E402
from ldmvfi_core.interpolate import DEFAULT_STEPS, Interpolator  # noqa: E402
from ldmvfi_core.io.atomic import atomic_path  # noqa: E402
from ldmvfi_core.model.export import set_default_steps  # noqa: E402
from ldmvfi_core.train.configs import SMALL  # noqa: E402

SHIPPED_WEIGHTS = REPO / "ldmvfi_core" / "weights" / "ldmvfi-default.safetensors"
SHIPPED_EVAL = REPO / "bench" / "eval_shipped_model.json"
SHIPPED_SHEET = REPO / "bench" / "eval_shipped_model_sheet.png"
MAX_BYTES = 50 * 1000 * 1000  # the limit for the shipped file


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble(source: Path, out: Path) -> Path:
    """A .safetensors file as it is, or a folder's ``export.part*`` joined in name order."""
    if source.is_file():
        return source
    parts = sorted(source.glob("export.part*"))
    if not parts:
        raise SystemExit(f"{source}: no export.part* files and not a file")
    target = out / "export.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, tmp.open("wb") as joined:
        for part in parts:
            joined.write(part.read_bytes())
    return target


def set_means(eval_json: Path) -> dict[tuple[str, str], tuple[float, float]]:
    sets = json.loads(eval_json.read_text())["sets"]
    return {(row["set_name"], row["method"]): (row["psnr"], row["ssim"]) for row in sets}


def compare(candidate: Path, shipped: Path) -> bool:
    """Print the comparison table; True if the candidate's PSNR is higher on every set."""
    new, old = set_means(candidate), set_means(shipped)
    names = sorted({name for name, method in new if method == "ours"})
    print("| set | candidate PSNR / SSIM | shipped PSNR / SSIM | change | flow |")
    print("|---|---|---|---|---|")
    better = True
    for name in names:
        (p_new, s_new), (p_old, s_old) = new[(name, "ours")], old[(name, "ours")]
        flow = new.get((name, "flow"))
        flow_text = f"{flow[0]:.2f} / {flow[1]:.4f}" if flow else "-"
        print(f"| {name} | {p_new:.2f} / {s_new:.4f} | {p_old:.2f} / {s_old:.4f} | "
              f"{p_new - p_old:+.2f} dB / {s_new - s_old:+.4f} | {flow_text} |")
        better = better and p_new > p_old
    return better


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the exported .safetensors, or a folder of export.part* files")
    parser.add_argument("--sha256", help="the checksum the device printed for the export")
    parser.add_argument("--eval", type=Path, required=True, help="folder of evaluation triplets")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "candidate")
    parser.add_argument("--ship", action="store_true", help="replace the shipped files if the candidate is better")
    parser.add_argument("--force", action="store_true", help="with --ship: replace them even if it is not")
    parser.add_argument("--default-steps", type=int, default=10,
                        help="with --ship: the DDIM steps the shipped file recommends (metadata; default 10, "
                             "right while the diffusion part does not change the pictures; 0: none, i.e. 200)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)  # the eval writes its scores there after a quarter of an hour
    weights = assemble(args.source, args.out)
    digest = sha256_of(weights)
    if args.sha256 and digest != args.sha256.lower():
        raise SystemExit(f"{weights}: sha256 {digest} is not the expected {args.sha256}")
    if weights.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{weights}: {weights.stat().st_size} bytes, over the shipped file's 50 MB")
    if Interpolator.load(weights).config != SMALL:
        raise SystemExit(f"{weights}: not the SMALL configuration the shipped model uses")
    print(f"{weights}: sha256 {digest}")

    scores, sheet = args.out / f"eval_{digest[:12]}.json", args.out / f"eval_{digest[:12]}_sheet.png"
    if not scores.is_file():  # scored once per file: the CPU eval takes a quarter of an hour
        # Always 200 steps, the setting of the shipped model's scores, whatever the file recommends.
        status = main_eval([str(args.eval), "--model", str(weights), "--json", str(scores), "--sheet", str(sheet),
                            "--steps", str(DEFAULT_STEPS), "--quiet"])
        if status:
            return status
    better = compare(scores, SHIPPED_EVAL)
    print("better than the shipped model on every set" if better else "not better on every set")
    if args.ship and (better or args.force):
        for src, dst in ((weights, SHIPPED_WEIGHTS), (scores, SHIPPED_EVAL), (sheet, SHIPPED_SHEET)):
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
        set_default_steps(SHIPPED_WEIGHTS, args.default_steps or None)
        print(f"shipped: {SHIPPED_WEIGHTS.relative_to(REPO)}; now update docs/MODEL_CARD.md and bench/RESULTS.md "
              "and run pytest tests/unit/test_shipped_model.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
