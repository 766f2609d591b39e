#!/usr/bin/env python3
"""OSNet written in plain PyTorch from the paper's description, with the same layers and widths as
LibReID's (WIDTHS: x1.0 and x0.25): the network of the Python baselines (pytorch_train.py,
torchreid_extractor.py)."""
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


WIDTHS = {"osnet_x1_0": (64, 256, 384, 512), "osnet_x0_25": (16, 64, 96, 128)}


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
