#!/usr/bin/env node
'use strict';
// Runs an ONNX file with ONNX Runtime (onnxruntime-node from bench/peers) on one .npy input and writes its single
// output as .npy: the oracle for make_layer_fixtures.py.
//   node ort_layer.js MODEL.onnx IN.npy OUT.npy
const path = require('path');
const C = require('../../../bench/peers/common');

async function main() {
  const [modelPath, inPath, outPath] = process.argv.slice(2);
  if (!outPath) throw new Error('usage: node ort_layer.js MODEL.onnx IN.npy OUT.npy');
  // bench/peers/install.sh installs it; PEERS_DIR points at another checkout's bench/peers.
  const dirs = [path.join(__dirname, '../../../bench/peers')].concat(process.env.PEERS_DIR || []);
  const ort = require(require.resolve('onnxruntime-node', {paths: dirs}));
  const session = await ort.InferenceSession.create(modelPath, {intraOpNumThreads: 1});
  const x = C.readNpy(inPath);
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape)};
  const out = (await session.run(feeds))[session.outputNames[0]];
  C.writeNpy(outPath, out.dims, out.data);
}

main().catch((e) => { console.error(e.message); process.exit(1); });
