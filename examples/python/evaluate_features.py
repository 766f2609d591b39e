"""Evaluates a model's query and gallery features with libreid: e.g. a torchreid-trained model's,
saved with NumPy in the layout `reid-test --set test.save_features=true` writes:

    <dir>/query_features.npy    float [Q, D]      <dir>/gallery_features.npy    float [G, D]
    <dir>/query_pids.npy        int [Q]           <dir>/gallery_pids.npy        int [G]
    <dir>/query_camids.npy      int [Q]           <dir>/gallery_camids.npy      int [G]

With torchreid, after `qf, q_pids, q_camids = engine._feature_extraction(query_loader)` (and the
gallery's likewise): np.save(f"{dir}/query_features.npy", qf.numpy()), and so on.

    python examples/python/evaluate_features.py <dir> [--metric cosine] [--rerank]

Prints LibReID's metrics under both AP conventions and, when torchreid is installed, its own
evaluate_rank on the same distances for comparison. Without a folder it makes a small random
set to show the output.
"""

import argparse
import time

import numpy as np
import torch

import libreid


def load(folder):
    names = ["features", "pids", "camids"]
    query = [np.load(f"{folder}/query_{n}.npy") for n in names]
    gallery = [np.load(f"{folder}/gallery_{n}.npy") for n in names]
    return query, gallery


def random_set(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, 64)).astype(np.float32)

    def draw(n, cameras):
        pids = rng.integers(0, 50, n)
        return [centres[pids] + 3.0 * rng.normal(size=(n, 64)).astype(np.float32), pids, rng.integers(0, cameras, n)]

    return draw(200, 3), draw(1000, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="folder of query_/gallery_ features, pids, camids .npy files")
    parser.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    parser.add_argument("--rerank", action="store_true", help="also k-reciprocal re-ranking")
    args = parser.parse_args()
    (qf, q_pids, q_camids), (gf, g_pids, g_camids) = load(args.folder) if args.folder else random_set()
    print(f"query {qf.shape[0]} x gallery {gf.shape[0]}, {qf.shape[1]}-d, {args.metric}")

    for convention in ("hits", "trapezoid"):
        start = time.perf_counter()
        r = libreid.evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, metric=args.metric,
                                      average_precision=convention)
        seconds = time.perf_counter() - start
        print(f"libreid ({convention:9s} AP): rank-1 {100 * r['cmc'][0]:.2f}%  rank-5 {100 * r['cmc'][4]:.2f}%  "
              f"mAP {100 * r['mAP']:.2f}%  mINP {100 * r['mINP']:.2f}%  ({seconds:.2f} s)")
    if args.rerank:
        r = libreid.evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, metric=args.metric, rerank=True)
        print(f"libreid re-ranked       : rank-1 {100 * r['cmc'][0]:.2f}%  mAP {100 * r['mAP']:.2f}%")

    try:
        from torchreid.metrics import evaluate_rank  # noqa: PLC0415 (optional)
    except ImportError:
        print("torchreid not installed: its evaluate_rank is not run")
        return
    distmat = libreid.distance(torch.from_numpy(qf), torch.from_numpy(gf), args.metric).numpy()
    start = time.perf_counter()
    cmc, mAP = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, use_cython=False)
    print(f"torchreid evaluate_rank : rank-1 {100 * cmc[0]:.2f}%  mAP {100 * mAP:.2f}%  "
          f"({time.perf_counter() - start:.2f} s)")


if __name__ == "__main__":
    main()
