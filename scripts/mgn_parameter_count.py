#!/usr/bin/env python3
"""Counts MGN's parameters with a plain PyTorch model written from the paper's description (no
LibReID code): ResNet-50 shared to layer3's first block, three branches with their own layer3[1:]
and layer4, eight 1x1-conv + BN + ReLU reductions to 256-d and eight linear classifiers (with
bias). tests/models/test_mgn.cpp asserts LibReID's mgn_resnet50 against the figures printed here.

    python3 scripts/mgn_parameter_count.py 751
"""
import sys

import torch.nn as nn


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        out = planes * 4
        self.body = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out))
        self.down = None
        if stride != 1 or inplanes != out:
            self.down = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))


def stage(inplanes, planes, blocks, stride):
    layers = [Bottleneck(inplanes, planes, stride)] + [Bottleneck(planes * 4, planes, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def mgn(num_classes, parts=(2, 3), dim=256):
    m = nn.Module()
    m.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64))
    m.layer1 = stage(64, 64, 3, 1)
    m.layer2 = stage(256, 128, 4, 2)
    m.layer3_0 = stage(512, 256, 1, 2)
    branches = 1 + len(parts)
    m.branches = nn.ModuleList(
        nn.Sequential(nn.Sequential(*[Bottleneck(1024, 256, 1) for _ in range(5)]), stage(1024, 512, 3, 2 if b == 0 else 1))
        for b in range(branches))
    features = branches + sum(parts)
    m.reductions = nn.ModuleList(
        nn.Sequential(nn.Conv2d(2048, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU()) for _ in range(features))
    if num_classes > 0:
        m.classifiers = nn.ModuleList(nn.Linear(dim, num_classes) for _ in range(features))
    return m


def count(module):
    return sum(p.numel() for p in module.parameters())


if __name__ == "__main__":
    classes = int(sys.argv[1]) if len(sys.argv) > 1 else 751
    print(f"mgn_resnet50 parameters, {classes} classes: {count(mgn(classes))}")
    print(f"mgn_resnet50 parameters, no classifier: {count(mgn(0))}")
