#!/usr/bin/env python3
"""Python side of the ViT test (tests/models/test_vit.cpp).

  export DIR  build torchvision's vit_b_16 with random weights (seeded) and save to DIR:
              torchvision.pt  its state dict
              io.pt           'input' [2, 3, 224, 224] and 'feature': the class token after the
                              encoder's LayerNorm (what the ImageNet head would see);
                              'input_reid' [2, 3, 256, 128] and 'feature_reid': the same network
                              with 16-pixel patches taken every 12 pixels (21 x 10 patches) and
                              its 14 x 14 position embeddings resized bilinearly to 21 x 10
                              (align_corners=False), as TransReID does;
                              'parameters': its parameter count without the ImageNet head
  transreid DIR
              a small TransReID (SIE + JPM) written here from the paper and its settings
              (D 64, 4 heads, 3 blocks, 16-pixel patches every 12 pixels at 64 x 32, 3
              cameras, lambda 3, shift 5, 2 shuffle groups, 4 local features, BNNeck on each
              feature), seeded, saved to DIR:
              transreid.pt    its state dict (LibReID's names)
              transreid_io.pt 'input' [6, 3, 64, 32], 'cameras', 'labels'; eval mode: 'feature'
                              (global BN feature + the 4 local BN features / 4), 'agnostic'
                              (the mean camera embedding instead of each camera's); train mode
                              (batch statistics): 'ce' (0.5 CE(global) + 0.5 mean CE(locals),
                              label smoothing 0.1) and 'local_3' (the third local feature);
                              'parameters'
"""
import sys

import torch
import torch.nn.functional as F
import torchvision


def class_token_feature(model, x, stride):
    w, b = model.conv_proj.weight, model.conv_proj.bias
    tokens = F.conv2d(x, w, b, stride=stride)
    rows, cols = tokens.shape[2], tokens.shape[3]
    tokens = tokens.flatten(2).transpose(1, 2)
    pos = model.encoder.pos_embedding
    if rows * cols + 1 != pos.shape[1]:
        side = int(round((pos.shape[1] - 1) ** 0.5))
        grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(rows, cols), mode="bilinear", align_corners=False)
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)], 1)
    x = torch.cat([model.class_token.expand(x.shape[0], -1, -1), tokens], 1) + pos
    return model.encoder.ln(model.encoder.layers(x))[:, 0]


def export(directory):
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16().eval()
    # Non-zero biases and LayerNorm affines, so that every tensor matters.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln" in name:
                p.add_(0.02 * torch.randn_like(p))
    torch.save(model.state_dict(), f"{directory}/torchvision.pt")
    x = torch.randn(2, 3, 224, 224)
    y = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        feature = class_token_feature(model, x, 16)
        # The plain forward pass, as a check on class_token_feature itself.
        n = x.shape[0]
        plain = model.encoder(torch.cat([model.class_token.expand(n, -1, -1), model._process_input(x)], 1))[:, 0]
        assert torch.allclose(feature, plain, atol=1e-5), (feature - plain).abs().max()
        feature_reid = class_token_feature(model, y, 12)
    parameters = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("heads."))
    torch.save({"input": x, "feature": feature, "input_reid": y, "feature_reid": feature_reid,
                "parameters": torch.tensor(parameters)}, f"{directory}/io.pt")


