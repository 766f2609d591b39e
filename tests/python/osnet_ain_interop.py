#!/usr/bin/env python3
"""Python side of the OSNet-AIN test (tests/models/test_osnet.cpp).

  export WIDTH DIR
      build OSNet-AIN at WIDTH (1.0, 0.75, 0.5, 0.25) in plain PyTorch, written here from the TPAMI
      2021 architecture with torchreid's module names (conv1 with affine instance norm; blocks
      with instance norm inside the residual branch at conv2.0, conv2.1, conv3.1, conv4.0; streams
      as conv2.<t>.layers.<i>; transitions pool2 / pool3; conv5; fc = Linear + BN + ReLU), give
      every norm random affine parameters and statistics, and save to DIR:
      osnet_ain.pt     its state dict
      osnet_ain_io.pt  'input' [2, 3, 128, 64], 'feature' (eval: the fc output), 'parameters'
                       (without the classifier)
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvNorm(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, relu=True, norm="bn"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        if norm == "bn":
            self.bn = nn.BatchNorm2d(cout)
        elif norm == "in":
            self.bn = nn.InstanceNorm2d(cout, affine=True)
        else:
            self.bn = None
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class Lite(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.bn(self.conv2(self.conv1(x))))


class Stream(nn.Module):
    def __init__(self, c, depth):
        super().__init__()
        self.layers = nn.Sequential(*[Lite(c) for _ in range(depth)])

    def forward(self, x):
        return self.layers(x)


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 16, 1)
        self.fc2 = nn.Conv2d(c // 16, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class Block(nn.Module):
    def __init__(self, cin, cout, residual_in):
        super().__init__()
        mid = cout // 4
        self.conv1 = ConvNorm(cin, mid, 1)
        self.conv2 = nn.ModuleList([Stream(mid, t) for t in range(1, 5)])
        self.gate = Gate(mid)
        self.conv3 = ConvNorm(mid, cout, 1, relu=False, norm=None if residual_in else "bn")
        self.downsample = ConvNorm(cin, cout, 1, relu=False) if cin != cout else None
        self.IN = nn.InstanceNorm2d(cout, affine=True) if residual_in else None

    def forward(self, x):
        x1 = self.conv1(x)
        y = sum(self.gate(stream(x1)) for stream in self.conv2)
        y = self.conv3(y)
        if self.IN is not None:
            y = self.IN(y)
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class OSNetAIN(nn.Module):
    def __init__(self, width, classes=7):
        super().__init__()
        c = [round(w * width) for w in (64, 256, 384, 512)]
        marks = [(True, True), (False, True), (True, False)]
        self.conv1 = ConvNorm(3, c[0], 7, 2, 3, norm="in")
        stages = []
        for s in range(3):
            stages.append(nn.Sequential(*[Block(c[s] if i == 0 else c[s + 1], c[s + 1], marks[s][i]) for i in range(2)]))
        self.conv2, self.conv3, self.conv4 = stages
        self.pool2 = nn.Sequential(ConvNorm(c[1], c[1], 1), nn.AvgPool2d(2, 2))
        self.pool3 = nn.Sequential(ConvNorm(c[2], c[2], 1), nn.AvgPool2d(2, 2))
        self.conv5 = ConvNorm(c[3], c[3], 1)
        self.fc = nn.Sequential(nn.Linear(c[3], 512), nn.BatchNorm1d(512), nn.ReLU())
        self.classifier = nn.Linear(512, classes)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 3, 2, 1)
        x = self.conv5(self.conv4(self.pool3(self.conv3(self.pool2(self.conv2(x))))))
        return self.fc(x.mean((2, 3)))


def export(width, directory):
    torch.manual_seed(0)
    model = OSNetAIN(float(width))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    torch.save(model.state_dict(), f"{directory}/osnet_ain.pt")
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        feature = model(x)
    parameters = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("classifier"))
    torch.save({"input": x, "feature": feature, "parameters": torch.tensor(parameters)},
               f"{directory}/osnet_ain_io.pt")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "export":
        sys.exit(__doc__)
    export(sys.argv[2], sys.argv[3])
