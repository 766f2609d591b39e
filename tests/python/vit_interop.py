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


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "export":
        sys.exit(__doc__)
    export(sys.argv[2])
