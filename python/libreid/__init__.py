"""LibReID from Python: the C++ core's person re-identification evaluation, distances,
re-ranking, Embedder, exporter, data loader and training on the tensors of the PyTorch you
imported.

Arrays go in as torch tensors, NumPy arrays or lists; a contiguous float32 CPU tensor (or a NumPy
array viewed as one) reaches the C++ code without a copy. Results are plain dicts of floats and
tensors, or NumPy arrays where the input was NumPy. C++ errors are raised as `libreid.Error`
(`ConfigError`, `IOError`) with the C++ message; the GIL is released while C++ works, and Ctrl-C
stops a long evaluation between blocks of queries.

Evaluation follows the Market-1501 protocol (gallery items of the query's identity seen by the
query's camera are left out; queries without a true match are skipped), exactly: ties in
distance are broken by gallery index. `average_precision` selects the AP convention: "hits"
(the mean of the precision at each true match, as torchreid, fast-reid and BoT compute it) or
"trapezoid" (the official Market-1501 evaluation code's, about 0.5-1 mAP point lower).

`Embedder` runs a trained LibReID model (a run folder, or a config and weights: LibReID's or a
Python state dict) on crops in memory: NumPy / torch 8-bit images in, [N, D] features out,
through the same preprocessing and traced model as the C++ Embedder.

`train`, `test` and `export` run a YAML config's job as reid-train, reid-test and reid-export do
(the same files, the same results); `DataLoader` feeds a Python training loop with LibReID's
datasets, samplers and threaded loader.

Drop-ins for torchreid: `evaluate_rank` (torchreid.metrics.evaluate_rank) and `re_ranking`
(torchreid.utils.re_ranking) take the same arguments and return the same values.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch  # first: loads the LibTorch that the extension links

from . import _core
from ._core import ConfigError, Error, IOError
from .data import Batch, DataLoader
from .jobs import export, test, train

__all__ = [
    "Error",
    "ConfigError",
    "IOError",
    "evaluate",
    "evaluate_features",
    "distance",
    "rerank",
    "re_ranking",
    "evaluate_rank",
    "Embedder",
    "DataLoader",
    "Batch",
    "train",
    "test",
    "export",
]

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[Any]]

_METRICS = ("euclidean", "cosine")
_AP_CONVENTIONS = ("hits", "trapezoid")


def _as_tensor(value: Any) -> torch.Tensor:
    """A tensor sharing the memory of `value` when it is a NumPy array torch can view (a copy only
    for negative strides, e.g. ``image[..., ::-1]``, which torch tensors cannot have)."""
    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    if any(stride < 0 for stride in array.strides):
        array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        # A read-only array (np.asarray of a PIL image, a memory map): shared all the same, as
        # LibReID only reads its inputs; torch's warning about writing to it does not apply.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.as_tensor(array)
    return torch.as_tensor(array)


def _tensor(value: ArrayLike, name: str, dims: int, floating: bool) -> torch.Tensor:
    """`value` as a CPU tensor of `dims` dimensions, shared with its NumPy array when it is one."""
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        try:
            tensor = _as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"{name}: expected a tensor or array, got {type(value).__name__} ({error})") from None
    if tensor.dim() != dims:
        shape = "[N]" if dims == 1 else "[N, M]"
        raise ValueError(f"{name}: expected {dims} dimension(s) {shape}, got shape {tuple(tensor.shape)}")
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if floating:
        if not tensor.is_floating_point():
            raise TypeError(f"{name}: expected floating-point values, got {tensor.dtype}")
    else:
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise TypeError(f"{name}: expected integer labels, got {tensor.dtype}")
        tensor = tensor.to(torch.int64)
    return tensor


def _labels(q_pids, g_pids, q_camids, g_camids, num_query: int, num_gallery: int):
    out = []
    for name, value, size in (("q_pids", q_pids, num_query), ("g_pids", g_pids, num_gallery),
                               ("q_camids", q_camids, num_query), ("g_camids", g_camids, num_gallery)):
        tensor = _tensor(value, name, 1, floating=False)
        if tensor.numel() != size:
            raise ValueError(f"{name}: {tensor.numel()} labels for {size} {'queries' if name[0] == 'q' else 'gallery items'}")
        out.append(tensor)
    return out


def _choice(name: str, value: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ValueError(f"{name}: expected one of {', '.join(valid)}, got {value!r}")
    return value


def _positive_int(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_numpy(result: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in result.items()}


def evaluate(distmat: ArrayLike, q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike, g_camids: ArrayLike,
             *, max_rank: int = 50, average_precision: str = "hits", cuhk03_single_shot: bool = False,
             repeats: int = 10, seed: int = 0, roc: bool = False, block_rows: int = 0) -> Dict[str, Any]:
    """Retrieval metrics of a [num_query, num_gallery] distance matrix (smaller is closer).

    Returns a dict: ``cmc`` (CMC@1..max_rank), ``mAP``, ``mINP``, ``num_queries``, ``num_valid``
    (queries with a true match), per query ``ap``, ``inp`` and ``first_rank`` (NaN / 0 for skipped
    queries), ``tpr_at_fpr`` ({1e-4: ..., 1e-3: ..., 1e-2: ...} with ``roc=True``) and
    ``average_precision``. Arrays are tensors, or NumPy arrays when ``distmat`` is one.

    ``cuhk03_single_shot``: CUHK03's classic protocol, the CMC averaged over ``repeats`` draws of
    one gallery image per identity (seeded by ``seed``); AP over the whole gallery.
    ``block_rows``: query rows per block of work (0: about 64 MB of distances per block).
    """
    numpy_in = isinstance(distmat, np.ndarray)
    d = _tensor(distmat, "distmat", 2, floating=True)
    labels = _labels(q_pids, g_pids, q_camids, g_camids, d.shape[0], d.shape[1])
    max_rank = _positive_int("max_rank", max_rank)
    _choice("average_precision", average_precision, _AP_CONVENTIONS)
    if cuhk03_single_shot:
        result = _core.evaluate_cuhk03(d, *labels, max_rank, _positive_int("repeats", repeats), int(seed),
                                       average_precision)
    else:
        result = _core.evaluate(d, *labels, max_rank, average_precision, bool(roc),
                                _positive_int("block_rows", block_rows, 0))
    return _as_numpy(result) if numpy_in else result


def _flip_average(features: torch.Tensor, flipped: Optional[ArrayLike], name: str) -> torch.Tensor:
    if flipped is None:
        return features
    other = _tensor(flipped, name, 2, floating=True)
    if other.shape != features.shape:
        raise ValueError(f"{name}: shape {tuple(other.shape)} differs from the features' {tuple(features.shape)}")
    return (features + other) / 2


def evaluate_features(query_features: ArrayLike, gallery_features: ArrayLike, q_pids: ArrayLike,
                      g_pids: ArrayLike, q_camids: ArrayLike, g_camids: ArrayLike, *, metric: str = "euclidean",
                      normalize: bool = False, query_flipped: Optional[ArrayLike] = None,
                      gallery_flipped: Optional[ArrayLike] = None, query_expansion: int = 0, rerank: bool = False,
                      k1: int = 20, k2: int = 6, lambda_value: float = 0.3, max_rank: int = 50,
                      average_precision: str = "hits", cuhk03_single_shot: bool = False, seed: int = 0,
                      roc: bool = False) -> Dict[str, Any]:
    """Retrieval metrics of query [N, D] and gallery [M, D] features, as `reid-eval` computes them.

    The distances are computed block by block and never held whole. ``metric``: "euclidean"
    (squared, as torchreid) or "cosine"; ``normalize`` L2-normalises the features first;
    ``query_flipped`` / ``gallery_flipped``: features of the mirrored images, averaged with the
    others first (test-time flip); ``query_expansion``: average query expansion with that many
    gallery neighbours; ``rerank``: k-reciprocal re-ranking (k1, k2, lambda_value). The result is
    that of `evaluate`.
    """
    numpy_in = isinstance(query_features, np.ndarray)
    qf = _flip_average(_tensor(query_features, "query_features", 2, floating=True), query_flipped, "query_flipped")
    gf = _flip_average(_tensor(gallery_features, "gallery_features", 2, floating=True), gallery_flipped,
                       "gallery_flipped")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"query features have {qf.shape[1]} dimensions, gallery features {gf.shape[1]}")
    labels = _labels(q_pids, g_pids, q_camids, g_camids, qf.shape[0], gf.shape[0])
    result = _core.evaluate_features(
        qf, gf, *labels, _choice("metric", metric, _METRICS), bool(normalize),
        _positive_int("query_expansion", query_expansion, 0), bool(rerank), _positive_int("k1", k1),
        _positive_int("k2", k2), _unit_interval("lambda_value", lambda_value), bool(cuhk03_single_shot), int(seed),
        _positive_int("max_rank", max_rank), _choice("average_precision", average_precision, _AP_CONVENTIONS),
        bool(roc))
    return _as_numpy(result) if numpy_in else result


def _unit_interval(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)


def distance(query: ArrayLike, gallery: ArrayLike, metric: str = "euclidean") -> torch.Tensor:
    """The [N, M] distances LibReID ranks with: squared euclidean (clamped at 0) or cosine
    (1 - cos). Runs on the inputs' device and dtype; differentiable."""
    q, g = _as_tensor(query), _as_tensor(gallery)
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery must be [N, D] and [M, D], got {tuple(q.shape)} and {tuple(g.shape)}")
    return _core.distance(q, g, _choice("metric", metric, _METRICS))


