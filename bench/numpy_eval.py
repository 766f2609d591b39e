#!/usr/bin/env python3
"""Baseline for bench_eval: the evaluation the way torchreid's Python path does it, on the same
.npy files: the full query x gallery distance matrix (torch.addmm, float32), a full argsort of
every row, the Q x G match matrix, then a per-query loop for CMC / AP / mINP. With --rerank, the
dense k-reciprocal re-ranking of the reference implementation (N x N matrices, N = Q + G).
Prints the same figures as bench_eval so that the two can be compared, plus the time taken.
Run it under /usr/bin/time -v to see its peak memory."""
import argparse
import time

import numpy as np
import torch


def distances(qf, gf):
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    d = q.pow(2).sum(1, keepdim=True) + g.pow(2).sum(1, keepdim=True).t()
    return torch.addmm(d, q, g.t(), beta=1, alpha=-2).numpy()


def evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    num_q, num_g = distmat.shape
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(num_q):
        order = indices[q]
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw = matches[q][keep]
        if not np.any(raw):
            continue
        cmc = raw.cumsum()
        last = np.max(np.where(raw == 1))
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precision = raw.cumsum() / (np.arange(len(raw)) + 1.0)
        all_ap.append((precision * raw).sum() / raw.sum())
    return np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc), np.mean(all_ap), np.mean(all_inp)


def re_ranking(qf, gf, k1=20, k2=6, lambda_value=0.3):
    all_features = np.concatenate([qf, gf])
    original = distances(all_features, all_features).astype(np.float32)
    query_num, all_num = qf.shape[0], original.shape[0]
    original = np.transpose(original / np.max(original, axis=0))
    V = np.zeros_like(original).astype(np.float16)
    initial_rank = np.argsort(original).astype(np.int32)
    for i in range(all_num):
        forward = initial_rank[i, :k1 + 1]
        backward = initial_rank[forward, :k1 + 1]
        k_reciprocal = forward[np.where(backward == i)[0]]
        expansion = k_reciprocal
        for candidate in k_reciprocal:
            c_forward = initial_rank[candidate, :int(np.around(k1 / 2.0)) + 1]
            c_backward = initial_rank[c_forward, :int(np.around(k1 / 2.0)) + 1]
            c_reciprocal = c_forward[np.where(c_backward == candidate)[0]]
            if len(np.intersect1d(c_reciprocal, k_reciprocal)) > 2.0 / 3 * len(c_reciprocal):
                expansion = np.append(expansion, c_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion])
        V[i, expansion] = weight / np.sum(weight)
    original = original[:query_num, ]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float16)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    del initial_rank
    inverse = [np.where(V[:, i] != 0)[0] for i in range(all_num)]
    jaccard = np.zeros_like(original, dtype=np.float16)
    for i in range(query_num):
        shared = np.zeros(shape=[1, all_num], dtype=np.float16)
        nonzero = np.where(V[i, :] != 0)[0]
        for j in nonzero:
            shared[0, inverse[j]] = shared[0, inverse[j]] + np.minimum(V[i, j], V[inverse[j], j])
        jaccard[i] = 1 - shared / (2 - shared)
    final = jaccard * (1 - lambda_value) + original * lambda_value
    return final[:query_num, query_num:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("features", help="folder written by bench_eval --write")
    parser.add_argument("--rerank", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = lambda name: np.load(f"{args.features}/{name}.npy")
    qf, gf = load("qf"), load("gf")
    qp, gp, qc, gc = load("q_pids"), load("g_pids"), load("q_camids"), load("g_camids")
    start = time.perf_counter()
    distmat = re_ranking(qf, gf) if args.rerank else distances(qf, gf)
    middle = time.perf_counter()
    cmc, mAP, mINP = evaluate(distmat, qp, gp, qc, gc)
    end = time.perf_counter()
    print(f"mAP {100 * mAP:.1f}% | mINP {100 * mINP:.1f}% | rank-1 {100 * cmc[0]:.1f}% | rank-5 {100 * cmc[4]:.1f}% "
          f"| rank-10 {100 * cmc[9]:.1f}% | rank-20 {100 * cmc[19]:.1f}%")
    print(f"baseline{' rerank' if args.rerank else ''}: {end - start:.2f} s evaluation "
          f"({middle - start:.2f} s {'re-ranking' if args.rerank else 'distances'} + {end - middle:.2f} s metrics)")


if __name__ == "__main__":
    main()
