"""libreid.DataLoader: a test split's batches equal to the Embedder's preprocessing of the same
files (decoded here by PIL), training batches in the sampler's P x K structure, independent of
the number of loader threads and reproducible per epoch, and errors naming the file or key."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import libreid

IDS, CAMERAS, PER_CAMERA = 6, 2, 3

CONFIG = """
model: {{name: osnet_x0_25}}
data:
  sources: [custom]
  targets: [custom]
  height: 64
  width: 32
  custom: {{image_root: {root}, train_list: {root}/train.txt, query_list: {root}/query.txt,
           gallery_list: {root}/gallery.txt}}
  transforms: [random_flip, pad_crop, random_erasing]
  batch_size: 8
  workers: 2
sampler: {{name: identity, num_instances: 2}}
loss: {{names: [ce, triplet]}}
solver: {{base_lr: 0.003, max_epochs: 1, milestones: [], eval_period: 1}}
test: {{batch_size: 5}}
output_dir: {root}/out
threads: 2
"""


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    """A `custom` dataset of random PNG crops of several sizes (lossless: PIL and OpenCV decode
    the same pixels), trained on and tested on (raw ids 100+ in its query / gallery lists)."""
    root = tmp_path_factory.mktemp("custom")
    rng = np.random.default_rng(0)
    lists = {"train": [], "query": [], "gallery": []}
    for pid in range(IDS):
        for cam in range(CAMERAS):
            for k in range(PER_CAMERA):
                h, w = int(rng.integers(50, 130)), int(rng.integers(20, 60))
                image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                name = f"p{pid}_c{cam}_{k}.png"
                Image.fromarray(image).save(root / name)
                lists["train"].append(f"{name} {pid} {cam}")
                lists["query" if k == 0 else "gallery"].append(f"{name} {100 + pid} {cam}")
    for split, lines in lists.items():
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    config = root / "custom.yaml"
    config.write_text(CONFIG.format(root=root))
    return root, config


def test_test_splits_are_the_embedders_preprocessing_of_the_files(custom):
    root, config = custom
    result = libreid.train(config)  # weights for an Embedder of this config
    embedder = libreid.Embedder(config, result["final_weights"])
    for split, count in (("query", IDS * CAMERAS), ("gallery", IDS * CAMERAS * (PER_CAMERA - 1))):
        loader = libreid.DataLoader(config, split=split)
        assert len(loader) == -(-count // 5) and loader.batch_size == 5
        records = loader.records
        assert len(records) == count and all(pid >= 100 for _, pid, _ in records)
        images, pids, camids = [], [], []
        for batch in loader:
            assert batch.images.dtype == torch.float32 and batch.images.shape[1:] == (3, 64, 32)
            images.append(batch.images)
            pids.append(batch.pids)
            camids.append(batch.camids)
        images = torch.cat(images)
        assert torch.cat(pids).tolist() == [pid for _, pid, _ in records]
        assert torch.cat(camids).tolist() == [cam for _, _, cam in records]
        decoded = [np.asarray(Image.open(path).convert("RGB")) for path, _, _ in records]
        np.testing.assert_allclose(images.numpy(), embedder.preprocess(decoded).numpy(), atol=1e-6)
        # A second pass gives the same batches (no augmentation, no epoch change).
        assert torch.equal(torch.cat([b.images for b in loader]), images)


def test_training_batches_follow_the_sampler_and_are_reproducible(custom):
    _, config = custom
    loader = libreid.DataLoader(config)
    assert loader.num_classes == IDS and loader.num_cameras == CAMERAS and loader.batch_size == 8
    assert sorted({pid for _, pid, _ in loader.records}) == list(range(IDS))  # relabelled 0..N-1
    plan = loader.plan()
    assert len(loader) == len(plan) > 0
    epoch0 = list(loader)
    assert loader.epoch == 1 and [b.pids.tolist() for b in epoch0] == [
        [loader.records[i][1] for i in batch] for batch in plan]
    for batch in epoch0:  # P x K: 4 identities, 2 consecutive images each
        pids = batch.pids.tolist()
        assert pids[0::2] == pids[1::2] and len(set(pids)) == 4
        assert batch.images.shape == (8, 3, 64, 32)
    epoch1 = list(loader)
    assert any(not torch.equal(a.images, b.images) for a, b in zip(epoch0, epoch1))
    # Epoch 0 again, with other thread counts: the same images (augmentation seeded per image).
    for workers in (0, 3):
        again = libreid.DataLoader(config, workers=workers)
        batches = list(again)
        assert len(batches) == len(epoch0)
        for a, b in zip(epoch0, batches):
            assert torch.equal(a.images, b.images) and torch.equal(a.pids, b.pids)
    again.set_epoch(1)
    assert torch.equal(next(iter(again)).images, epoch1[0].images)
    # Augmented: the same image differs from its test-transform version.
    test_view = libreid.DataLoader(config, ["data.transforms=[]"], workers=0)
    assert not torch.equal(next(iter(test_view)).images, epoch0[0].images)


def test_loader_errors_name_the_key_or_file(custom, tmp_path):
    root, config = custom
    with pytest.raises(ValueError, match="split"):
        libreid.DataLoader(config, split="val")
    with pytest.raises(libreid.ConfigError, match="dataset.*market1501.*custom"):
        libreid.DataLoader(config, split="query", dataset="market1501")
    with pytest.raises(libreid.ConfigError, match="data.batch_size"):
        libreid.DataLoader(config, ["data.batch_size=7"])
    with pytest.raises(ValueError, match="workers"):
        libreid.DataLoader(config, workers=-1)
    # An unreadable image: the error names it when its batch is loaded.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not an image")
    (bad / "good.png").write_bytes((root / "p0_c0_0.png").read_bytes())
    (bad / "query.txt").write_text("good.png 1 0\n")
    (bad / "gallery.txt").write_text("good.png 1 1\nbroken.png 1 0\n")
    text = config.read_text().replace(str(root) + "/query.txt", str(bad / "query.txt")).replace(
        str(root) + "/gallery.txt", str(bad / "gallery.txt")).replace(f"image_root: {root},", f"image_root: {bad},")
    text = text.replace(f"train_list: {root}/train.txt, ", "")
    (bad / "bad.yaml").write_text(text)
    with pytest.raises(libreid.IOError, match="broken.png"):
        list(libreid.DataLoader(bad / "bad.yaml", split="gallery"))
    # Unless the config asks to leave such images out.
    skipping = libreid.DataLoader(bad / "bad.yaml", ["data.skip_bad_images=true"], split="gallery")
    assert [r[0] for r in skipping.records] == [str(bad / "good.png")]
    assert [b.images.shape[0] for b in skipping] == [1]


def test_the_training_loop_example_learns(tmp_path):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "train_loop.py")
    done = subprocess.run([sys.executable, example, "--epochs", "4"], check=True, capture_output=True, text=True,
                          cwd=tmp_path)
    epoch_losses = [float(x) for x in re.findall(r"epoch \d+: loss ([0-9.]+)", done.stdout)]
    assert len(epoch_losses) == 4 and epoch_losses[-1] < 0.7 * epoch_losses[0], done.stdout
    assert re.search(r"mAP [0-9.]+% \| rank-1", done.stdout), done.stdout