def rerank(query_features: ArrayLike, gallery_features: ArrayLike, *, metric: str = "euclidean", k1: int = 20,
           k2: int = 6, lambda_value: float = 0.3) -> torch.Tensor:
    """k-reciprocal re-ranked [N, M] distances of query and gallery features (Zhong et al., CVPR
    2017), with memory linear in N + M apart from the result."""
    qf = _tensor(query_features, "query_features", 2, floating=True)
    gf = _tensor(gallery_features, "gallery_features", 2, floating=True)
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"query features have {qf.shape[1]} dimensions, gallery features {gf.shape[1]}")
    return _core.rerank_features(qf, gf, _choice("metric", metric, _METRICS), _positive_int("k1", k1),
                                 _positive_int("k2", k2), _unit_interval("lambda_value", lambda_value))


def re_ranking(q_g_dist: ArrayLike, q_q_dist: ArrayLike, g_g_dist: ArrayLike, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3) -> np.ndarray:
    """Drop-in for torchreid.utils.re_ranking: the same arguments, the same [Q, G] float32 NumPy
    result. As torchreid's, it squares the given distances before re-ranking."""
    qg = _tensor(q_g_dist, "q_g_dist", 2, floating=True).float()
    qq = _tensor(q_q_dist, "q_q_dist", 2, floating=True).float()
    gg = _tensor(g_g_dist, "g_g_dist", 2, floating=True).float()
    nq, ng = qg.shape
    if qq.shape != (nq, nq) or gg.shape != (ng, ng):
        raise ValueError(f"expected q_q_dist [{nq}, {nq}] and g_g_dist [{ng}, {ng}] for q_g_dist [{nq}, {ng}], got "
                         f"{tuple(qq.shape)} and {tuple(gg.shape)}")
    # The [Q + G, Q + G] matrix, filled in place (no intermediate copies of it), squared.
    full = torch.empty(nq + ng, nq + ng, dtype=torch.float32)
    full[:nq, :nq] = qq
    full[:nq, nq:] = qg
    full[nq:, :nq] = qg.t()
    full[nq:, nq:] = gg
    full.pow_(2)
    out = _core.rerank_distances(full, nq, _positive_int("k1", k1), _positive_int("k2", k2),
                                 _unit_interval("lambda_value", lambda_value))
    return out.numpy()


