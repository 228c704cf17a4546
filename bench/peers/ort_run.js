#!/usr/bin/env node
'use strict';
// ONNX Runtime (onnxruntime-node, CPU execution provider) peer runner.
// Benchmarks an ONNX file the same way as `cnnbench run` and prints one
// JSON line per batch size (--json) or a readable table.  See README.md.

const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');
const C = require('./common');

const USAGE = `usage:
  node ort_run.js MODEL.onnx [--batch 1,8,32] [--threads 2] [--seconds 5] [--json]
                  [--repeats 5] [--warmup-runs 3] [--warmup-seconds 0.5] [--seed 0]
                  [--model NAME] [--input-shape C,H,W] [--save-input IN.b{batch}.npy]
  node ort_run.js MODEL.onnx --verify X.npy --expect Y.npy [--rtol 1e-4] [--atol 1e-5]
                  [--threads 2] [--save-output OUT.npy] [--json]
  node ort_run.js --selftest        (load the native library and run a 1-node model)

Benchmark: load (timed as load_ms), warm up until both --warmup-runs runs and
--warmup-seconds have passed, then run batches back to back for --seconds
(and at least --repeats runs).  JSON keys: runtime model batch threads
images_per_s p50_ms p90_ms p99_ms load_ms peak_rss_mb repeats.
Verify: exit 0 iff max|out-Y| <= rtol*max|Y| + atol and top-5 per row match.
`;

const SPEC = {
  batch: { type: 'batch', def: [1] },
  threads: { type: 'int', def: 2 },
  seconds: { type: 'float', def: 5 },
  repeats: { type: 'int', def: 5 },
  warmup_runs: { type: 'int', def: 3 },
  warmup_seconds: { type: 'float', def: 0.5 },
  seed: { type: 'int', def: 0 },
  json: { type: 'bool', def: false },
  model: { type: 'str', def: null },
  input_shape: { type: 'str', def: null },
  verify: { type: 'str', def: null },
  expect: { type: 'str', def: null },
  rtol: { type: 'float', def: 1e-4 },
  atol: { type: 'float', def: 1e-5 },
  save_output: { type: 'str', def: null },
  save_input: { type: 'str', def: null },
  selftest: { type: 'bool', def: false },
};

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    const hint = path.join(__dirname, 'install.sh');
    throw new Error(`cannot load onnxruntime-node (${e.message.split('\n')[0]}); run ${hint}`);
  }
}

function ortVersion(ort) {
  const v = (ort.env && ort.env.versions) || {};
  return v.node || v.common || 'unknown';
}

function sessionOptions(threads) {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
}

const now = () => performance.now() / 1000; // seconds

function modelName(opts, modelPath) {
  if (opts.model) return opts.model;
  return path.basename(modelPath).replace(/\.onnx$/i, '');
}

// Input name and per-sample shape (without the batch dim) from the session's
// metadata; a --input-shape C,H,W overrides non-batch dims.
function inputSpec(session, opts) {
  if (session.inputNames.length !== 1) {
    throw new Error(`model has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); expected 1`);
  }
  const name = session.inputNames[0];
  const meta = (session.inputMetadata || [])[0];
  let dims;
  if (opts.input_shape) {
    dims = opts.input_shape.split(/[,x]/).map(Number);
    if (dims.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`bad --input-shape ${opts.input_shape}`);
  } else {
    if (!meta || !meta.isTensor || !Array.isArray(meta.shape) || meta.shape.length < 1) {
      throw new Error('cannot read the input shape from the model; pass --input-shape C,H,W');
    }
    if (meta.type && meta.type !== 'float32') throw new Error(`input '${name}' is ${meta.type}, expected float32`);
    dims = meta.shape.slice(1);
    if (dims.some((d) => typeof d !== 'number' || d < 1)) {
      throw new Error(`input '${name}' has non-batch symbolic dims [${meta.shape}]; pass --input-shape C,H,W`);
    }
  }
  const b0 = meta && Array.isArray(meta.shape) ? meta.shape[0] : undefined;
  const fixedBatch = typeof b0 === 'number' && b0 > 0 ? b0 : null;
  return { name, dims, fixedBatch };
}

