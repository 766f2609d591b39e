"""libreid's evaluation, distances and re-ranking against plain NumPy implementations written
here from the protocols' descriptions (Market-1501's, torchreid's evaluate_rank and re_ranking,
the official Market-1501 AP)."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

import libreid
from libreid import _core


# ---- references --------------------------------------------------------------------------------

def market_reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, trapezoid=False):
    """Market-1501 protocol, stable ranking (ties by gallery index). Returns cmc, mAP, mINP, per-query AP."""
    cmc = np.zeros(max_rank)
    aps, inps, valid = [], [], 0
    per_query = []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        hits = (g_pids[order][keep] == q_pids[q]).astype(np.int64)
        if hits.sum() == 0:
            per_query.append(np.nan)
            continue
        valid += 1
        ranks = np.flatnonzero(hits) + 1  # 1-based ranks of the true matches
        j = np.arange(1, len(ranks) + 1)
        precision = j / ranks
        if trapezoid:
            before = np.where(ranks == 1, 1.0, (j - 1) / np.maximum(ranks - 1, 1))
            ap = np.mean((before + precision) / 2)
        else:
            ap = np.mean(precision)
        aps.append(ap)
        per_query.append(ap)
        inps.append(len(ranks) / ranks[-1])
        first = ranks[0]
        if first <= max_rank:
            cmc[first - 1:] += 1
    return cmc / valid, float(np.mean(aps)), float(np.mean(inps)), np.array(per_query)


def torchreid_market(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """torchreid's eval_market1501 as its documentation and code describe it (argsort of each row,
    same-id same-camera removal, CMC clipped at 1, AP the mean precision at the hits)."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap = [], []
    for q in range(num_q):
        order = indices[q]
        remove = (g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])
        raw = matches[q][~remove]
        if not np.any(raw):
            continue
        cmc = raw.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        tmp = raw.cumsum() / (np.arange(len(raw)) + 1.0) * raw
        all_ap.append(tmp.sum() / raw.sum())
    all_cmc = np.asarray(all_cmc).astype(np.float32)
    return all_cmc.sum(0) / len(all_cmc), float(np.mean(all_ap))


