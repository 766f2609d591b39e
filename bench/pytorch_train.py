#!/usr/bin/env python3
"""Baseline for bench_train: a training step (forward, backward, Adam) the way a PyTorch loop runs
it, on the networks LibReID's bench_train builds: OSNet x0.25 / x1.0 (pytorch_osnet.py) and
ResNet-50 as LibReID's resnet50 (torchvision's, last stride 1, average pooling, a linear
classifier). Label-smoothed cross-entropy on random images, 751 classes, 2 intra-op threads.
Modes: eager NCHW (as torchreid trains), eager channels-last, and torch.compile (inductor, the
model and loss compiled together; its compilation is excluded from the timing).
Prints images/s per iteration window and the best window."""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from pytorch_osnet import OSNet, WIDTHS


class ResNet50(nn.Module):
    def __init__(self, classes):
        super().__init__()
        net = torchvision.models.resnet50()
        net.layer4[0].conv2.stride = (1, 1)
        net.layer4[0].downsample[0].stride = (1, 1)
        self.body = nn.Sequential(*list(net.children())[:-2])
        self.classifier = nn.Linear(2048, classes)

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


def build(name, classes):
    if name in WIDTHS:
        return OSNet(classes, WIDTHS[name])
    if name == "resnet50":
        return ResNet50(classes)
    raise SystemExit(f"unknown model {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="osnet_x0_25", choices=sorted(list(WIDTHS) + ["resnet50"]))
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true", help="channels-last model and input")
    parser.add_argument("--compile", action="store_true", help="torch.compile the step's forward and loss")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build(args.model, 751).train().to(device)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(args.batch_size, 3, args.height, args.width, device=device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0015)
    y = torch.randint(0, 751, (args.batch_size,), device=device)
    amp = args.amp and device.type == "cuda"

    def loss_of(images, labels):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            return criterion(model(images), labels)

    def sync():  # work queued on a GPU is finished before a clock is read
        if device.type == "cuda":
            torch.cuda.synchronize()

    forward = torch.compile(loss_of) if args.compile else loss_of

    def step():
        optimizer.zero_grad()
        forward(x, y).backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(3):  # warm-up, and compilation for torch.compile
        step()
    sync()
    warmup = time.perf_counter() - start
    best, window = 0.0, 10
    for first in range(0, args.iterations - window + 1, window):
        start = time.perf_counter()
        for _ in range(window):
            step()
        sync()
        rate = window * args.batch_size / (time.perf_counter() - start)
        best = max(best, rate)
        print(f"iterations {first}-{first + window - 1}: {rate:.1f} images/s")
    mode = "torch.compile" if args.compile else "eager"
    layout = "channels-last" if args.channels_last else "NCHW"
    print(f"pytorch {args.model}: {args.height}x{args.width} batch {args.batch_size}, {device}, {args.threads} threads, "
          f"{mode} {layout}{', bf16 autocast' if amp else ''} (warm-up {warmup:.1f} s), best {best:.1f} images/s")


if __name__ == "__main__":
    main()
