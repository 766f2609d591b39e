#!/usr/bin/env python3
"""Runs an ONNX model with onnxruntime (PyPI's `onnxruntime`, in the environment scripts/setup.sh
makes). Used by the ONNX parity tests and bench_embed; independent of LibReID.

    python scripts/ort_run.py --model m.onnx --input x.f32 --shape 4,3,256,128 --output y.f32 \
        [--threads 2] [--provider cpu|cuda] [--repeat R --warmup W]

Input and output are raw little-endian float32. Prints one JSON line: the input and output
names, the output shape and, with --repeat, the seconds per run (median and all).
"""
import argparse
import json
import sys
import time

import numpy as np
import onnxruntime as ort

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--shape", required=True, help="comma-separated input shape")
    parser.add_argument("--output", default="")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's choice)")
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="cpu")
    parser.add_argument("--repeat", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    shape = [int(s) for s in args.shape.split(",")]
    data = np.fromfile(args.input, dtype="<f4")
    if data.size != int(np.prod(shape)):
        raise SystemExit(f"ort_run: {args.input} holds {data.size * 4} bytes, the shape {shape} needs "
                         f"{int(np.prod(shape)) * 4}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if args.threads > 0:
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
    provider = PROVIDERS[args.provider]
    if provider not in ort.get_available_providers():
        raise SystemExit(f"ort_run: onnxruntime {ort.__version__} has no {provider} "
                         f"(it has {', '.join(ort.get_available_providers())})")
    session = ort.InferenceSession(args.model, options, providers=[provider])
    feeds = {session.get_inputs()[0].name: data.reshape(shape)}
    output_name = session.get_outputs()[0].name
    result = session.run([output_name], feeds)[0]
    times = []
    for _ in range(args.warmup if args.repeat > 0 else 0):
        session.run([output_name], feeds)
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = session.run([output_name], feeds)[0]
        times.append(time.perf_counter() - start)
    if args.output:
        np.ascontiguousarray(result, dtype="<f4").tofile(args.output)
    print(json.dumps({
        "input": session.get_inputs()[0].name, "output": output_name, "shape": list(result.shape),
        "median_s": sorted(times)[len(times) // 2] if times else None, "times_s": times,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as error:  # one line, as the callers expect
        print(f"ort_run: {error}", file=sys.stderr)
        sys.exit(1)
