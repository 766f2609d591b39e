#!/usr/bin/env python3
"""Baseline for bench_embed: what torchreid's FeatureExtractor does with crops in memory, on
Debian's python3-torch. The network is OSNet written in plain PyTorch (pytorch_osnet.py: the
paper's layers and widths, as torchreid defines them), in eval mode; each crop (an RGB uint8
array, as a tracker hands it over) goes through PIL: Resize((256, 128)), ToTensor, Normalize,
then the batch is stacked and run under torch.no_grad(), as FeatureExtractor.__call__ does.

Prints one JSON line: median seconds per call end to end (preprocessing + model) and of the
model alone, for the given batch size."""
import argparse
import glob
import json
import os
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from pytorch_osnet import OSNet, WIDTHS



class Extractor:
    """torchreid.utils.FeatureExtractor's path for numpy inputs, without the library."""

    def __init__(self, model, height, width):
        self.model = model.eval()
        self.preprocess = T.Compose([T.Resize((height, width)), T.ToTensor(),
                                     T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

    def features(self, images):
        with torch.no_grad():
            return self.model.fc(torch.nn.functional.adaptive_avg_pool2d(
                self.model.conv5(self.model.stage4(self.model.stage3(self.model.stage2(self.model.stem(images))))),
                1).flatten(1))

    def __call__(self, crops):
        batch = torch.stack([self.preprocess(Image.fromarray(crop)) for crop in crops])
        return self.features(batch)


def median_time(fn, repeat, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="osnet_x0_25", choices=sorted(WIDTHS))
    parser.add_argument("--images", help="folder of crops (Market bounding_box_test); random crops if absent")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    extractor = Extractor(OSNet(751, WIDTHS[args.model]), 256, 128)
    files = sorted(glob.glob(os.path.join(args.images, "*.jpg")))[: args.batch_size] if args.images else []
    crops = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    rng = np.random.default_rng(0)
    while len(crops) < args.batch_size:
        crops.append(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8))
    batch = torch.stack([extractor.preprocess(Image.fromarray(c)) for c in crops])
    assert extractor(crops).shape == (args.batch_size, 512)
    print(json.dumps({
        "e2e_median_s": median_time(lambda: extractor(crops), args.repeat),
        "model_median_s": median_time(lambda: extractor.features(batch), args.repeat),
    }))


if __name__ == "__main__":
    main()