def evaluate_rank(distmat: ArrayLike, q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike,
                  g_camids: ArrayLike, max_rank: int = 50, use_metric_cuhk03: bool = False,
                  use_cython: bool = True) -> Tuple[np.ndarray, float]:
    """Drop-in for torchreid.metrics.evaluate_rank: returns (cmc, mAP), cmc a float32 NumPy array
    of CMC@1..max_rank (max_rank capped at the gallery size, as torchreid does) and mAP a float.

    ``use_metric_cuhk03``: CUHK03's single-gallery-shot CMC, 10 draws as torchreid, but from a
    seeded generator instead of NumPy's global one, so the CMC is reproducible (and differs from
    torchreid's own random draws within their spread); mAP is the same. ``use_cython`` is
    accepted and ignored (there is one implementation).
    """
    del use_cython
    d = _tensor(distmat, "distmat", 2, floating=True)
    max_rank = min(_positive_int("max_rank", max_rank), d.shape[1])
    result = evaluate(d, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank,
                      cuhk03_single_shot=bool(use_metric_cuhk03))
    return result["cmc"].numpy().astype(np.float32), float(result["mAP"])


def _crop(value: Any, index: int) -> torch.Tensor:
    tensor = _as_tensor(value)
    if tensor.dtype != torch.uint8:
        raise TypeError(f"crop {index}: expected 8-bit pixels (uint8), got {tensor.dtype}")
    return tensor.cpu()