class Block(torch.nn.Module):
    """Pre-norm transformer block, timm's names."""

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.attn = torch.nn.Module()
        self.attn.qkv = torch.nn.Linear(dim, 3 * dim)
        self.attn.proj = torch.nn.Linear(dim, dim)
        self.mlp = torch.nn.Module()
        self.mlp.fc1 = torch.nn.Linear(dim, hidden)
        self.mlp.fc2 = torch.nn.Linear(hidden, dim)

    def forward(self, x):
        n, length, dim = x.shape
        q, k, v = self.attn.qkv(self.norm1(x)).view(n, length, 3, self.heads, -1).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(-1, -2) / (dim // self.heads) ** 0.5, dim=-1)
        x = x + self.attn.proj((weights @ v).transpose(1, 2).reshape(n, length, dim))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


def jigsaw(patches, shift, groups):
    """TransReID's patch rearrangement: rotate so that patch shift-1 leads, pad with the
    second-to-last token until the length divides by `groups`, read row-wise, write column-wise."""
    x = torch.roll(patches, -(shift - 1), dims=1)
    while x.shape[1] % groups:
        x = torch.cat([x, x[:, -2:-1]], 1)
    n, length, dim = x.shape
    return x.view(n, groups, length // groups, dim).transpose(1, 2).reshape(n, length, dim)


class TransReID(torch.nn.Module):
    def __init__(self, classes=5, cameras=3, dim=64, heads=4, depth=3, k=4):
        super().__init__()
        self.k = k
        self.patch_embed = torch.nn.Module()
        self.patch_embed.proj = torch.nn.Conv2d(3, dim, 16, stride=12)
        self.cls_token = torch.nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos_embed = torch.nn.Parameter(0.02 * torch.randn(1, 1 + 5 * 2, dim))
        self.sie_embed = torch.nn.Parameter(0.02 * torch.randn(cameras, 1, dim))
        self.blocks = torch.nn.ModuleList([Block(dim, heads, 2 * dim) for _ in range(depth - 1)])
        self.b1 = torch.nn.Sequential(Block(dim, heads, 2 * dim), torch.nn.LayerNorm(dim, eps=1e-6))
        self.b2 = torch.nn.Sequential(Block(dim, heads, 2 * dim), torch.nn.LayerNorm(dim, eps=1e-6))
        for suffix in [""] + [f"_{i}" for i in range(1, k + 1)]:
            self.add_module("bottleneck" + suffix, torch.nn.BatchNorm1d(dim))
            self.add_module("classifier" + suffix, torch.nn.Linear(dim, classes, bias=False))

    def forward(self, images, cameras, agnostic=False):
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        side = self.sie_embed.mean(0, keepdim=True) if agnostic else self.sie_embed[cameras]
        x = x + 3.0 * side
        for block in self.blocks:
            x = block(x)
        features = [self.b1(x)[:, 0]]
        shuffled = jigsaw(x[:, 1:], 5, 2)
        length = (x.shape[1] - 1) // self.k  # of the patches before any padding
        for i in range(self.k):
            features.append(self.b2(torch.cat([x[:, :1], shuffled[:, i * length:(i + 1) * length]], 1))[:, 0])
        bn = [getattr(self, "bottleneck" + s)(f) for s, f in zip([""] + [f"_{i}" for i in range(1, self.k + 1)], features)]
        logits = [getattr(self, "classifier" + s)(b) for s, b in zip([""] + [f"_{i}" for i in range(1, self.k + 1)], bn)]
        test = torch.cat([bn[0]] + [b / self.k for b in bn[1:]], 1)
        return test, features, logits


def transreid(directory):
    torch.manual_seed(0)
    model = TransReID()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(".1.weight") or name.endswith(".1.bias"):
                p.add_(0.1 * torch.randn_like(p))
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.bias.zero_()  # BNNeck: a frozen zero shift
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(1.0 + 0.5 * torch.rand_like(m.running_var))
    state = model.state_dict()
    torch.save(state, f"{directory}/transreid.pt")
    images = torch.randn(6, 3, 64, 32)
    cameras = torch.tensor([0, 1, 2, 0, 1, 2])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    with torch.no_grad():
        model.eval()
        feature = model(images, cameras)[0]
        agnostic = model(images, cameras, agnostic=True)[0]
        model.train()
        _, features, logits = model(images, cameras)
    ce = [F.cross_entropy(l, labels, label_smoothing=0.1) for l in logits]
    loss = 0.5 * ce[0] + 0.5 * sum(ce[1:]) / len(ce[1:])
    parameters = sum(p.numel() for p in model.parameters())
    torch.save({"input": images, "cameras": cameras, "labels": labels, "feature": feature, "agnostic": agnostic,
                "ce": loss, "local_3": features[3], "parameters": torch.tensor(parameters)},
               f"{directory}/transreid_io.pt")


if __name__ == "__main__":
    commands = {"export": export, "transreid": transreid}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2])
