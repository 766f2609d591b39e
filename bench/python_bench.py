#!/usr/bin/env python3
"""libreid against the Python frameworks, side by side in one Python process.

  eval    libreid.evaluate_features (distances block by block, never held whole) and
          libreid.evaluate_rank (the torchreid drop-in, on the distance matrix) vs. the full
          distance matrix (torch.addmm, as torchreid's compute_distance_matrix) + the Cython
          `evaluate_cy` of fast-reid (torchreid's rank_cy with mINP added; torchreid's own Cython
          is not on PyPI): --cython names the folder holding the compiled rank_cy module.
  rerank  libreid.rerank (from features) and libreid.re_ranking (the drop-in, from the three
          distance matrices) vs. torchreid's re_ranking (--torchreid-rerank: its rerank.py).
  loader  libreid.DataLoader vs. torchvision's DataLoader with the same augmentation (resize
          256x128, flip, pad 10 + random crop, normalise, random erasing), same worker count,
          on Market-1501's training images (REID_DATA_ROOT).

Features are the .npy files `bench_eval --write` makes (Market- or MSMT17-sized). Time is wall
time of the call; memory is the peak resident memory the call added to the process (the kernel's
high-water mark, reset before each call through /proc/self/clear_refs). bench/run_python_bench.sh
prepares the baselines and runs it.
"""
import argparse
import gc
import importlib.util
import os
import sys
import time

import numpy as np
import torch

import libreid


def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def measure(label, fn):
    """Runs fn(); returns (result, seconds, peak MiB the call added)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    before = rss_kib("VmRSS")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = (rss_kib("VmHWM") - before) / 1024
    print(f"{label:<44} {seconds:8.2f} s {peak:9.0f} MiB", flush=True)
    return result, seconds, peak


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def euclidean(a, b):
    """torchreid's compute_distance_matrix(metric="euclidean"): squared distances, float32."""
    a, b = torch.from_numpy(a), torch.from_numpy(b)
    d = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1, keepdim=True).t()
    return torch.addmm(d, a, b.t(), beta=1, alpha=-2).numpy()


def bench_eval(data, args):
    qf, gf, qp, gp, qc, gc_ = data
    print(f"evaluation, {qf.shape[0]} x {gf.shape[0]}, {qf.shape[1]}-d:")
    rows = {}
    for round_ in range(args.rounds):
        ours, t, m = measure(f"  round {round_ + 1}: libreid.evaluate_features",
                             lambda: libreid.evaluate_features(qf, gf, qp, gp, qc, gc_, max_rank=50))
        rows.setdefault("features", []).append((t, m))
        if args.cython:
            sys.path.insert(0, args.cython)
            import rank_cy  # noqa: E402 (fast-reid's Cython, compiled by run_python_bench.sh)

            def baseline():
                distmat = euclidean(qf, gf)
                return rank_cy.evaluate_cy(distmat, qp, gp, qc, gc_, 50, False)

            theirs, t, m = measure(f"  round {round_ + 1}: addmm + Cython evaluate_cy", baseline)
            rows.setdefault("cython", []).append((t, m))
            distmat = euclidean(qf, gf)
            _, t, m = measure(f"  round {round_ + 1}: Cython evaluate_cy (given the matrix)",
                              lambda: rank_cy.evaluate_cy(distmat, qp, gp, qc, gc_, 50, False))
            rows.setdefault("cython matrix", []).append((t, m))
            (cmc, mAP), t, m = measure(f"  round {round_ + 1}: libreid.evaluate_rank (given the matrix)",
                                       lambda: libreid.evaluate_rank(distmat, qp, gp, qc, gc_, max_rank=50))
            rows.setdefault("drop-in", []).append((t, m))
            del distmat
            print(f"  mAP libreid {ours['mAP']:.6f} / Cython {float(np.mean(theirs[1])):.6f} / drop-in {mAP:.6f}; "
                  f"rank-1 {float(ours['cmc'][0]):.6f} / {float(theirs[0][0]):.6f} / {float(cmc[0]):.6f}")
    return rows