def _color(color: str) -> bool:
    return _choice("color", color, ("rgb", "bgr")) == "rgb"


class Embedder:
    """A trained model ready to embed person crops, as LibReID's C++ Embedder (the same
    preprocessing: resize, RGB, the config's mean / std; the traced model with its batch norms
    folded; optional flip averaging; L2-normalised features by default).

    ``Embedder.from_run(run_dir)`` takes a training run's folder (its config.yaml and
    model_best.pt, else model_final.pt); ``Embedder(config, weights, overrides=[...])`` a config
    file and a weights file (LibReID's, or torch.save(model.state_dict()), torchreid / fast-reid
    checkpoints). ``device``: "cpu", "cuda", "cuda:1"; ``dtype``: "float32", or "float16" /
    "bfloat16" on CUDA; ``batch_size``: crops per forward pass (0: chosen for the model);
    ``flip``: average with the mirrored crop (default: the config's test.flip).
    """

    def __init__(self, config: str, weights: str, *, overrides: Sequence[str] = (), device: str = "cpu",
                 dtype: str = "float32", batch_size: int = 0, flip: Optional[bool] = None,
                 normalize: bool = True):
        self._core = _core.Embedder.from_config(str(config), [str(o) for o in overrides], str(weights), device, dtype,
                                                _positive_int("batch_size", batch_size, 0),
                                                -1 if flip is None else int(bool(flip)), bool(normalize))

    @classmethod
    def from_run(cls, run_dir: str, *, device: str = "cpu", dtype: str = "float32", batch_size: int = 0,
                 flip: Optional[bool] = None, normalize: bool = True) -> "Embedder":
        core = _core.Embedder.from_run(str(run_dir), device, dtype, _positive_int("batch_size", batch_size, 0),
                                       -1 if flip is None else int(bool(flip)), bool(normalize))
        embedder = cls.__new__(cls)
        embedder._core = core
        return embedder

    def embed(self, crops: Sequence[Any], *, color: str = "rgb") -> torch.Tensor:
        """Features of ``crops`` (8-bit images of any size, [H, W, 3] RGB by default, ``color="bgr"``
        for OpenCV's order; [H, W] grey and [H, W, 4] are converted): float32 [N, D] on the CPU."""
        if isinstance(crops, (np.ndarray, torch.Tensor)) and crops.ndim == 4:
            crops = list(crops)
        return self._core.embed([_crop(c, i) for i, c in enumerate(crops)], _color(color))

    def embed_tracklet(self, frames: Sequence[Any], *, color: str = "rgb") -> torch.Tensor:
        """Feature [D] of a tracklet (one person's crops from one camera): the mean of its frames'
        features before normalisation (see the C++ Embedder::embed_tracklet)."""
        return self.embed_tracklets([frames], color=color)[0]

    def embed_tracklets(self, tracklets: Sequence[Sequence[Any]], *, color: str = "rgb") -> torch.Tensor:
        """embed_tracklet() of each tracklet: [N, D]."""
        return self._core.embed_tracklets([[_crop(c, i) for i, c in enumerate(frames)] for frames in tracklets],
                                          _color(color))

    def preprocess(self, crops: Sequence[Any], *, color: str = "rgb") -> torch.Tensor:
        """The float32 [N, 3, H, W] batch embed() feeds the model."""
        return self._core.preprocess([_crop(c, i) for i, c in enumerate(crops)], _color(color))

    @property
    def feature_dim(self) -> int:
        return self._core.feature_dim

    @property
    def input_size(self) -> Tuple[int, int]:
        """(height, width) the crops are resized to."""
        return tuple(self._core.input_size)

    @property
    def batch_size(self) -> int:
        return self._core.batch_size

    def __repr__(self) -> str:
        h, w = self.input_size
        return (f"libreid.Embedder({h}x{w} -> {self.feature_dim}-d, device={self._core.device}, "
                f"flip={self._core.flip}, normalize={self._core.normalize})")
