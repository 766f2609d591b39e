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


class ViTBlock(nn.Module):
    def __init__(self, dim, heads, mlp, drop_path):
        super().__init__()
        self.heads, self.drop_path = heads, drop_path
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, mlp), nn.Linear(mlp, dim)

    def drop(self, x):
        if not self.training or self.drop_path == 0:
            return x
        keep = 1 - self.drop_path
        return x * x.new_empty(x.shape[0], 1, 1).bernoulli_(keep) / keep

    def attention(self, x):
        n, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, tokens, dim))

    def forward(self, x):
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


class ViT(nn.Module):
    """LibReID's ViT (src/models/vit.cpp) with a BNNeck-free linear classifier on the class token."""

    def __init__(self, classes, dim, heads, mlp, height, width, stride, depth=12, drop_path=0.1):
        super().__init__()
        rows, cols = (height - 16) // stride + 1, (width - 16) // stride + 1
        self.patch_embed = nn.Conv2d(3, dim, 16, stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim).normal_(0, 0.02))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + rows * cols, dim).normal_(0, 0.02))
        self.blocks = nn.ModuleList(ViTBlock(dim, heads, mlp, drop_path * i / (depth - 1)) for i in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.classifier = nn.Linear(dim, classes)

    def features(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]

    def forward(self, x):
        return self.classifier(self.features(x))


VITS = {"vit_base_patch16": (768, 12, 3072), "vit_small_patch16": (384, 6, 1536)}


def build(name, classes, height=256, width=128, stride=16):
    if name in VITS:
        return ViT(classes, *VITS[name], height, width, stride)
    if name in WIDTHS:
        return OSNet(classes, WIDTHS[name])
    if name == "resnet50":
        return ResNet50(classes)
    raise SystemExit(f"unknown model {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="osnet_x0_25", choices=sorted(list(WIDTHS) + list(VITS) + ["resnet50"]))
    parser.add_argument("--patch-stride", type=int, default=0, help="ViT: stride between patches (0: 16)")
    parser.add_argument("--window", type=int, default=10, help="steps per timed window")
    parser.add_argument("--forward-only", action="store_true", help="inference: eval mode, no gradients")
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
    model = build(args.model, 751, args.height, args.width, args.patch_stride or 16).train(not args.forward_only)
    model = model.to(device)
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
        if args.forward_only:
            with torch.no_grad():
                model.features(x) if hasattr(model, "features") else model(x)
            return
        optimizer.zero_grad()
        forward(x, y).backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(3):  # warm-up, and compilation for torch.compile
        step()
    sync()
    warmup = time.perf_counter() - start
    best, window = 0.0, args.window
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
    print(f"pytorch {args.model}{' inference' if args.forward_only else ''}: {args.height}x{args.width} batch {args.batch_size}, {device}, {args.threads} threads, "
          f"{mode} {layout}{', bf16 autocast' if amp else ''} (warm-up {warmup:.1f} s), best {best:.1f} images/s")


if __name__ == "__main__":
    main()
