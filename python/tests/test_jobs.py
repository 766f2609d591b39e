"""libreid.train / test / export against the executables: the same files and the same results,
progress through the callback, Ctrl-C and callback errors stopping with a checkpoint that
resumes to the uninterrupted run's weights, and errors as Python exceptions."""

import json
import os
import signal
import subprocess

import numpy as np
import pytest
import torch

import libreid

from conftest import BIN, needs_executables

TWO_EPOCHS = ["solver.max_epochs=2"]


def same_weights(a, b):
    return open(a, "rb").read() == open(b, "rb").read()


def losses(run_dir):
    out = []
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        record = json.loads(line)
        if "loss" in record:
            out.append((record.get("epoch"), record.get("iteration"), record["loss"]))
    return out


@pytest.fixture(scope="module")
def trained(tiny_config, tmp_path_factory):
    """A two-epoch run from Python, with every progress event."""
    out = tmp_path_factory.mktemp("py") / "run"
    events = []
    result = libreid.train(tiny_config, TWO_EPOCHS, output_dir=out, callback=events.append)
    return out, result, events


def test_train_writes_a_run_and_reports_progress(trained):
    out, result, events = trained
    for name in ("config.yaml", "log.txt", "metrics.jsonl", "metrics.csv", "model_final.pt", "model_best.pt",
                 "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    assert result["epochs"] == 2 and not result["interrupted"]
    assert result["final_weights"] == str(out / "model_final.pt")
    assert result["output_dir"] == str(out) and result["world_size"] == 1
    assert "libreid.train" in (out / "log.txt").read_text()
    kinds = [e["event"] for e in events]
    assert kinds.count("epoch") == 2 and kinds.count("evaluation") == 2 and "iteration" in kinds
    iteration = next(e for e in events if e["event"] == "iteration")
    assert {"ce", "triplet", "accuracy"} <= set(iteration["terms"]) and iteration["batches"] == 5
    assert iteration["loss"] == pytest.approx(iteration["terms"]["ce"] + iteration["terms"]["triplet"], rel=1e-5)
    last = [e for e in events if e["event"] == "evaluation"][-1]
    assert last["epoch"] == 2 and last["dataset"] == "synthetic"
    assert last["result"]["mAP"] == result["results"]["synthetic"]["mAP"]
    best = max((e for e in events if e["event"] == "evaluation"), key=lambda e: e["result"]["cmc"][0])
    assert result["best_metric"] == pytest.approx(float(best["result"]["cmc"][0]))


@needs_executables()
def test_train_equals_reid_train(trained, tiny_config, tmp_path):
    out, _, _ = trained
    subprocess.run([os.path.join(BIN, "reid-train"), "-c", str(tiny_config), "--set", *TWO_EPOCHS, "-o",
                    str(tmp_path / "cli")], check=True, capture_output=True,
                   env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert len(losses(out)) >= 4 and losses(out) == losses(tmp_path / "cli")
    assert same_weights(out / "model_final.pt", tmp_path / "cli" / "model_final.pt")


def test_test_evaluates_the_run_as_training_did(trained):
    out, result, events = trained
    results = libreid.test(out / "config.yaml")  # the run's config: its output_dir, model_best.pt
    assert set(results) == {"synthetic"}
    best = [e for e in events if e["event"] == "evaluation" and e["epoch"] == result["best_epoch"]][0]
    assert results["synthetic"]["mAP"] == pytest.approx(best["result"]["mAP"], abs=1e-6)
    np.testing.assert_allclose(results["synthetic"]["cmc"].numpy(), best["result"]["cmc"].numpy(), atol=1e-6)
    assert (out / "config_test.yaml").is_file()
    final = libreid.test(out / "config.yaml", weights=out / "model_final.pt")
    assert final["synthetic"]["mAP"] == pytest.approx(result["results"]["synthetic"]["mAP"], abs=1e-6)


def test_ctrl_c_stops_with_a_checkpoint_that_resumes_to_the_same_weights(trained, tiny_config, tmp_path):
    out, _, _ = trained
    seen = []

    def interrupt_in_epoch_two(event):
        seen.append(event)
        if event["event"] == "iteration" and event["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: Python's handler raises KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        libreid.train(tiny_config, TWO_EPOCHS, output_dir=tmp_path / "run", callback=interrupt_in_epoch_two)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "run" / "model_final.pt").exists()
    result = libreid.train(tiny_config, TWO_EPOCHS, output_dir=tmp_path / "run", resume=True)
    assert result["epochs"] == 2 and not result["interrupted"]
    assert same_weights(tmp_path / "run" / "model_final.pt", out / "model_final.pt")


def test_a_callback_error_stops_training_and_is_raised(tiny_config, tmp_path):
    def fail(event):
        if event["event"] == "epoch":
            raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        libreid.train(tiny_config, TWO_EPOCHS, output_dir=tmp_path / "run", callback=fail)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    # The next job logs to its own folder, not to the stopped run's log.
    size = (tmp_path / "run" / "log.txt").stat().st_size
    libreid.train(tiny_config, output_dir=tmp_path / "other")
    assert (tmp_path / "run" / "log.txt").stat().st_size == size


def test_job_errors_are_python_exceptions(trained, tiny_config, tmp_path):
    out, _, _ = trained
    with pytest.raises(libreid.ConfigError, match="solver.max_epoch"):
        libreid.train(tiny_config, ["solver.max_epoch=3"], output_dir=tmp_path / "a")
    with pytest.raises(libreid.ConfigError, match="output_dir"):  # holds a run: refused, nothing removed
        libreid.train(tiny_config, output_dir=out)
    assert (out / "model_final.pt").is_file()
    with pytest.raises(libreid.IOError, match="nothing.yaml"):
        libreid.train(tmp_path / "nothing.yaml")
    with pytest.raises(ValueError, match="key=value"):
        libreid.train(tiny_config, ["solver.max_epochs"])
    with pytest.raises(ValueError, match="resume"):
        libreid.train(tiny_config, resume=True, overwrite=True)
    with pytest.raises(TypeError, match="callback"):
        libreid.train(tiny_config, callback=3)
    with pytest.raises(libreid.ConfigError, match="test.weights"):
        libreid.test(tiny_config, output_dir=tmp_path / "empty")
    assert "error" in (tmp_path / "empty" / "log.txt").read_text()  # kept in the run's log, as reid-test does


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_export_writes_torchscript_with_the_embedders_features(trained, tmp_path):
    out, _, _ = trained
    written = libreid.export(out / "config.yaml", out / "model_final.pt", torchscript=tmp_path / "m.pt",
                             onnx=tmp_path / "m.onnx")
    assert written["feature_dim"] == 512 and written["input_size"] == (64, 32)
    assert written["metadata"]["reid.model"] == "osnet_x0_25"
    assert os.path.getsize(tmp_path / "m.onnx") > 10000
    module = torch.jit.load(str(tmp_path / "m.pt"))
    embedder = libreid.Embedder(out / "config.yaml", out / "model_final.pt", flip=False, normalize=False)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (96, 40, 3), dtype=np.uint8) for _ in range(3)]
    with torch.no_grad():
        got = module(embedder.preprocess(crops))
    np.testing.assert_allclose(got.numpy(), embedder.embed(crops).numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="onnx= and/or torchscript="):
        libreid.export(out / "config.yaml", out / "model_final.pt")
    with pytest.raises(libreid.IOError, match="missing.pt"):
        libreid.export(out / "config.yaml", out / "missing.pt", torchscript=tmp_path / "x.pt")