def bench_rerank(data, args):
    qf, gf = data[0], data[1]
    print(f"re-ranking, {qf.shape[0]} x {gf.shape[0]}:")
    rows = {}
    theirs_module = load_module(args.torchreid_rerank, "torchreid_rerank") if args.torchreid_rerank else None
    for round_ in range(args.rounds):
        ours, t, m = measure(f"  round {round_ + 1}: libreid.rerank (features)", lambda: libreid.rerank(qf, gf))
        rows.setdefault("features", []).append((t, m))
        if theirs_module is not None and round_ == 0:  # minutes and gigabytes: once
            qg, qq, gg = euclidean(qf, gf), euclidean(qf, qf), euclidean(gf, gf)
            # torchreid's caller passes euclidean distances (it squares them again inside).
            for d in (qg, qq, gg):
                np.sqrt(np.maximum(d, 0), out=d)
            drop, t, m = measure(f"  round {round_ + 1}: libreid.re_ranking (3 matrices)",
                                 lambda: libreid.re_ranking(qg, qq, gg))
            rows.setdefault("drop-in", []).append((t, m))
            theirs, t, m = measure(f"  round {round_ + 1}: torchreid re_ranking (3 matrices)",
                                   lambda: theirs_module.re_ranking(qg, qq, gg))
            rows.setdefault("torchreid", []).append((t, m))
            print(f"  largest difference, drop-in vs torchreid: {float(np.abs(drop - theirs).max()):.2e}")
            del qg, qq, gg, drop, theirs
    return rows


def bench_loader(args):
    import torchvision.transforms as T
    from PIL import Image

    root = os.environ.get("REID_DATA_ROOT")
    if not root:
        print("loader: skipped (set REID_DATA_ROOT to the folder holding market1501/)")
        return {}
    ours = libreid.DataLoader(None, [f"data.root={root}", "data.sources=[market1501]", "data.targets=[market1501]",
                                     "data.transforms=[random_flip, pad_crop, random_erasing]", "sampler.name=random",
                                     f"data.batch_size={args.batch_size}", "data.height=256", "data.width=128"],
                              workers=args.workers)
    paths = [p for p, _, _ in ours.records]

    class Images(torch.utils.data.Dataset):
        transform = T.Compose([
            T.Resize((256, 128), interpolation=T.InterpolationMode.BILINEAR), T.RandomHorizontalFlip(), T.Pad(10),
            T.RandomCrop((256, 128)), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            T.RandomErasing(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 3.33))])

        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return self.transform(Image.open(paths[i]).convert("RGB")), i

    theirs = torch.utils.data.DataLoader(Images(), batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)
    print(f"loader, {len(paths)} Market-1501 training images, batches of {args.batch_size}, "
          f"{args.workers} workers:")

    def one_epoch(loader):
        n = 0
        for batch in loader:
            n += batch[0].shape[0]
        return n

    rows = {}
    for round_ in range(args.rounds):
        for name, loader in (("libreid", ours), ("torchvision", theirs)):
            n, t, m = measure(f"  round {round_ + 1}: {name}", lambda: one_epoch(loader))
            rows.setdefault(name, []).append((n / t, m))
            print(f"  {n / t:.0f} images/s")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", help="folder of qf/gf/q_pids/g_pids/q_camids/g_camids .npy (bench_eval --write)")
    parser.add_argument("--what", default="eval,rerank,loader")
    parser.add_argument("--cython", help="folder holding fast-reid's compiled rank_cy module")
    parser.add_argument("--torchreid-rerank", help="torchreid's rerank.py")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("REID_BENCH_THREADS", "0")) or torch.get_num_threads())
    what = args.what.split(",")
    print(f"libreid {libreid.__file__}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    data = None
    if "eval" in what or "rerank" in what:
        names = ["qf", "gf", "q_pids", "g_pids", "q_camids", "g_camids"]
        data = [np.load(os.path.join(args.features, n + ".npy")) for n in names]
        data = [d.astype(np.float32) if d.dtype.kind == "f" else d.astype(np.int64) for d in data]
    if "eval" in what:
        bench_eval(data, args)
    if "rerank" in what:
        bench_rerank(data, args)
    if "loader" in what:
        bench_loader(args)


if __name__ == "__main__":
    main()
