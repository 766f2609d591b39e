#!/usr/bin/env python3
"""Baseline for bench_loader: the same training pipeline with torchvision + PIL and a PyTorch
DataLoader: Resize(256x128, bilinear), RandomHorizontalFlip, Pad(10) + RandomCrop, ToTensor,
Normalize(ImageNet), RandomErasing(p=0.5, scale 0.02-0.4, ratio 0.3-3.33), batches of 64.
Prints images/s per pass and the best pass."""
import argparse
import glob
import os
import time

import torch
import torchvision.transforms as T
from PIL import Image


class Images(torch.utils.data.Dataset):
    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(Image.open(self.paths[i]).convert("RGB")), i


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=os.environ.get("REID_DATA_ROOT", "data"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = sorted(glob.glob(os.path.join(args.root, "market1501/Market-1501-v15.09.15/bounding_box_train/*.jpg")))
    transform = T.Compose([
        T.Resize((256, 128), interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(),
        T.Pad(10),
        T.RandomCrop((256, 128)),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        T.RandomErasing(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 3.33)),
    ])
    loader = torch.utils.data.DataLoader(Images(paths, transform), batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)
    best = 0.0
    for p in range(args.passes):
        start = time.perf_counter()
        n = 0
        for images, _ in loader:
            n += images.shape[0]
        seconds = time.perf_counter() - start
        best = max(best, n / seconds)
        print(f"pass {p}: {n} images in {seconds:.2f} s = {n / seconds:.0f} images/s")
    print(f"torchvision: workers={args.workers} batch={args.batch_size} size=256x128 best={best:.0f} images/s "
          f"({best / max(1, args.workers):.0f} per worker)")


if __name__ == "__main__":
    main()