async function benchOneBatch(ort, session, spec, batch, opts) {
  const shape = [batch, ...spec.dims];
  const count = shape.reduce((a, b) => a * b, 1);
  const input = C.seededInput(count, opts.seed);
  if (opts.save_input) C.writeNpy(opts.save_input.replace('{batch}', String(batch)), shape, input);
  const feeds = { [spec.name]: new ort.Tensor('float32', input, shape) };

  // Warm-up: at least warmup_runs runs and at least warmup_seconds.
  let n = 0;
  const tw = now();
  while (n < opts.warmup_runs || now() - tw < opts.warmup_seconds) {
    await session.run(feeds);
    n++;
  }

  // Measured phase: back-to-back batches for `seconds`, and at least `repeats` runs.
  const intervals = [];
  const cpu0 = process.cpuUsage();
  const t0 = now();
  let t = t0;
  do {
    const s = now();
    await session.run(feeds);
    t = now();
    intervals.push([s, t]);
  } while (t - t0 < opts.seconds || intervals.length < opts.repeats);
  const cpu = process.cpuUsage(cpu0);

  const lat = intervals.map(([s, e]) => (e - s) * 1000).sort((a, b) => a - b);
  return {
    images_per_s: C.sliceThroughput(intervals, batch, t0, t, opts.repeats),
    p50_ms: C.percentile(lat, 50),
    p90_ms: C.percentile(lat, 90),
    p99_ms: C.percentile(lat, 99),
    runs: intervals.length,
    cpu_per_wall: (cpu.user + cpu.system) / 1e6 / (t - t0),
  };
}

async function runBench(ort, modelPath, opts) {
  if (opts.repeats < 5) throw new Error('--repeats must be >= 5');
  if (opts.threads < 1) throw new Error('--threads must be >= 1');
  const name = modelName(opts, modelPath);
  const tl = now();
  const session = await ort.InferenceSession.create(modelPath, sessionOptions(opts.threads));
  const loadMs = (now() - tl) * 1000;
  const spec = inputSpec(session, opts);

  if (!opts.json) {
    console.log(`onnxruntime-node ${ortVersion(ort)}  model ${name}  input ${spec.name} [${spec.fixedBatch || 'N'},${spec.dims}]  ` +
      `threads ${opts.threads}  seconds ${opts.seconds}  repeats ${opts.repeats}`);
    console.log(C.tableHeader());
  } else {
    process.stderr.write(`# onnxruntime-node ${ortVersion(ort)} model=${name} input=${spec.name}[${spec.fixedBatch || 'N'},${spec.dims}]\n`);
  }

  let failed = 0;
  for (const batch of opts.batch) {
    if (spec.fixedBatch !== null && batch !== spec.fixedBatch) {
      process.stderr.write(`error: ${name}: batch dim is fixed at ${spec.fixedBatch} in the ONNX graph; skipping batch ${batch}\n`);
      failed++;
      continue;
    }
    let r;
    try {
      r = await benchOneBatch(ort, session, spec, batch, opts);
    } catch (e) {
      process.stderr.write(`error: ${name} batch ${batch}: ${e.message}\n`);
      failed++;
      continue;
    }
    const rss = C.peakRssMb();
    if (opts.json) {
      console.log(JSON.stringify({
        runtime: 'onnxruntime',
        model: name,
        batch,
        threads: opts.threads,
        images_per_s: C.round(r.images_per_s, 3),
        p50_ms: C.round(r.p50_ms, 4),
        p90_ms: C.round(r.p90_ms, 4),
        p99_ms: C.round(r.p99_ms, 4),
        load_ms: C.round(loadMs, 3),
        peak_rss_mb: C.round(rss, 2),
        repeats: opts.repeats,
      }));
    } else {
      console.log(C.tableRow([batch, opts.threads, r.images_per_s, r.p50_ms, r.p90_ms, r.p99_ms,
        loadMs, rss, r.runs, r.cpu_per_wall]));
    }
  }
  if (typeof session.release === 'function') await session.release();
  return failed ? 1 : 0;
}

