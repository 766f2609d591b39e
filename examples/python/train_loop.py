"""Trains a person re-identification model in a plain PyTorch loop fed by LibReID's data loader,
then evaluates it with LibReID's evaluator: the model, losses and optimiser are yours, the data
(datasets, P x K sampling, augmentation, threaded decoding outside the GIL) and the metrics are
LibReID's.

    python examples/python/train_loop.py                       # a small synthetic dataset
    python examples/python/train_loop.py market.yaml --set data.root=/data --backbone resnet50

A config file chooses the data as for reid-train (data.sources / targets, data.root, height,
width, transforms, batch_size, sampler.*); --set overrides its keys. Without one the built-in
`synthetic` dataset is used. --backbone resnet18 / resnet50 take torchvision's (untrained)
networks; the default is a small CNN that trains in seconds on a CPU.
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import libreid

SYNTHETIC = ["data.sources=[synthetic]", "data.targets=[synthetic]", "data.height=64", "data.width=32",
             "data.synthetic.train_ids=16", "data.synthetic.test_ids=8", "data.synthetic.height=64",
             "data.synthetic.width=32", "data.batch_size=16", "sampler.name=identity", "sampler.num_instances=4",
             "test.batch_size=64"]


class SmallNet(nn.Module):
    """Four conv blocks and global average pooling: a 256-d feature."""

    def __init__(self):
        super().__init__()
        layers, width = [], 3
        for out in (32, 64, 128, 256):
            layers += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            width = out
        self.body = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


def backbone(name):
    if name == "small":
        return SmallNet()
    import torchvision  # only for these

    net = getattr(torchvision.models, name)(weights=None)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    net.out_features = dim
    return net


class ReidNet(nn.Module):
    """Backbone, a BNNeck (batch norm before the classifier) and an identity classifier."""

    def __init__(self, body, num_classes):
        super().__init__()
        self.body = body
        self.neck = nn.BatchNorm1d(body.out_features)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(body.out_features, num_classes, bias=False)

    def forward(self, x):
        feature = self.body(x)
        return feature, self.classifier(self.neck(feature))


def batch_hard_triplet(features, pids, margin=0.3):
    distances = torch.cdist(features, features)
    same = pids[:, None] == pids[None, :]
    hardest_positive = (distances * same).max(1).values
    hardest_negative = distances.masked_fill(same, float("inf")).min(1).values
    return F.relu(hardest_positive - hardest_negative + margin).mean()


@torch.no_grad()
def features_of(model, loader, device):
    model.eval()
    out, pids, camids = [], [], []
    for images, p, c in loader:
        out.append(model.neck(model.body(images.to(device))).cpu())
        pids.append(p)
        camids.append(c)
    model.train()
    return torch.cat(out), torch.cat(pids), torch.cat(camids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", help="LibReID YAML config (default: a small synthetic dataset)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3.5e-4)
    parser.add_argument("--backbone", default="small", choices=["small", "resnet18", "resnet50"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    overrides = ([] if args.config else SYNTHETIC) + args.set

    train = libreid.DataLoader(args.config, overrides)
    query = libreid.DataLoader(args.config, overrides, split="query")
    gallery = libreid.DataLoader(args.config, overrides, split="gallery")
    print(train)
    model = ReidNet(backbone(args.backbone), train.num_classes).to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=5e-4)

    for epoch in range(args.epochs):
        start, total, count = time.time(), 0.0, 0
        for images, pids, _ in train:  # one epoch; the next iteration gives the next one
            images, pids = images.to(args.device, non_blocking=True), pids.to(args.device)
            feature, logits = model(images)
            loss = F.cross_entropy(logits, pids, label_smoothing=0.1) + batch_hard_triplet(feature, pids)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(pids)
            count += len(pids)
        print(f"epoch {epoch + 1}: loss {total / count:.4f} ({count / (time.time() - start):.0f} images/s)")

    qf, q_pids, q_camids = features_of(model, query, args.device)
    gf, g_pids, g_camids = features_of(model, gallery, args.device)
    result = libreid.evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, metric="cosine")
    cmc = result["cmc"]
    print(f"mAP {100 * result['mAP']:.1f}% | rank-1 {100 * cmc[0]:.1f}% | rank-5 {100 * cmc[4]:.1f}% "
          f"({result['num_valid']} queries)")


if __name__ == "__main__":
    main()
