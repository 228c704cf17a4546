#!/usr/bin/env python3
"""Writes the ONNX Runtime oracle for layer_model_test.cc: activations of intermediate layers.

For each (model, layer) below, the model in models/repository is copied with that intermediate tensor as its only
output and run by ONNX Runtime (ort_layer.js, onnxruntime-node from bench/peers/install.sh) on a seeded input;
data/<model>.input.npy and data/<model>.<layer>.npy are written. Rerun after retraining a model:
  /usr/bin/python3 tests/engine/runtime/make_layer_fixtures.py [--peers-dir /work/main/bench/peers]
"""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..', '..'))
BATCH = 2
# Pre-activation convolutions (ReLU not applied), ReLUs the dnnl backend fuses, pools, Flatten, FC layers.
LAYERS = {
    'lenet5_fashion': ['conv1', 'relu1', 'pool1', 'relu2', 'flatten', 'fc1', 'relu4'],
    'vgg_fashion': ['conv1_1', 'relu2_2', 'pool3', 'relu_fc1'],
    'alexnet_fashion': ['norm1', 'relu5', 'relu7'],
}


def with_output(model, tensor):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    vi = onnx.helper.make_empty_tensor_value_info(tensor)
    vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    m.graph.output.append(vi)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--peers-dir', default=None, help='a bench/peers with node_modules/onnxruntime-node')
    args = ap.parse_args()
    env = dict(os.environ)
    if args.peers_dir:
        env['PEERS_DIR'] = args.peers_dir
    os.makedirs(os.path.join(HERE, 'data'), exist_ok=True)
    rng = np.random.default_rng(16)
    for name, layers in LAYERS.items():
        model = onnx.load(os.path.join(ROOT, 'models', 'repository', name, '1', 'model.onnx'))
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
        x = rng.standard_normal([BATCH] + dims).astype(np.float32)
        in_path = os.path.join(HERE, 'data', name + '.input.npy')
        np.save(in_path, x)
        for layer in layers:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, 'm.onnx')
                onnx.save(with_output(model, layer), path)
                out = os.path.join(HERE, 'data', '%s.%s.npy' % (name, layer))
                subprocess.run(['node', os.path.join(HERE, 'ort_layer.js'), path, in_path, out], check=True, env=env)
                print(out, np.load(out).shape)


if __name__ == '__main__':
    main()
