#!/usr/bin/env node
// Runs an ONNX model with onnxruntime's CPU build (the npm package onnxruntime-node, installed by
// scripts/setup.sh into build/onnxruntime; NODE_PATH points there). Used by the parity tests and
// bench/run_embed_bench.sh; independent of LibReID.
//
//   node scripts/ort_run.js --model m.onnx --input x.f32 --shape 4,3,256,128 --output y.f32
//        [--threads 2] [--provider cpu|cuda] [--repeat R --warmup W]
//
// Input and output are raw little-endian float32. Prints one JSON line: the output shape and,
// with --repeat, the seconds per run (median and all).
'use strict';
const fs = require('fs');

function parseArgs(argv) {
  const args = { threads: 0, provider: 'cpu', repeat: 0, warmup: 2 };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (i + 1 >= argv.length) throw new Error(`missing value after ${argv[i]}`);
    args[key] = argv[i + 1];
  }
  for (const required of ['model', 'input', 'shape']) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  args.shape = args.shape.split(',').map(Number);
  args.threads = Number(args.threads);
  args.repeat = Number(args.repeat);
  args.warmup = Number(args.warmup);
  return args;
}

async function main() {
  const args = parseArgs(process.argv);
  const ort = require('onnxruntime-node');
  const options = { executionProviders: [args.provider], graphOptimizationLevel: 'all' };
  if (args.threads > 0) {
    options.intraOpNumThreads = args.threads;
    options.interOpNumThreads = 1;
  }
  const session = await ort.InferenceSession.create(args.model, options);
  const raw = fs.readFileSync(args.input);
  const count = args.shape.reduce((a, b) => a * b, 1);
  if (raw.length !== 4 * count) {
    throw new Error(`${args.input} holds ${raw.length} bytes, the shape ${args.shape} needs ${4 * count}`);
  }
  const data = new Float32Array(raw.buffer, raw.byteOffset, count);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, args.shape) };
  let result = await session.run(feeds);
  const times = [];
  for (let i = 0; i < args.warmup && args.repeat > 0; ++i) await session.run(feeds);
  for (let i = 0; i < args.repeat; ++i) {
    const start = process.hrtime.bigint();
    result = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  const output = result[session.outputNames[0]];
  if (args.output) fs.writeFileSync(args.output, Buffer.from(output.data.buffer, output.data.byteOffset, output.data.byteLength));
  const sorted = [...times].sort((a, b) => a - b);
  console.log(JSON.stringify({
    input: session.inputNames[0], output: session.outputNames[0], shape: output.dims,
    median_s: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null, times_s: times,
  }));
}

main().catch((e) => {
  console.error(`ort_run: ${e.message || e}`);
  process.exit(1);
});