async function runVerify(ort, modelPath, opts) {
  if (!opts.expect) throw new Error('--verify needs --expect Y.npy');
  const x = C.readNpy(opts.verify);
  const y = C.readNpy(opts.expect);
  const session = await ort.InferenceSession.create(modelPath, sessionOptions(opts.threads));
  if (session.inputNames.length !== 1) throw new Error(`model has ${session.inputNames.length} inputs; expected 1`);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  const out = await session.run(feeds);
  const o = out[session.outputNames[0]];
  if (o.type !== 'float32') throw new Error(`output is ${o.type}, expected float32`);
  const gotShape = o.dims.map(Number);
  if (opts.save_output) C.writeNpy(opts.save_output, gotShape, o.data);
  const res = C.compareOutputs(o.data, gotShape, y.data, y.shape, opts.rtol, opts.atol);
  const name = modelName(opts, modelPath);
  if (opts.json) {
    console.log(JSON.stringify({
      runtime: 'onnxruntime', model: name, verify: res.ok ? 'pass' : 'fail', max_abs_diff: res.maxDiff,
      max_abs_ref: res.maxRef, bound: res.bound, rtol: opts.rtol, atol: opts.atol,
      top5_mismatch_rows: res.top5Mismatch.length, shape: gotShape,
    }));
  } else {
    console.log(`verify ${name}: ${res.ok ? 'PASS' : 'FAIL'}  max|diff|=${res.maxDiff.toExponential(4)}  ` +
      `bound=${res.bound.toExponential(4)} (rtol=${opts.rtol} * max|Y|=${res.maxRef.toExponential(4)} + atol=${opts.atol})  ` +
      `output [${gotShape}]`);
    for (const r of res.reasons) console.log(`  ${r}`);
    for (const m of res.top5Mismatch.slice(0, 5)) {
      console.log(`  row ${m.row}: top-5 got [${m.got}] expected [${m.expected}]`);
    }
  }
  return res.ok ? 0 : 1;
}

// ---- self-test: a hand-encoded ONNX model  Y = Relu(X), X float[N,4]
function pbVarint(n) {
  const out = [];
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; out.push(b); } while (n > 0);
  return out;
}
function pbField(num, wire, payload) {
  const key = pbVarint(num * 8 + wire);
  if (wire === 0) return [...key, ...pbVarint(payload)];
  const bytes = typeof payload === 'string' ? [...Buffer.from(payload, 'utf8')] : payload;
  return [...key, ...pbVarint(bytes.length), ...bytes];
}
function tinyReluModel() {
  const dim = (d) => pbField(1, 2, typeof d === 'string' ? pbField(2, 2, d) : pbField(1, 0, d));
  const vinfo = (n) => pbField(1, 2, n).concat(pbField(2, 2, pbField(1, 2,
    pbField(1, 0, 1).concat(pbField(2, 2, dim('N').concat(dim(4)))))));
  const node = pbField(1, 2, 'X').concat(pbField(2, 2, 'Y'), pbField(4, 2, 'Relu'));
  const graph = pbField(1, 2, node).concat(pbField(2, 2, 'g'), pbField(11, 2, vinfo('X')), pbField(12, 2, vinfo('Y')));
  const model = pbField(1, 0, 8).concat(pbField(8, 2, pbField(2, 0, 13)), pbField(7, 2, graph));
  return Uint8Array.from(model);
}

async function runSelftest(ort, opts) {
  const session = await ort.InferenceSession.create(tinyReluModel(), sessionOptions(opts.threads));
  const x = Float32Array.from([-1, 2, -3, 4, 5, -6, 7, -8]);
  const out = await session.run({ X: new ort.Tensor('float32', x, [2, 4]) });
  const y = Array.from(out.Y.data);
  const want = [0, 2, 0, 4, 5, 0, 7, 0];
  const ok = y.length === want.length && y.every((v, i) => v === want[i]);
  const backends = typeof ort.listSupportedBackends === 'function'
    ? ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name).join(',') : '?';
  console.log(`onnxruntime-node ${ortVersion(ort)} selftest ${ok ? 'ok' : 'FAILED'} (bundled backends: ${backends})`);
  return ok ? 0 : 1;
}

async function main() {
  const { opts, positional } = C.parseArgs(process.argv.slice(2), SPEC, USAGE);
  const ort = loadOrt();
  ort.env.logLevel = 'error';
  if (opts.selftest) return runSelftest(ort, opts);
  if (positional.length !== 1) {
    process.stderr.write(USAGE);
    return 2;
  }
  const modelPath = positional[0];
  if (!fs.existsSync(modelPath)) throw new Error(`no such file: ${modelPath}`);
  if (opts.verify) return runVerify(ort, modelPath, opts);
  return runBench(ort, modelPath, opts);
}

main().then((code) => { process.exitCode = code; }).catch((e) => {
  process.stderr.write(`error: ${e.message}\n`);
  process.exitCode = 2;
});
