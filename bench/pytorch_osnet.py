#!/usr/bin/env python3
"""Baseline for bench_train: OSNet x0.25 (written here in plain PyTorch from the paper's
description, same layers and widths as LibReID's) trained the way a PyTorch loop does it:
Adam, label-smoothed cross-entropy, random images of the given size, 2 intra-op threads.
Prints images/s per iteration window and the best window."""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, k, stride=1, padding=0, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, padding, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Lite(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.dw = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.bn(self.dw(self.pw(x))), inplace=True)


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 16, 1)
        self.fc2 = nn.Conv2d(c // 16, c, 1)

    def forward(self, x):
        g = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(g), inplace=True)))


class Block(nn.Module):
    def __init__(self, cin, cout, streams=4):
        super().__init__()
        mid = cout // 4
        self.reduce = conv_bn(cin, mid, 1)
        self.streams = nn.ModuleList([nn.Sequential(*[Lite(mid) for _ in range(t)]) for t in range(1, streams + 1)])
        self.gate = Gate(mid)
        self.expand = conv_bn(mid, cout, 1, relu=False)
        self.project = conv_bn(cin, cout, 1, relu=False) if cin != cout else None

    def forward(self, x):
        y = self.reduce(x)
        y = sum(self.gate(s(y)) for s in self.streams)
        y = self.expand(y)
        return F.relu(y + (self.project(x) if self.project is not None else x))


class OSNet(nn.Module):
    def __init__(self, classes, c=(16, 64, 96, 128)):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, c[0], 7, 2, 3), nn.MaxPool2d(3, 2, 1))
        self.stage2 = nn.Sequential(Block(c[0], c[1]), Block(c[1], c[1]), conv_bn(c[1], c[1], 1), nn.AvgPool2d(2, 2))
        self.stage3 = nn.Sequential(Block(c[1], c[2]), Block(c[2], c[2]), conv_bn(c[2], c[2], 1), nn.AvgPool2d(2, 2))
        self.stage4 = nn.Sequential(Block(c[2], c[3]), Block(c[3], c[3]))
        self.conv5 = conv_bn(c[3], c[3], 1)
        self.fc = nn.Sequential(nn.Linear(c[3], 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(512, classes)

    def forward(self, x):
        x = self.conv5(self.stage4(self.stage3(self.stage2(self.stem(x)))))
        return self.classifier(self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true", help="channels-last model and input")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = OSNet(751).train()
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(args.batch_size, 3, args.height, args.width)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0015)
    y = torch.randint(0, 751, (args.batch_size,))
    best, window, start = 0.0, 10, None
    for it in range(args.iterations):
        if it % window == 0:
            if start is not None:
                rate = window * args.batch_size / (time.perf_counter() - start)
                best = max(best, rate)
                print(f"iterations {it - window}-{it - 1}: {rate:.1f} images/s")
            start = time.perf_counter()
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    layout = "channels-last" if args.channels_last else "NCHW"
    print(f"pytorch osnet_x0_25: {args.height}x{args.width} batch {args.batch_size}, {args.threads} threads, {layout}, "
          f"best {best:.1f} images/s")


if __name__ == "__main__":
    main()
