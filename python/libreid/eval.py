"""Evaluates saved features from the shell, as `reid-eval` does:

    python -m libreid.eval --query-features qf.npy --query-pids q_pids.npy --query-camids q_camids.npy \\
        --gallery-features gf.npy --gallery-pids g_pids.npy --gallery-camids g_camids.npy \\
        [--metric cosine] [--normalize] [--rerank] [--ap trapezoid] [--output metrics.json]

Prints rank-1/5/10, mAP and mINP; --output writes them as JSON (fractions in [0, 1]).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

import numpy as np

from . import Error, evaluate_features


def _load(path: str, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {path}: cannot read the {what} ({error})") from None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m libreid.eval",
                                     description="evaluate query/gallery features saved as .npy files")
    for side in ("query", "gallery"):
        parser.add_argument(f"--{side}-features", required=True, help="float [N, D] .npy")
        parser.add_argument(f"--{side}-pids", required=True, help="int [N] .npy")
        parser.add_argument(f"--{side}-camids", required=True, help="int [N] .npy")
    parser.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the features first")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda", dest="lambda_value", type=float, default=0.3)
    parser.add_argument("--query-expansion", type=int, default=0, help="average query expansion with K neighbours")
    parser.add_argument("--max-rank", type=int, default=50)
    parser.add_argument("--ap", default="hits", choices=["hits", "trapezoid"],
                        help="average precision: hits (as torchreid, fast-reid; default) or trapezoid "
                             "(as the official Market-1501 code)")
    parser.add_argument("--cuhk03-single-shot", action="store_true")
    parser.add_argument("--roc", action="store_true", help="also TPR at FPR 1e-4, 1e-3, 1e-2")
    parser.add_argument("--output", help="write the metrics as JSON to this file")
    args = parser.parse_args(argv)

    arrays = {}
    for side in ("query", "gallery"):
        for what in ("features", "pids", "camids"):
            arrays[f"{side}_{what}"] = _load(getattr(args, f"{side}_{what}"), f"{side} {what}")
    try:
        r = evaluate_features(arrays["query_features"], arrays["gallery_features"], arrays["query_pids"],
                              arrays["gallery_pids"], arrays["query_camids"], arrays["gallery_camids"],
                              metric=args.metric, normalize=args.normalize, rerank=args.rerank, k1=args.k1,
                              k2=args.k2, lambda_value=args.lambda_value, query_expansion=args.query_expansion,
                              max_rank=args.max_rank, average_precision=args.ap,
                              cuhk03_single_shot=args.cuhk03_single_shot, roc=args.roc)
    except (Error, ValueError, TypeError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    label = "mAP (trapezoid)" if args.ap == "trapezoid" else "mAP"
    cmc = r["cmc"]
    ranks = [k for k in (1, 5, 10, 20) if k <= len(cmc)]
    print(f"query {arrays['query_features'].shape[0]} x gallery {arrays['gallery_features'].shape[0]}, {args.metric}")
    print(f"{label} {100 * r['mAP']:.2f}% | mINP {100 * r['mINP']:.2f}% | "
          + " | ".join(f"rank-{k} {100 * cmc[k - 1]:.2f}%" for k in ranks))
    if args.output:
        metrics = {"num_queries": r["num_queries"], "num_valid_queries": r["num_valid"], "mAP": r["mAP"],
                   "mINP": r["mINP"], "average_precision": r["average_precision"],
                   **{f"rank{k}": float(cmc[k - 1]) for k in ranks}, "cmc": [float(c) for c in cmc]}
        metrics.update({f"TPR@FPR={fpr:.0e}": v for fpr, v in r["tpr_at_fpr"].items()})
        # Through a temporary file and a rename, as LibReID writes every file: no torn JSON.
        temporary = f"{args.output}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as out:
                json.dump(metrics, out, indent=1)
                out.write("\n")
            os.replace(temporary, args.output)
        except OSError as error:
            if os.path.exists(temporary):
                os.remove(temporary)
            print(f"error: {args.output}: cannot write the metrics ({error})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