def rerank_reference(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3):
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) on dense matrices, with torchreid's
    conventions: the given distances squared, each row divided by its maximum."""
    nq = q_g.shape[0]
    dist = np.concatenate([np.concatenate([q_q, q_g], 1), np.concatenate([q_g.T, g_g], 1)], 0).astype(np.float64) ** 2
    dist = dist / dist.max(1, keepdims=True)
    n = dist.shape[0]
    rank = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(i, k):
        forward = rank[i, :k + 1]
        return np.array([c for c in forward if i in rank[c, :k + 1]], dtype=np.int64)

    v = np.zeros((n, n))
    half = int(np.around(k1 / 2.0))
    for i in range(n):
        base = reciprocal(i, k1)
        expansion = list(base)
        for c in base:
            cand = reciprocal(c, half)
            if len(np.intersect1d(cand, base)) > 2.0 / 3.0 * len(cand):
                expansion.extend(cand)
        expansion = np.unique(expansion)
        w = np.exp(-dist[i, expansion])
        v[i, expansion] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    jaccard = np.zeros((nq, n))
    for i in range(nq):
        shared = np.minimum(v[i][None, :], v).sum(1)
        jaccard[i] = 1 - shared / (2.0 - shared)
    final = jaccard * (1 - lambda_value) + dist[:nq] * lambda_value
    return final[:, nq:]


def random_labels(rng, nq, ng, ids, cams):
    return (rng.integers(0, ids, nq), rng.integers(0, ids, ng), rng.integers(0, cams, nq), rng.integers(0, cams, ng))


# ---- evaluation --------------------------------------------------------------------------------

@pytest.mark.parametrize("trapezoid", [False, True])
def test_evaluate_equals_the_numpy_protocol_with_ties(trapezoid):
    rng = np.random.default_rng(0)
    for trial in range(3):
        nq, ng = 31, 120
        distmat = rng.integers(0, 9, (nq, ng)).astype(np.float32) / 4  # many exact ties
        labels = random_labels(rng, nq, ng, 9, 3)
        cmc, mAP, mINP, ap = market_reference(distmat, *labels, 20, trapezoid)
        for block_rows in (0, 1, 7):
            r = libreid.evaluate(distmat, *labels, max_rank=20, block_rows=block_rows,
                                 average_precision="trapezoid" if trapezoid else "hits")
            np.testing.assert_allclose(r["cmc"], cmc, rtol=0, atol=1e-12)
            assert abs(r["mAP"] - mAP) < 1e-12
            assert abs(r["mINP"] - mINP) < 1e-12
            np.testing.assert_allclose(r["ap"], ap, rtol=0, atol=1e-12)  # NaN where skipped, in both
            assert r["num_valid"] == int(np.sum(~np.isnan(ap)))
            assert r["num_queries"] == nq
            assert r["average_precision"] == ("trapezoid" if trapezoid else "hits")
            assert isinstance(r["cmc"], np.ndarray)  # NumPy in, NumPy out


def test_trapezoidal_ap_is_never_higher():
    rng = np.random.default_rng(1)
    distmat = rng.random((40, 200))
    labels = random_labels(rng, 40, 200, 12, 4)
    hits = libreid.evaluate(distmat, *labels)
    trapezoid = libreid.evaluate(distmat, *labels, average_precision="trapezoid")
    valid = ~np.isnan(hits["ap"])
    assert np.all(trapezoid["ap"][valid] <= hits["ap"][valid] + 1e-15)
    assert trapezoid["mAP"] < hits["mAP"]
    np.testing.assert_array_equal(trapezoid["cmc"], hits["cmc"])


def test_tensors_in_tensors_out_and_every_input_kind():
    rng = np.random.default_rng(2)
    distmat = rng.random((10, 30))
    labels = random_labels(rng, 10, 30, 5, 2)
    from_numpy = libreid.evaluate(distmat, *labels)
    from_torch = libreid.evaluate(torch.from_numpy(distmat), *[torch.from_numpy(x) for x in labels])
    from_lists = libreid.evaluate(distmat.tolist(), *[x.tolist() for x in labels])
    assert isinstance(from_torch["cmc"], torch.Tensor)
    assert from_torch["mAP"] == from_numpy["mAP"] == pytest.approx(from_lists["mAP"], abs=0)
    # int32 labels, a non-contiguous (transposed) float64 matrix: converted, same result.
    transposed = np.ascontiguousarray(distmat.T).T
    assert not transposed.flags["C_CONTIGUOUS"]
    again = libreid.evaluate(transposed, *[x.astype(np.int32) for x in labels])
    assert again["mAP"] == from_numpy["mAP"]
    # Negative strides (a reversed view): copied, same result.
    reversed_rows = distmat[::-1]
    flipped = libreid.evaluate(reversed_rows, *[labels[0][::-1], labels[1], labels[2][::-1], labels[3]])
    assert flipped["mAP"] == pytest.approx(from_numpy["mAP"], abs=1e-12)


def test_contiguous_float32_arrays_reach_cpp_without_a_copy():
    array = np.random.default_rng(3).random((64, 32)).astype(np.float32)
    tensor = libreid._tensor(array, "x", 2, floating=True)
    assert _core.data_ptr(tensor) == array.ctypes.data
    t = torch.rand(8, 4)
    assert _core.data_ptr(libreid._tensor(t, "x", 2, floating=True)) == t.data_ptr()


def test_evaluate_features_equals_the_distance_matrix_path():
    rng = np.random.default_rng(4)
    # Small integers: squared euclidean distances are exact in float32, so the ranking is the
    # reference's, ties included.
    qf = rng.integers(0, 4, (25, 8)).astype(np.float32)
    gf = rng.integers(0, 4, (90, 8)).astype(np.float32)
    labels = random_labels(rng, 25, 90, 10, 3)
    d = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    cmc, mAP, mINP, _ = market_reference(d, *labels, 50)
    r = libreid.evaluate_features(qf, gf, *labels)
    np.testing.assert_allclose(r["cmc"], cmc, atol=1e-12)
    assert abs(r["mAP"] - mAP) < 1e-12 and abs(r["mINP"] - mINP) < 1e-12
    np.testing.assert_array_equal(libreid.distance(qf, gf).numpy(), d)
    # Cosine, flip averaging: the same as evaluating the averaged features' distances.
    qf2, gf2 = rng.random((25, 8)).astype(np.float32), rng.random((90, 8)).astype(np.float32)
    r = libreid.evaluate_features(qf, gf, *labels, metric="cosine", query_flipped=qf2, gallery_flipped=gf2)
    d = libreid.distance((qf + qf2) / 2, (gf + gf2) / 2, metric="cosine").numpy()
    assert abs(r["mAP"] - market_reference(d, *labels, 50)[1]) < 1e-6


def test_cuhk03_single_shot():
    rng = np.random.default_rng(5)
    distmat = rng.random((20, 60))
    q_pids, q_camids = rng.integers(0, 60, 20), np.zeros(20, dtype=np.int64)
    g_pids, g_camids = np.arange(60), np.ones(60, dtype=np.int64)  # one image per identity
    plain = libreid.evaluate(distmat, q_pids, g_pids, q_camids, g_camids)
    single = libreid.evaluate(distmat, q_pids, g_pids, q_camids, g_camids, cuhk03_single_shot=True)
    np.testing.assert_allclose(single["cmc"], plain["cmc"], atol=1e-12)
    # Several images per identity: AP over the whole gallery as usual, CMC seeded.
    g_pids = rng.integers(0, 15, 60)
    q_pids = rng.integers(0, 15, 20)
    plain = libreid.evaluate(distmat, q_pids, g_pids, q_camids, g_camids)
    a = libreid.evaluate(distmat, q_pids, g_pids, q_camids, g_camids, cuhk03_single_shot=True, seed=3)
    b = libreid.evaluate(distmat, q_pids, g_pids, q_camids, g_camids, cuhk03_single_shot=True, seed=3)
    assert a["mAP"] == pytest.approx(plain["mAP"], abs=1e-12)
    np.testing.assert_array_equal(a["cmc"], b["cmc"])


def test_roc():
    rng = np.random.default_rng(6)
    distmat = rng.random((30, 300))
    labels = random_labels(rng, 30, 300, 10, 3)
    r = libreid.evaluate(distmat, *labels, roc=True)
    assert sorted(r["tpr_at_fpr"]) == [1e-4, 1e-3, 1e-2]
    assert all(0.0 <= v <= 1.0 for v in r["tpr_at_fpr"].values())


# ---- torchreid drop-ins ------------------------------------------------------------------------

def test_evaluate_rank_is_a_drop_in_for_torchreid():
    rng = np.random.default_rng(7)
    for nq, ng, max_rank in ((40, 300, 50), (12, 20, 50)):  # the second caps max_rank at the gallery size
        distmat = rng.random((nq, ng)).astype(np.float32)  # no ties: argsort's order is unambiguous
        labels = random_labels(rng, nq, ng, 8, 3)
        if ng < max_rank:
            # Queries and gallery from different cameras: torchreid's own code needs every
            # query's list as long as the capped max_rank (its CMC rows are stacked).
            labels = (labels[0], labels[1], np.zeros(nq, dtype=np.int64), np.ones(ng, dtype=np.int64))
        expected_cmc, expected_map = torchreid_market(distmat, *labels, max_rank)
        cmc, mAP = libreid.evaluate_rank(distmat, *labels, max_rank=max_rank)
        assert cmc.dtype == np.float32 and cmc.shape == expected_cmc.shape
        np.testing.assert_allclose(cmc, expected_cmc, atol=1e-6)
        assert isinstance(mAP, float) and mAP == pytest.approx(expected_map, abs=1e-12)
    # The CUHK03 metric: the same mAP.
    cmc, mAP = libreid.evaluate_rank(distmat, *labels, max_rank=10, use_metric_cuhk03=True)
    assert mAP == pytest.approx(expected_map, abs=1e-12) and cmc.shape == (10,)


def test_re_ranking_is_a_drop_in_for_torchreid():
    rng = np.random.default_rng(8)
    qf, gf = rng.random((12, 16)).astype(np.float32), rng.random((50, 16)).astype(np.float32)

    def euclidean(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).astype(np.float32)

    q_g, q_q, g_g = euclidean(qf, gf), euclidean(qf, qf), euclidean(gf, gf)
    for k1, k2, lam in ((20, 6, 0.3), (8, 1, 0.5), (5, 3, 0.0)):
        expected = rerank_reference(q_g, q_q, g_g, k1, k2, lam)
        got = libreid.re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
        assert got.dtype == np.float32 and got.shape == (12, 50)
        np.testing.assert_allclose(got, expected, atol=2e-6)
    # From features: the same algorithm on LibReID's own (squared euclidean) distances.
    from_features = libreid.rerank(qf, gf, k1=8, k2=3).numpy()
    np.testing.assert_allclose(from_features, rerank_reference(q_g, q_q, g_g, 8, 3, 0.3), atol=1e-5)


# ---- errors ------------------------------------------------------------------------------------

def test_errors_carry_the_cpp_message():
    assert issubclass(libreid.ConfigError, libreid.Error) and issubclass(libreid.IOError, libreid.Error)
    assert issubclass(libreid.Error, RuntimeError)
    distmat = np.random.default_rng(9).random((3, 4))
    # No query has a true match: the C++ evaluator's error, as libreid.Error.
    with pytest.raises(libreid.Error, match="no query"):
        libreid.evaluate(distmat, [0, 1, 2], [5, 6, 7, 8], [0, 0, 0], [1, 1, 1, 1])
    with pytest.raises(ValueError, match="q_pids: 2 labels for 3 queries"):
        libreid.evaluate(distmat, [0, 1], [5, 6, 7, 8], [0, 0, 0], [1, 1, 1, 1])
    with pytest.raises(ValueError, match="distmat: expected 2 dimension"):
        libreid.evaluate(distmat[0], [0], [5, 6, 7, 8], [0], [1, 1, 1, 1])
    with pytest.raises(TypeError, match="g_pids: expected integer labels"):
        libreid.evaluate(distmat, [0, 1, 2], [0.5, 6, 7, 8], [0, 0, 0], [1, 1, 1, 1])
    with pytest.raises(ValueError, match="average_precision: expected one of hits, trapezoid"):
        libreid.evaluate(distmat, [0, 1, 2], [0, 1, 2, 8], [0, 0, 0], [1, 1, 1, 1], average_precision="11point")
    with pytest.raises(ValueError, match="max_rank"):
        libreid.evaluate(distmat, [0, 1, 2], [0, 1, 2, 8], [0, 0, 0], [1, 1, 1, 1], max_rank=0)
    with pytest.raises(ValueError, match="metric"):
        libreid.distance(distmat, distmat, metric="manhattan")
    with pytest.raises(ValueError, match="q_q_dist"):
        libreid.re_ranking(distmat, distmat, distmat)
    # NaN distances (a diverged model's features) cannot be ranked: an error naming the pair.
    nan = distmat.copy()
    nan[1, 2] = np.nan
    with pytest.raises(libreid.Error, match="query 1 to gallery item 2 is NaN"):
        libreid.evaluate(nan, [0, 1, 2], [0, 1, 1, 8], [0, 0, 0], [1, 1, 1, 1])
    # A C++ precondition (a square matrix) surfaces as RuntimeError without a backtrace.
    with pytest.raises(RuntimeError, match="square") as info:
        _core.rerank_distances(torch.zeros(3, 4), 1, 20, 6, 0.3)
    assert "Exception raised from" not in str(info.value)


# ---- the GIL and Ctrl-C ------------------------------------------------------------------------

def _long_evaluation():
    # A million one-row blocks (32 MB): about 2 s on this project's 2-core machines, far longer
    # than the 0.2 s these tests wait, on any machine.
    rng = np.random.default_rng(10)
    distmat = rng.random((1_000_000, 8)).astype(np.float32)
    labels = random_labels(rng, 1_000_000, 8, 4, 4)
    return distmat, labels


def test_the_gil_is_released_while_cpp_works():
    distmat, labels = _long_evaluation()
    worker = threading.Thread(target=lambda: libreid.evaluate(distmat, *labels, block_rows=1))
    worker.start()
    time.sleep(0.05)
    # This thread runs Python while the worker is inside the C++ evaluation: with the GIL held
    # there, it could not run until the evaluation had finished.
    spins, start = 0, time.monotonic()
    while time.monotonic() - start < 0.1:
        spins += 1
    still_running = worker.is_alive()
    worker.join()
    assert still_running, "the evaluation finished before the check: make it longer"
    assert spins > 100


def test_ctrl_c_stops_a_long_evaluation():
    distmat, labels = _long_evaluation()
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            libreid.evaluate(distmat, *labels, block_rows=1)
    finally:
        timer.cancel()
    stopped_after = time.monotonic() - start
    # The whole evaluation takes much longer than that (measured in the GIL test's thread).
    full_start = time.monotonic()
    libreid.evaluate(distmat, *labels, block_rows=1)
    full = time.monotonic() - full_start
    assert stopped_after < full


def test_ctrl_c_stops_a_long_feature_evaluation():
    rng = np.random.default_rng(11)
    qf = rng.normal(size=(16_000, 32)).astype(np.float32)
    gf = rng.normal(size=(16_000, 32)).astype(np.float32)
    labels = random_labels(rng, 16_000, 16_000, 50, 4)
    full_start = time.monotonic()
    libreid.evaluate_features(qf, gf, *labels)  # about 20 blocks of queries
    full = time.monotonic() - full_start
    timer = threading.Timer(full / 5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            libreid.evaluate_features(qf, gf, *labels)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 0.8 * full


# ---- the example -------------------------------------------------------------------------------

def test_the_feature_evaluation_example_runs(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(11)
    arrays = {"query_features": rng.random((30, 16)).astype(np.float32), "gallery_features": rng.random((90, 16)),
              "query_pids": rng.integers(0, 10, 30), "gallery_pids": rng.integers(0, 10, 90),
              "query_camids": rng.integers(0, 3, 30), "gallery_camids": rng.integers(0, 3, 90)}
    for name, value in arrays.items():
        np.save(tmp_path / f"{name}.npy", value)
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "evaluate_features.py")
    out = subprocess.run([sys.executable, example, str(tmp_path), "--metric", "cosine", "--rerank"],
                         capture_output=True, text=True, check=True).stdout
    r = libreid.evaluate_features(arrays["query_features"], arrays["gallery_features"], arrays["query_pids"],
                                  arrays["gallery_pids"], arrays["query_camids"], arrays["gallery_camids"],
                                  metric="cosine")
    assert f"mAP {100 * r['mAP']:.2f}%" in out, out
    assert "trapezoid" in out and "re-ranked" in out, out


def test_python_m_libreid_eval(tmp_path):
    import json
    import subprocess
    import sys

    rng = np.random.default_rng(12)
    arrays = {"qf": rng.random((20, 8)).astype(np.float32), "gf": rng.random((70, 8)).astype(np.float32),
              "qp": rng.integers(0, 6, 20), "gp": rng.integers(0, 6, 70), "qc": rng.integers(0, 2, 20),
              "gc": rng.integers(0, 2, 70)}
    for name, value in arrays.items():
        np.save(tmp_path / f"{name}.npy", value)
    args = [sys.executable, "-m", "libreid.eval"]
    for flag, name in (("query-features", "qf"), ("query-pids", "qp"), ("query-camids", "qc"),
                       ("gallery-features", "gf"), ("gallery-pids", "gp"), ("gallery-camids", "gc")):
        args += [f"--{flag}", str(tmp_path / f"{name}.npy")]
    output = tmp_path / "metrics.json"
    run = subprocess.run(args + ["--metric", "cosine", "--ap", "trapezoid", "--output", str(output)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "mAP (trapezoid)" in run.stdout
    expected = libreid.evaluate_features(arrays["qf"], arrays["gf"], arrays["qp"], arrays["gp"], arrays["qc"],
                                         arrays["gc"], metric="cosine", average_precision="trapezoid")
    written = json.loads(output.read_text())
    assert written["mAP"] == pytest.approx(expected["mAP"], abs=1e-12)
    assert written["average_precision"] == "trapezoid"
    assert written["rank1"] == pytest.approx(float(expected["cmc"][0]), abs=1e-12)
    # A missing file: one line naming it, a non-zero exit, no JSON.
    output.unlink()
    missing = [str(tmp_path / "missing.npy") if a == str(tmp_path / "qf.npy") else a for a in args]
    bad = subprocess.run(missing + ["--output", str(output)], capture_output=True, text=True)
    assert bad.returncode != 0 and "missing.npy" in bad.stderr and not output.exists()
