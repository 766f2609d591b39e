"""libreid.Embedder against LibReID's C++ extraction (reid-extract) on the same images, with a
model trained for one epoch by reid-train here. Needs the executables: REID_BIN_DIR (ctest sets
it to the build's bin/)."""

import os
import subprocess

import numpy as np
import pytest
import torch

import libreid

from conftest import BIN, TINY, needs_executables

pytestmark = needs_executables()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    (folder / "tiny.yaml").write_text(TINY)
    subprocess.run([os.path.join(BIN, "reid-train"), "-c", str(folder / "tiny.yaml"), "-o", str(folder / "out")],
                   check=True, capture_output=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    return folder


def crops(count=7, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        h, w = rng.integers(40, 140), rng.integers(20, 70)  # any size: resized by the Embedder
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image[h // 3: 2 * h // 3, :, i % 3] = 255  # some structure, so features differ
        out.append(image)
    return out


def test_equals_the_cpp_extraction_on_the_same_images(run, tmp_path):
    from PIL import Image

    images = crops()
    paths = []
    for i, image in enumerate(images):
        path = tmp_path / f"crop_{i}.png"
        Image.fromarray(image).save(path)  # RGB, lossless
        paths.append(str(path))
    (tmp_path / "list.txt").write_text("\n".join(paths) + "\n")
    out = run / "out"
    subprocess.run([os.path.join(BIN, "reid-extract"), "-c", str(out / "config.yaml"), "--weights",
                    str(out / "model_final.pt"), "--list", str(tmp_path / "list.txt"), "-o", str(tmp_path)],
                   check=True, capture_output=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    expected = np.load(tmp_path / "features_features.npy")
    # reid-extract writes the model's features as evaluation sees them (flip-averaged, not
    # normalised unless test.normalize): the same Embedder settings.
    embedder = libreid.Embedder.from_run(str(out), normalize=False)
    assert embedder.input_size == (64, 32) and embedder.feature_dim == expected.shape[1]
    originals = [im.copy() for im in images]
    got = embedder.embed(images).numpy()
    for image, original in zip(images, originals):  # read in place, never written
        np.testing.assert_array_equal(image, original)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # From the config and weights: the same model. BGR input in OpenCV's order: the same features.
    again = libreid.Embedder(str(out / "config.yaml"), str(out / "model_final.pt"), normalize=False)
    np.testing.assert_allclose(again.embed([im[..., ::-1] for im in images], color="bgr").numpy(), got, atol=1e-6)


def test_inputs_options_and_errors(run):
    out = str(run / "out")
    embedder = libreid.Embedder.from_run(out)
    images = crops(4, seed=1)
    features = embedder.embed(images)
    assert features.dtype == torch.float32 and features.shape == (4, embedder.feature_dim)
    np.testing.assert_allclose(features.norm(dim=1).numpy(), 1.0, atol=1e-5)  # normalised by default
    # A [N, H, W, 3] batch and torch tensors: the same as a list of arrays.
    same = [np.ascontiguousarray(im[:64, :32]) for im in images if im.shape[0] >= 64 and im.shape[1] >= 32]
    if same:
        batch = np.stack(same)
        np.testing.assert_allclose(embedder.embed(batch).numpy(), embedder.embed(same).numpy(), atol=1e-6)
        np.testing.assert_allclose(embedder.embed(torch.from_numpy(batch)).numpy(),
                                   embedder.embed(same).numpy(), atol=1e-6)
    # Grey crops are converted; a tracklet's feature is one vector.
    grey = [im[..., 0].copy() for im in images]
    assert embedder.embed(grey).shape == (4, embedder.feature_dim)
    assert embedder.embed_tracklet(images).shape == (embedder.feature_dim,)
    assert embedder.preprocess(images[:2]).shape == (2, 3, 64, 32)
    assert "Embedder(64x32" in repr(embedder)
    with pytest.raises(TypeError, match="crop 1: expected 8-bit"):
        embedder.embed([images[0], images[1].astype(np.float32)])
    with pytest.raises(libreid.Error, match="crop 0"):
        embedder.embed([np.zeros((10, 10, 2), dtype=np.uint8)])
    with pytest.raises(ValueError, match="color"):
        embedder.embed(images, color="hsv")
    with pytest.raises(libreid.IOError, match="no_such_run"):
        libreid.Embedder.from_run(str(run / "no_such_run"))
    with pytest.raises(libreid.ConfigError, match="dtype"):
        libreid.Embedder.from_run(out, dtype="int8")
