"""What the package's tests share: a tiny training config on the built-in synthetic dataset (a
one-epoch run takes about a second on two cores) and the executables' folder."""

import os

import pytest

BIN = os.environ.get("REID_BIN_DIR", "")

TINY = """
model: {name: osnet_x0_25}
data:
  sources: [synthetic]
  targets: [synthetic]
  height: 64
  width: 32
  synthetic: {train_ids: 8, test_ids: 4, cameras: 2, images_per_camera: 3, height: 64, width: 32}
  batch_size: 8
  workers: 1
sampler: {name: identity, num_instances: 2}
loss: {names: [ce, triplet]}
solver: {base_lr: 0.003, max_epochs: 1, milestones: [], eval_period: 1, log_period: 2}
test: {batch_size: 16, flip: true}
threads: 2
"""


def needs_executables():
    """Skips a test when REID_BIN_DIR (ctest sets it to the build's bin/) lacks the executables."""
    return pytest.mark.skipif(not os.path.isfile(os.path.join(BIN, "reid-train")),
                              reason="REID_BIN_DIR does not hold reid-train (set it to the build's bin/)")


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY)
    return path
