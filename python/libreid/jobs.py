"""LibReID's jobs from a config, as the executables run them: train (reid-train), test (reid-test)
and export (reid-export). Each takes a YAML config file (None: the built-in defaults) and
``overrides`` ("key=value" strings, as ``--set``), writes the same files as its executable into
the config's output_dir (log.txt included) and returns what it measured as a dict."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Sequence, Union

from . import _core

PathLike = Union[str, "os.PathLike[str]"]


def _config(config: Optional[PathLike]) -> str:
    if config is None:
        return ""
    path = os.fspath(config)
    if not path:
        raise ValueError("config: expected a YAML file's path, or None for the built-in defaults")
    return path


def _overrides(overrides: Sequence[str], output_dir: Optional[PathLike] = None,
               device: Optional[str] = None) -> list:
    if isinstance(overrides, (str, bytes)):
        raise TypeError("overrides: expected a list of 'key=value' strings, got one string")
    out = [str(o) for o in overrides]
    for item in out:
        if "=" not in item:
            raise ValueError(f"overrides: expected 'key=value', got {item!r}")
    # As the executables' -o and --device: after the other overrides, so that they win.
    if output_dir is not None:
        out.append(f"output_dir={os.fspath(output_dir)}")
    if device is not None:
        out.append(f"device={device}")
    return out


def train(config: Optional[PathLike] = None, overrides: Sequence[str] = (), *, output_dir: Optional[PathLike] = None,
          device: Optional[str] = None, resume: bool = False, overwrite: bool = False,
          callback: Optional[Callable[[Dict[str, Any]], None]] = None, verbose: bool = False) -> Dict[str, Any]:
    """Trains as ``reid-train -c config --set overrides...`` does, in this process.

    Writes into output_dir what reid-train writes: config.yaml, log.txt, metrics.jsonl / .csv,
    checkpoints/last.ckpt, model_best.pt / model_final.pt (and ranked lists, TensorBoard events
    as the config asks); progress goes to the console (stderr) as reid-train logs it.
    ``resume`` continues from the checkpoint; ``overwrite`` starts afresh in a folder that holds
    a run. ``callback(event)`` is called with each logged mean (``event["event"]`` is
    "iteration" or "epoch": loss, terms, lr, images_per_second, ...) and each evaluation
    ("evaluation": epoch, dataset, result as `libreid.evaluate` returns it).

    Ctrl-C, or an exception the callback raises, stops training after the current step with a
    checkpoint written (``resume=True`` continues from it); then that exception is raised. Under
    torchrun (RANK, WORLD_SIZE, ... set) each process joins the data-parallel job as reid-train
    does.

    Returns a dict: ``epochs``, ``interrupted``, ``best_metric`` / ``best_epoch``
    (solver.best_metric), ``results`` (the last evaluation by dataset), ``checkpoint``,
    ``final_weights``, ``train_seconds``, ``images_per_second``, ``output_dir``, ``rank``,
    ``world_size``.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite cannot be combined")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a function of one argument, got {type(callback).__name__}")
    return _core.train(_config(config), _overrides(overrides, output_dir, device), bool(resume), bool(overwrite),
                       callback, bool(verbose))


def test(config: Optional[PathLike] = None, overrides: Sequence[str] = (), *, weights: Optional[PathLike] = None,
         output_dir: Optional[PathLike] = None, device: Optional[str] = None,
         verbose: bool = False) -> Dict[str, Dict[str, Any]]:
    """Evaluates as ``reid-test`` does: ``weights`` (default: test.weights, else the run's
    model_best.pt / model_final.pt in output_dir) on every data.targets dataset, with the config's
    flip, re-ranking, ranked lists and saved features. Writes config_test.yaml and log.txt into
    output_dir. Returns {dataset: result as `libreid.evaluate` returns it}."""
    extra = list(overrides)
    if weights is not None:
        extra.append(f"test.weights={os.fspath(weights)}")
    return _core.test(_config(config), _overrides(extra, output_dir, device), bool(verbose))


def export(config: Optional[PathLike], weights: PathLike, *, onnx: Optional[PathLike] = None,
           torchscript: Optional[PathLike] = None, overrides: Sequence[str] = (), opset: int = 13,
           fold_batchnorm: bool = True) -> Dict[str, Any]:
    """Writes the configured model with ``weights`` (LibReID's or a Python state dict) as ONNX
    and / or TorchScript, as ``reid-export`` does, with the preprocessing it expects in the file's
    metadata (keys "reid.*"). ``opset``: 13 to 17; ``fold_batchnorm``: fold batch norms into the
    convolutions. Returns ``feature_dim``, ``input_size`` (height, width), ``metadata`` and the
    paths written. The TorchScript file loads with ``torch.jit.load``. Unlike reid-export it writes
    no log file."""
    if onnx is None and torchscript is None:
        raise ValueError("export: give onnx= and/or torchscript= (the files to write)")
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f"opset: expected an integer, got {opset!r}")
    return _core.export(_config(config), _overrides(overrides), os.fspath(weights),
                        "" if onnx is None else os.fspath(onnx), "" if torchscript is None else os.fspath(torchscript),
                        opset, bool(fold_batchnorm))
