#!/usr/bin/env python3
"""Python side of the weight-interop test (tests/models/test_weights.cpp).

  export DIR  build torchvision's resnet50 with random weights, save its state dict to
              DIR/torchvision.pt, and save an input and the backbone's layer4 output to DIR/io.pt
  checkpoint DIR
              write DIR/checkpoint.pth the way torchreid does: {'state_dict': <DataParallel
              state dict>, 'epoch', 'rank1', 'optimizer': <Adam state>, 'args': Namespace}, with
              a float16 and an int64 tensor among the weights
  import DIR  load DIR/libreid.pt (written by LibReID) into torchvision's resnet50, run the input
              of DIR/libreid_io.pt through it and compare with LibReID's layer4 output; prints the
              missing/unexpected keys and the largest difference, exits 1 on a mismatch
"""
import sys

import torch
import torchvision


def backbone(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def export(directory):
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    # Non-trivial BN statistics, so that buffers matter too.
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 128, 64))
    model.eval()
    torch.save(model.state_dict(), f"{directory}/torchvision.pt")
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        torch.save({"input": x, "featuremap": backbone(model, x)}, f"{directory}/io.pt")


def checkpoint(directory):
    import argparse

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    state = model.state_dict()
    state["half"] = torch.arange(6, dtype=torch.float16).view(2, 3)[:, 1:]  # a strided view
    wrapped = type(state)(("module." + k, v) for k, v in state.items())
    torch.save({"state_dict": wrapped, "epoch": 5, "rank1": 0.875, "optimizer": optimizer.state_dict(),
                "args": argparse.Namespace(lr=0.1, names=["a", "b"])}, f"{directory}/checkpoint.pth")
    torch.save(dict(state), f"{directory}/expected.pt")


def import_(directory):
    model = torchvision.models.resnet50()
    state = torch.load(f"{directory}/libreid.pt")
    result = model.load_state_dict(state, strict=False)
    print("missing:", ",".join(sorted(result.missing_keys)))
    print("unexpected:", ",".join(sorted(result.unexpected_keys)))
    model.eval()
    io = torch.load(f"{directory}/libreid_io.pt")
    with torch.no_grad():
        out = backbone(model, io["input"])
    diff = (out - io["featuremap"]).abs().max().item()
    print(f"max_abs_diff: {diff:.3g}")
    return 0 if diff < 1e-4 else 1


if __name__ == "__main__":
    mode, directory = sys.argv[1], sys.argv[2]
    if mode in ("export", "checkpoint"):
        (export if mode == "export" else checkpoint)(directory)
        sys.exit(0)
    sys.exit(import_(directory))
