#!/usr/bin/python3
"""Train CNNs on Fashion-MNIST and export them for the model repository (LeNet-5 and the ensemble members).

    /usr/bin/python3 models/zoo/train_fashion_mnist.py --out models/repository/lenet5_fashion/1
        [--epochs 20] [--seed 0] [--threads 1] [--batch-size 64] [--lr 0.05]
        [--arch lenet5|alexnet_s|vgg_s] [--input-size 32|28] [--mean 0.2860 --std 0.3530]
        [--translate PIXELS] [--label-smoothing EPS] [--name MODEL_NAME]
    /usr/bin/python3 models/zoo/train_fashion_mnist.py --member NAME[,NAME...]|all [--repository DIR]
    /usr/bin/python3 models/zoo/train_fashion_mnist.py --list-members
    /usr/bin/python3 models/zoo/train_fashion_mnist.py --eval-only models/repository/lenet5_fashion/1/model.onnx
    /usr/bin/python3 models/zoo/train_fashion_mnist.py --write-test-images DIR --count N [--model ONNX]
    /usr/bin/python3 models/zoo/train_fashion_mnist.py --write-train-images DIR --count N

Training writes OUT/model.onnx (input "input" N x 1 x S x S float32, S = --input-size, output "logits" N x 10,
N dynamic; exported by export.py's export_onnx, nodes named after the modules: conv1 ... fc3 for LeNet-5) and
OUT/../labels.txt (CLASSES, one a line).  Without --arch/--input-size/--mean/--std/... it trains LeNet-5 exactly
as before (the committed models/repository/lenet5_fashion/1/model.onnx, byte for byte).
--member trains the ensemble members of MEMBERS (fixed architecture, preprocessing, seed and schedule each) into
REPOSITORY/NAME/1/model.onnx with REPOSITORY/NAME/labels.txt and, except for lenet5_fashion whose config is
hand-written, REPOSITORY/NAME/config.pbtxt (models/zoo/train_fashion_ensemble.sh trains them all, two at a time).
--eval-only prints the test accuracy of an exported file's weights run by PyTorch (--numpy-check: also of the
ONNX graph itself, run by check_onnx.py's NumPy interpreter); the architecture and preprocessing come from the
file's cnnserve.* metadata (absent: the options, i.e. LeNet-5 at 32x32).
--write-test-images writes DIR/fashion_NNNNN.png (the raw 28x28 gray pixels) and .jpg (quality 95) for the
first N test images, DIR/labels.csv (header "filename,label", label = class index = line of labels.txt,
one row per file), DIR/input.npy (float32 N x 1 x 32 x 32, the exact lenet5_fashion input for the PNGs) and,
with --model ONNX, DIR/logits.npy (float32 N x 10, PyTorch's logits for input.npy).

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*.gz, IDX format, read by read_idx).

Preprocessing (what the server must reproduce; see preprocess()):
  1. the 28x28 uint8 gray image, converted to float32 (raw 0..255),
  2. with --input-size 32 (LeNet-5's default): resized 28x28 -> 32x32 with OpenCV's INTER_LINEAR algorithm
     (half-pixel centres, edge pixels clamped), i.e. cv::resize(float_img, out, Size(32, 32), 0, 0,
     INTER_LINEAR) on a CV_32F image; resize_linear() implements it in NumPy.  For 28 -> 32 every weight is a
     multiple of 1/16, so on raw 0..255 values the float32 result is exact (a multiple of 1/256), whatever the
     order of operations.  With --input-size 28 there is no resize (the server's EXACT resize of a 28x28
     image to 28x28 is a copy);
  3. x' = (x * SCALE - mean) / std with SCALE = 1/255 (float32) and, by default, mean = MEAN = 0.2860,
     std = STD = 0.3530, the mean and standard deviation of the 60,000 raw 28x28 training images' pixels / 255,
     rounded to 4 decimals (pixel_stats() recomputes them); --mean 0 --std 1 feeds x / 255.
The model therefore sees the image stretched to 32x32, not zero-padded to 32x32: the server's preprocessing
(EXACT resize, no padding) reproduces it.  resize_linear() is bit-identical to OpenCV 4.6's cv::resize on the
CV_32F image (checked on all 70,000 images).  Resizing the uint8 image instead (cv::resize on CV_8U, fixed
point, rounded to integers; emulated bit-exactly by resize_linear_u8_opencv) is up to 0.75/255 off per pixel;
--eval-only prints the accuracy on that input too.

Training: SGD with Nesterov momentum 0.9, weight decay 5e-4, cosine learning-rate decay from --lr to 0 over
--epochs, linear warm-up during the first epoch; cross-entropy (--label-smoothing).  Augmentation: random
horizontal flip (p = 0.5; Fashion-MNIST classes are left-right symmetric, so a flipped shirt is still a shirt)
and, with --translate T, a random shift by -T..T pixels in x and y (the uncovered border is background, i.e.
raw pixel 0).  The order of the images, the flips and the shifts come from one torch.Generator seeded with
--seed; the initial weights and dropout masks from torch's global generator seeded with --seed;
torch.use_deterministic_algorithms(True); with a fixed --threads the run is reproducible bit for bit (same
weights, byte-identical model.onnx).

Architectures (--arch):
  lenet5     arch.build("lenet5") (PyTorch default init); with --input-size 28 conv1 gets padding 2, i.e. the
             28x28 image is zero-padded to 32x32 inside the net as in LeCun et al. 1998 (with --mean 0 --std 1
             the padding is exactly background).  Defaults: 20 epochs, batch 64, lr 0.05.
  alexnet_s  AlexNetS: a small AlexNet for 28x28: conv1 32@5x5 p2, ReLU, overlapping max pool 3/2, LRN (the
             zoo's one-op-ONNX arch.LRN, size 5, alpha 1e-4, beta 0.75, k 2); conv2 48@3x3 p1, ReLU, pool 3/2,
             LRN; conv3 64, conv4 64, conv5 64 @3x3 p1 with ReLU; pool 3/2; FC 256, 256 with ReLU and dropout
             0.5; FC 10.  He-normal init.  Defaults: 10 epochs, batch 128, lr 0.05.
  vgg_s      VGGS: stacked 3x3 p1 convolutions in VGG-11's pattern, 32 | 32-32 | 64-64, each followed by
             BatchNorm and ReLU, 2x2/2 max pool after each block; FC 256, ReLU, dropout 0.3; FC 10.  The
             BatchNorms are folded into the convolutions before export (fold_batchnorm), so the ONNX graph has
             only Conv/Relu/MaxPool/Flatten/Gemm.  Defaults: 12 epochs, batch 128, lr 0.1.
alexnet_s and vgg_s train in channels_last memory format (about 15% faster on one core).

Helpers other scripts can import (models/zoo on sys.path):
    import train_fashion_mnist as fm
    images, labels = fm.load_split("test")          # uint8 N x 28 x 28, int64 N
    x = fm.preprocess(images)                       # float32 N x 1 x 32 x 32, lenet5_fashion's input
    x = fm.member_input(fm.MEMBERS["vgg_fashion"], images)   # a member's input
"""

import argparse
import csv
import gzip
import io
import json
import math
import os
import resource
import struct
import sys
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import architectures as arch  # noqa: E402
import export as zoo_export  # noqa: E402

# --------------------------------------------------------------------------
# Fashion-MNIST: data and preprocessing constants
# --------------------------------------------------------------------------

DATA_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

ARCH = "lenet5"
MODEL_NAME = "lenet5_fashion"
SRC_SIZE = 28            # stored image side
INPUT_SIZE = 32          # model input side (LeNet-5's 32x32)
SCALE = 1.0 / 255.0      # config "scale"
MEAN = 0.2860            # training-set pixel mean (raw 28x28 pixels * SCALE), 4 decimals
STD = 0.3530             # training-set pixel std, 4 decimals
ARCHS = ("lenet5", "alexnet_s", "vgg_s")
# per-architecture defaults of --epochs, --batch-size, --lr
ARCH_DEFAULTS = {"lenet5": (20, 64, 0.05), "alexnet_s": (10, 128, 0.05), "vgg_s": (12, 128, 0.1)}


@dataclass(frozen=True)
class Member:
    """One ensemble member: everything that determines its model.onnx (with --threads 1)."""
    name: str
    arch: str
    input_size: int       # 32: the 28x28 image stretched to 32x32 (bilinear); 28: no resize
    mean: float
    std: float
    seed: int
    epochs: int
    batch_size: int
    lr: float
    translate: int = 0    # random shift by up to +-translate pixels (0: flips only)
    label_smoothing: float = 0.0


# The members of the fashion_ensemble, in training order of the driver (longest first).  Three distinct
# preprocessing configs, two members each: 32x32 stretched with mean/std (lenet5_fashion, vgg_fashion_s1),
# 28x28 native with mean/std (alexnet_fashion, vgg_fashion), 28x28 native scaled to 0..1 (vgg_fashion_s2,
# lenet5_fashion_s1).
MEMBERS = OrderedDict((m.name, m) for m in [
    Member("vgg_fashion_s1", "vgg_s", 32, MEAN, STD, seed=1, epochs=10, batch_size=128, lr=0.1, translate=2),
    Member("alexnet_fashion", "alexnet_s", 28, MEAN, STD, seed=0, epochs=10, batch_size=128, lr=0.05),
    Member("vgg_fashion", "vgg_s", 28, MEAN, STD, seed=0, epochs=12, batch_size=128, lr=0.1, translate=2),
    Member("vgg_fashion_s2", "vgg_s", 28, 0.0, 1.0, seed=2, epochs=8, batch_size=128, lr=0.1, translate=2),
    Member("lenet5_fashion", "lenet5", 32, MEAN, STD, seed=0, epochs=20, batch_size=64, lr=0.05),
    Member("lenet5_fashion_s1", "lenet5", 28, 0.0, 1.0, seed=1, epochs=20, batch_size=64, lr=0.05),
])

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path):
    """Read an IDX file (optionally gzip compressed) into a NumPy array.

    Header: two zero bytes, a type byte (0x08 uint8 ... 0x0E float64), the number of dimensions, then one
    big-endian uint32 per dimension; the data follows, big-endian, row-major."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("%s: not an IDX file (bad magic)" % path)
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError("%s: unknown IDX type 0x%02x" % (path, code))
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[code])
    count = int(np.prod(dims, dtype=np.int64)) if ndim else 1
    offset = 4 + 4 * ndim
    if len(data) != offset + count * dtype.itemsize:
        raise ValueError("%s: %d bytes of data, header says %s x %d" % (
            path, len(data) - offset, "x".join(map(str, dims)), dtype.itemsize))
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def load_split(split, data_dir=DATA_DIR):
    """('train'|'test') -> (images uint8 N x 28 x 28, labels int64 N)."""
    img_fn, lab_fn = FILES[split]
    images = read_idx(os.path.join(data_dir, img_fn))
    labels = read_idx(os.path.join(data_dir, lab_fn)).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (SRC_SIZE, SRC_SIZE) or images.dtype != np.uint8:
        raise ValueError("%s images: unexpected shape %s %s" % (split, images.shape, images.dtype))
    if labels.shape != (images.shape[0],) or labels.min() < 0 or labels.max() >= len(CLASSES):
        raise ValueError("%s labels: unexpected shape or range" % split)
    return images, labels


def pixel_stats(images):
    """Mean and (population) standard deviation of all pixels * SCALE, in float64."""
    x = images.astype(np.float64) * SCALE
    return float(x.mean()), float(x.std())


def linear_resize_matrix(src, dst):
    """dst x src float64 matrix M such that M @ v is OpenCV's INTER_LINEAR resize of v (length src) to dst.

    Same as cv::resize: fx = (d + 0.5) * src / dst - 0.5, sx = floor(fx), weights (1 - (fx - sx), fx - sx)
    on sx, sx + 1; where sx < 0 it uses (sx = 0, weight 1) and where sx >= src - 1 (sx = src - 1, weight 1),
    i.e. the edge pixels are clamped.  (OpenCV computes fx in float32; for 28 -> 32 it is exact.)"""
    scale = float(src) / float(dst)
    m = np.zeros((dst, src), np.float64)
    for d in range(dst):
        fx = float(np.float32((d + 0.5) * scale - 0.5))
        sx = int(math.floor(fx))
        fx -= sx
        if sx < 0:
            sx, fx = 0, 0.0
        if sx >= src - 1:
            sx, fx = src - 1, 0.0
        m[d, sx] += 1.0 - fx
        if fx:
            m[d, sx + 1] += fx
    return m


def resize_linear(images, size=INPUT_SIZE):
    """OpenCV INTER_LINEAR resize of N x H x W images (any dtype) to N x size x size float32."""
    x = np.asarray(images, np.float64)
    n, h, w = x.shape
    mh = linear_resize_matrix(h, size)
    mw = linear_resize_matrix(w, size)
    # horizontal pass then vertical pass, like OpenCV; exact in float64 for uint8 sources
    out = np.einsum("yh,nhw,xw->nyx", mh, x, mw, optimize=True)
    return out.astype(np.float32)


def normalize(x, mean=MEAN, std=STD):
    """x' = (x * SCALE - mean) / std in float32 (the config's scale/mean/std)."""
    x = np.asarray(x, np.float32)
    return (x * np.float32(SCALE) - np.float32(mean)) / np.float32(std)


def resize_linear_u8_opencv(images, size=INPUT_SIZE):
    """uint8 N x H x W -> uint8 N x size x size, bit-exact to OpenCV 4.6's cv::resize(INTER_LINEAR) on a CV_8U
    image on x86 (its SIMD path; checked on all 70,000 images).  Fixed point: weights * 2048 as int16;
    horizontal sums S in int32; vertically ((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16), then
    (t + 2) >> 2.  Rows are clamped by index only (the vertical weights stay (1 - fy, fy)), columns as in
    linear_resize_matrix().  Used to measure what a server that resizes the uint8 image would feed the model."""
    x = np.asarray(images, np.uint8).astype(np.int64)
    n, h, w = x.shape
    mw = np.round(linear_resize_matrix(w, size) * 2048).astype(np.int64)
    hs = np.einsum("nhw,xw->nhx", x, mw)
    out = np.empty((n, size, size), np.uint8)
    for y in range(size):
        fy = float(np.float32((y + 0.5) * h / size - 0.5))
        sy = int(math.floor(fy))
        fy -= sy
        b0, b1 = int(round((1.0 - fy) * 2048)), int(round(fy * 2048))
        s0 = hs[:, min(max(sy, 0), h - 1)] >> 4
        s1 = hs[:, min(max(sy + 1, 0), h - 1)] >> 4
        t = ((s0 * b0) >> 16) + ((s1 * b1) >> 16)
        out[:, y] = np.clip((t + 2) >> 2, 0, 255)
    return out


def preprocess(images, opencv_u8=False, size=INPUT_SIZE, mean=MEAN, std=STD):
    """uint8 N x 28 x 28 -> float32 N x 1 x size x size, exactly the model's training/serving input
    (the defaults: lenet5_fashion's).  size 28: no resize, only the float conversion and normalisation.

    opencv_u8: resize the uint8 image as cv::resize does on CV_8U (resize_linear_u8_opencv) instead of the
    float image (a server that resizes before converting to float)."""
    images = np.asarray(images)
    if size == images.shape[-1] and size == images.shape[-2]:
        r = images.astype(np.float32)          # cv::resize to the same size copies
    else:
        r = resize_linear_u8_opencv(images, size) if opencv_u8 else resize_linear(images, size)
    return normalize(r, mean, std)[:, None, :, :]


def member_input(member, images):
    """A Member's (or any object with input_size/mean/std) model input for uint8 N x 28 x 28 images."""
    return preprocess(images, size=member.input_size, mean=member.mean, std=member.std)


# --------------------------------------------------------------------------
# architectures of the ensemble members (LeNet-5 itself is arch.build("lenet5"))
# --------------------------------------------------------------------------

class _Net(nn.Module):
    """A chain of named modules; the names become the ONNX node names (export.rename_textbook)."""

    def __init__(self):
        super().__init__()
        self._order = []

    def _add(self, name, module):
        setattr(self, name, module)
        self._order.append(name)

    def forward(self, x):
        for name in self._order:
            x = getattr(self, name)(x)
        return x


def _pool_out(size, kernel, stride):
    return (size - kernel) // stride + 1


class AlexNetS(_Net):
    """A small AlexNet for 1 x 28 x 28 (or 32 x 32) input: LRN after the first two (overlapping) pools.

    conv1 32@5x5 p2 -> 32x28x28, relu1, pool1 3/2 -> 13x13, norm1 (LRN)
    conv2 48@3x3 p1 -> 48x13x13, relu2, pool2 3/2 -> 6x6,   norm2 (LRN)
    conv3 64@3x3 p1, relu3; conv4 64@3x3 p1, relu4; conv5 64@3x3 p1, relu5; pool5 3/2 -> 64x2x2
    flatten 256, fc6 256 relu6 drop6, fc7 256 relu7 drop7, fc8 10
    """

    CONVS = ((32, 5, 2, True), (48, 3, 1, True), (64, 3, 1, False), (64, 3, 1, False), (64, 3, 1, True))

    def __init__(self, input_size=28, num_classes=10, fc_width=256, dropout=0.5):
        super().__init__()
        c, side = 1, input_size
        for i, (out_c, k, pad, pool) in enumerate(self.CONVS, start=1):
            self._add("conv%d" % i, nn.Conv2d(c, out_c, kernel_size=k, padding=pad))
            self._add("relu%d" % i, nn.ReLU())
            if pool:
                self._add("pool%d" % i, nn.MaxPool2d(kernel_size=3, stride=2))
                side = _pool_out(side, 3, 2)
            if i <= 2:
                self._add("norm%d" % i, arch.LRN(**arch.LRN_ARGS))
            c = out_c
        self._add("flatten", nn.Flatten(1))
        n_in = c * side * side
        for idx in (6, 7):
            self._add("fc%d" % idx, nn.Linear(n_in, fc_width))
            self._add("relu%d" % idx, nn.ReLU())
            self._add("drop%d" % idx, nn.Dropout(p=dropout))
            n_in = fc_width
        self._add("fc8", nn.Linear(n_in, num_classes))
        # He-normal init of the ReLU layers (no BatchNorm here: PyTorch's default init shrinks the signal
        # through eight layers); fc8 keeps PyTorch's default.
        for name in self._order:
            m = getattr(self, name)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and name != "fc8":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)


class VGGS(_Net):
    """A small VGG for 1 x 28 x 28 (or 32 x 32) input: 3x3 p1 convs in VGG-11's block pattern.

    conv1_1 32                      -> 32x28x28, pool1 2/2 -> 14x14
    conv2_1 32, conv2_2 32          -> 32x14x14, pool2 2/2 -> 7x7
    conv3_1 64, conv3_2 64          -> 64x7x7,   pool3 2/2 -> 3x3   (4x4 for 32x32 input)
    flatten 576, fc1 256 relu_fc1 drop_fc1, fc2 10
    Each conv is followed by bn<b>_<i> (batch_norm=True, training) and relu<b>_<i>; fold_batchnorm() turns a
    trained batch_norm=True net into the batch_norm=False one (convs with bias) that is exported.
    """

    BLOCKS = ((32,), (32, 32), (64, 64))

    def __init__(self, input_size=28, num_classes=10, fc_width=256, dropout=0.3, batch_norm=True):
        super().__init__()
        c, side = 1, input_size
        for b, widths in enumerate(self.BLOCKS, start=1):
            for i, out_c in enumerate(widths, start=1):
                tag = "%d_%d" % (b, i)
                self._add("conv" + tag, nn.Conv2d(c, out_c, kernel_size=3, padding=1, bias=not batch_norm))
                if batch_norm:
                    self._add("bn" + tag, nn.BatchNorm2d(out_c))
                self._add("relu" + tag, nn.ReLU())
                c = out_c
            self._add("pool%d" % b, nn.MaxPool2d(kernel_size=2, stride=2))
            side = _pool_out(side, 2, 2)
        self._add("flatten", nn.Flatten(1))
        self._add("fc1", nn.Linear(c * side * side, fc_width))
        self._add("relu_fc1", nn.ReLU())
        self._add("drop_fc1", nn.Dropout(p=dropout))
        self._add("fc2", nn.Linear(fc_width, num_classes))


def build_model(arch_name, input_size, for_export=False):
    """A fresh module (PyTorch init under torch's global generator).  for_export: the graph that is exported
    (vgg_s without BatchNorm)."""
    if arch_name == "lenet5":
        model = arch.build("lenet5")
        if input_size == 28:
            model.conv1.padding = (2, 2)       # zero-pad 28x28 to 32x32 inside the net
        elif input_size != 32:
            raise ValueError("lenet5 takes --input-size 32 or 28")
        return model
    if arch_name == "alexnet_s":
        return AlexNetS(input_size)
    if arch_name == "vgg_s":
        return VGGS(input_size, batch_norm=not for_export)
    raise ValueError("unknown --arch %r (one of %s)" % (arch_name, ", ".join(ARCHS)))


@torch.no_grad()
def fold_batchnorm(model, input_size):
    """A trained VGGS(batch_norm=True) -> an equivalent VGGS(batch_norm=False) in eval mode: each conv's
    weight w and the following BatchNorm (gamma, beta, running mean m and var v, eps) become
    w' = w * gamma / sqrt(v + eps), b' = beta - m * gamma / sqrt(v + eps) (computed in float64)."""
    deploy = VGGS(input_size, batch_norm=False)
    src = model.state_dict()
    new = {}
    for name in deploy._order:
        mod = getattr(deploy, name)
        if isinstance(mod, nn.Conv2d):
            bn_name = "bn" + name[len("conv"):]
            bn = getattr(model, bn_name)
            w = src[name + ".weight"].double()
            inv = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            new[name + ".weight"] = (w * inv[:, None, None, None]).float()
            new[name + ".bias"] = (bn.bias.double() - bn.running_mean.double() * inv).float()
        elif isinstance(mod, nn.Linear):
            new[name + ".weight"] = src[name + ".weight"].clone()
            new[name + ".bias"] = src[name + ".bias"].clone()
    deploy.load_state_dict(new, strict=True)
    return deploy.eval()


def export_module(model, arch_name, input_size):
    """The trained module -> the module whose graph is exported (eval mode, contiguous weights)."""
    model = model.to(memory_format=torch.contiguous_format).eval()
    if arch_name == "vgg_s":
        return fold_batchnorm(model, input_size)
    return model


def random_translate(xb, shifts, pad, fill):
    """Shift each image of xb (B x 1 x H x W) by shifts[b] - pad pixels (shifts: B x 2 ints in 0..2*pad, y and
    x), filling the uncovered border with `fill` (the normalised background)."""
    n, c, h, w = xb.shape
    padded = F.pad(xb, (pad, pad, pad, pad), value=float(fill))
    out = torch.empty_like(xb)
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            sel = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            if bool(sel.any()):
                out[sel] = padded[sel, :, dy:dy + h, dx:dx + w]
    return out


# --------------------------------------------------------------------------
# model I/O
# --------------------------------------------------------------------------

def load_onnx_weights(model, path):
    """Copy the initializers of an exported LeNet-5 ONNX file (named like the state_dict, as export.py
    keeps them) into a PyTorch module."""
    proto = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    state = model.state_dict()
    missing = [k for k in state if k not in inits]
    if missing:
        raise ValueError("%s: initializers %s missing (have %s)" % (path, missing, sorted(inits)))
    new = {}
    for k, v in state.items():
        a = inits[k]
        if tuple(a.shape) != tuple(v.shape):
            raise ValueError("%s: %s has shape %s, expected %s" % (path, k, a.shape, tuple(v.shape)))
        new[k] = torch.from_numpy(np.array(a, np.float32))
    model.load_state_dict(new, strict=True)
    return proto


@torch.no_grad()
def predict(model, x, batch=1000):
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))))
    return torch.cat(out).numpy()


def accuracy(logits, labels):
    return float((np.argmax(logits, axis=1) == labels).mean())


def is_default_lenet5(args):
    """True for the original lenet5_fashion recipe (whose model.onnx must stay byte-identical)."""
    return (args.arch == "lenet5" and args.input_size == INPUT_SIZE and args.mean == MEAN and args.std == STD
            and args.translate == 0 and args.label_smoothing == 0.0 and args.name == MODEL_NAME)


def preprocess_text(args):
    if args.input_size == SRC_SIZE:
        resize = "resize=none(28x28 native input)"
    else:
        resize = "resize=EXACT(28x28->%dx%d, OpenCV INTER_LINEAR on float)" % (args.input_size, args.input_size)
    return "color=GRAY %s scale=1/255 mean=%.4f std=%.4f" % (resize, args.mean, args.std)


ARCH_TITLES = {"lenet5": "LeNet-5", "alexnet_s": "Small AlexNet (LRN, overlapping pools)",
               "vgg_s": "Small VGG (3x3 convs, BatchNorm folded)"}
# config.pbtxt descriptions; {params} is the parameter count
ARCH_DESCRIPTIONS = {
    "lenet5": "LeNet-5 ({params} parameters)",
    "alexnet_s": "Small AlexNet (5 convs, 2 LRN, overlapping 3/2 max pools, FC 256-256-10 with dropout; "
                 "{params} parameters)",
    "vgg_s": "Small VGG (3x3 convs 32 | 32-32 | 64-64 with BatchNorm folded, FC 256-10; {params} parameters)",
}


def export_model(model, out_dir, meta, args=None):
    """Write out_dir/model.onnx via export.py and out_dir/../labels.txt; returns the ONNX bytes.
    args None or the default LeNet-5 recipe: lenet5_fashion's graph name and doc string."""
    model.eval()
    if args is None or is_default_lenet5(args):
        proto = zoo_export.export_onnx(model, arch.info(ARCH), 13)
        proto.graph.name = MODEL_NAME
        proto.doc_string = ("LeNet-5 trained on Fashion-MNIST by models/zoo/train_fashion_mnist.py. Input: gray "
                            "28x28 image resized to 32x32 (OpenCV INTER_LINEAR), x*%s, mean %.4f, std %.4f."
                            % ("1/255", MEAN, STD))
    else:
        info = arch.ModelInfo(args.arch, None, (1, args.input_size, args.input_size), len(CLASSES), "fashion",
                              False, ARCH_TITLES[args.arch])
        proto = zoo_export.export_onnx(model, info, 13)
        proto.graph.name = args.name
        if args.input_size == SRC_SIZE:
            size_text = "28x28 image, not resized"
        else:
            size_text = "28x28 image resized to %dx%d (OpenCV INTER_LINEAR)" % (args.input_size, args.input_size)
        proto.doc_string = ("%s trained on Fashion-MNIST by models/zoo/train_fashion_mnist.py. Input: gray %s, "
                            "x*1/255, mean %.4f, std %.4f." % (ARCH_TITLES[args.arch], size_text, args.mean,
                                                               args.std))
    for k, v in meta:
        p = proto.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    os.makedirs(out_dir, exist_ok=True)
    zoo_export.atomic_write_bytes(os.path.join(out_dir, "model.onnx"), data)
    labels_path = os.path.join(os.path.dirname(os.path.abspath(out_dir)), "labels.txt")
    zoo_export.atomic_write_bytes(labels_path, ("\n".join(CLASSES) + "\n").encode())
    return data


def config_pbtxt(args, params, acc):
    """The config.pbtxt of a trained member (same layout as lenet5_fashion's)."""
    s = args.input_size
    if s == SRC_SIZE:
        resize_comment = (
            "#   -> no resize: the model takes the native 28x28 image (the server's EXACT resize of a 28x28\n"
            "#      image is a copy; other sizes are stretched to 28x28 with INTER_LINEAR on the float image)\n")
        resize_field = "resize: EXACT              # 28x28 images are used as they are (any other size is stretched)"
        pad_note = (
            "# LeNet-5's conv1 has padding 2 here: the 28x28 input is zero-padded to 32x32 inside the net, as in\n"
            "# LeCun et al. 1998; with mean 0 and std 1 that padding is exactly the black background.\n"
            if args.arch == "lenet5" else "")
    else:
        resize_comment = (
            "#   -> cv::resize(f32, out, Size(%d, %d), 0, 0, INTER_LINEAR)    (EXACT resize, stretched, NOT "
            "zero-padded)\n" % (s, s))
        resize_field = "resize: EXACT              # 28x28 -> %dx%d (any input size is stretched to %dx%d)" % (
            s, s, s, s)
        pad_note = ("# Resize the float32 image, not the uint8 one (as for lenet5_fashion): the float path is\n"
                    "# bit-identical to training.\n")
    norm = "mean %.4f, std %.4f" % (args.mean, args.std)
    if args.mean == 0.0 and args.std == 1.0:
        norm += " (the model sees x / 255 in 0..1)"
    aug = "random horizontal flips" + (
        ", random shifts by up to %d pixels" % args.translate if args.translate else "")
    desc = ("%s trained on Fashion-MNIST, seed %d: 10 clothing classes, 28x28 gray input%s; "
            "PyTorch test accuracy %.2f%%" % (
                ARCH_DESCRIPTIONS[args.arch].format(params=format(params, ",")), args.seed,
                " (not resized)" if s == SRC_SIZE else " stretched to %dx%d" % (s, s), 100.0 * acc))
    return (
        "#\n"
        "# Generated by models/zoo/train_fashion_mnist.py --member %s (member of fashion_ensemble).\n"
        "# Preprocessing the model was trained with (train_fashion_mnist.py, preprocess()):\n"
        "#   decode -> 28x28 uint8 gray -> convert to float32 (raw 0..255)\n"
        "%s"
        "#   -> x' = (x * scale - mean) / std   with scale 1/255, %s\n"
        "%s"
        "# Training: %s, seed %d, %d epochs, batch %d,\n"
        "#   SGD Nesterov momentum 0.9, lr %g with warm-up and cosine decay, weight decay %g, %s.\n"
        "\n"
        "name: \"%s\"\n"
        "platform: \"onnx\"\n"
        "max_batch_size: 64\n"
        "input {\n"
        "  dims: [1, %d, %d]          # C, H, W; the ONNX input \"input\" is [N, 1, %d, %d], N dynamic\n"
        "}\n"
        "preprocess {\n"
        "  color: GRAY\n"
        "  %s\n"
        "  scale: 0.0039215688593685627   # 1/255 as float32 (0 also means 1/255)\n"
        "  mean: [%s]\n"
        "  std: [%s]\n"
        "}\n"
        "dynamic_batching {\n"
        "  max_queue_delay_us: 500\n"
        "  preferred_batch_size: [8, 32]\n"
        "}\n"
        "instance_group {\n"
        "  count: 1\n"
        "  threads: 1\n"
        "}\n"
        "labels: \"labels.txt\"\n"
        "description: \"%s\"\n" % (
            args.name, resize_comment, norm, pad_note, ARCH_TITLES[args.arch], args.seed, args.epochs,
            args.batch_size,
            args.lr, args.weight_decay, aug, args.name, s, s, s, s, resize_field,
            "%.4f" % args.mean, "%.4f" % args.std, desc))


# --------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------

def set_determinism(seed, threads):
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def train(args):
    set_determinism(args.seed, args.threads)
    t_start = time.time()
    cpu_start = time.process_time()
    default = is_default_lenet5(args)
    tr_img, tr_lab = load_split("train", args.data_dir)
    te_img, te_lab = load_split("test", args.data_dir)
    mean, std = pixel_stats(tr_img)
    print("training pixels: mean %.6f std %.6f (constants used: %.4f %.4f)" % (mean, std, args.mean, args.std))
    x_tr = torch.from_numpy(preprocess(tr_img, size=args.input_size, mean=args.mean, std=args.std))
    y_tr = torch.from_numpy(tr_lab)
    x_te = preprocess(te_img, size=args.input_size, mean=args.mean, std=args.std)
    print("data loaded and preprocessed in %.1f s" % (time.time() - t_start), flush=True)

    torch.manual_seed(args.seed)
    model = build_model(args.arch, args.input_size)
    channels_last = args.arch != "lenet5"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    background = float(normalize(np.zeros(1, np.float32), args.mean, args.std)[0])  # raw pixel 0, normalised
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.weight_decay)
    n = len(x_tr)
    steps_per_epoch = (n + args.batch_size - 1) // args.batch_size
    total_steps = steps_per_epoch * args.epochs
    warmup = steps_per_epoch

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return args.lr * 0.5 * (1.0 + math.cos(math.pi * t))

    t_train = time.time()
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.time()
        perm = torch.randperm(n, generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5
        if args.translate:
            shifts = torch.randint(0, 2 * args.translate + 1, (n, 2), generator=gen)
        loss_sum = 0.0
        correct = 0
        for i in range(0, n, args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb = x_tr[idx]
            fb = flips[i:i + args.batch_size]
            xb = torch.where(fb[:, None, None, None], torch.flip(xb, dims=[3]), xb)
            if args.translate:
                xb = random_translate(xb, shifts[i:i + args.batch_size], args.translate, background)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = y_tr[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            logits = model(xb)
            if args.label_smoothing:
                loss = F.cross_entropy(logits, yb, label_smoothing=args.label_smoothing)
            else:
                loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += float(loss) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        test_acc = accuracy(predict(model, x_te), te_lab)
        print("epoch %2d/%d  lr %.4f  loss %.4f  train acc %.4f  test acc %.4f  %.1f s" % (
            epoch, args.epochs, lr_at(step - 1), loss_sum / n, correct / n, test_acc,
            time.time() - t0), flush=True)
    train_time = time.time() - t_train

    model.eval()
    if not default:
        trained_acc = accuracy(predict(model, x_te), te_lab)
        model = export_module(model, args.arch, args.input_size)
    logits = predict(model, x_te)
    acc = accuracy(logits, te_lab)
    if not default and args.arch == "vgg_s":
        print("BatchNorm folded: test accuracy %.4f before, %.4f after (the exported graph)" % (trained_acc, acc))
    cmd = "models/zoo/train_fashion_mnist.py --epochs %d --seed %d --threads %d --batch-size %d --lr %g" % (
        args.epochs, args.seed, args.threads, args.batch_size, args.lr)
    if not default:
        cmd += " --arch %s --input-size %d --mean %.4f --std %.4f --translate %d --label-smoothing %g " \
               "--weight-decay %g --name %s" % (args.arch, args.input_size, args.mean, args.std, args.translate,
                                                args.label_smoothing, args.weight_decay, args.name)
    meta = [
        ("cnnserve.preprocess", preprocess_text(args)),
        ("cnnserve.labels", ",".join(CLASSES)),
        ("cnnserve.training", "%s (torch %s)" % (cmd, torch.__version__)),
        ("cnnserve.test_accuracy_pytorch", "%.4f" % acc),
    ]
    if not default:
        meta += [("cnnserve.arch", args.arch), ("cnnserve.input_size", str(args.input_size)),
                 ("cnnserve.mean", "%.4f" % args.mean), ("cnnserve.std", "%.4f" % args.std)]
    data = export_model(model, args.out, meta, args)
    # the file must give the same predictions as the module it came from
    check = build_model(args.arch, args.input_size, for_export=True)
    load_onnx_weights(check, os.path.join(args.out, "model.onnx"))
    if not np.array_equal(predict(check, x_te), logits):
        raise RuntimeError("weights read back from model.onnx give different logits")
    params = arch.count_params(check)
    config_path = None
    if args.write_config:
        config_path = os.path.join(os.path.dirname(os.path.abspath(args.out)), "config.pbtxt")
        zoo_export.atomic_write_bytes(config_path, config_pbtxt(args, params, acc).encode())
    wall = time.time() - t_start
    cpu = time.process_time() - cpu_start
    print("test accuracy (PyTorch, 10,000 images): %.4f" % acc)
    print("training time %.1f s (%d epochs), total %.1f s" % (train_time, args.epochs, wall))
    print("wrote %s (%s bytes, crc32 %08x) and %s%s" % (
        os.path.join(args.out, "model.onnx"), format(len(data), ","), zlib.crc32(data),
        os.path.join(os.path.dirname(os.path.abspath(args.out)), "labels.txt"),
        " and " + config_path if config_path else ""))
    summary = OrderedDict([
        ("name", args.name), ("arch", args.arch), ("seed", args.seed), ("input_size", args.input_size),
        ("mean", args.mean), ("std", args.std), ("epochs", args.epochs), ("params", params),
        ("onnx_bytes", len(data)), ("test_accuracy_pytorch", acc), ("train_s", round(train_time, 1)),
        ("wall_s", round(wall, 1)), ("cpu_s", round(cpu, 1)),
        ("max_rss_mb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1))])
    print("RESULT " + json.dumps(summary), flush=True)
    return 0


def train_members(args):
    names = list(MEMBERS) if args.member == "all" else [m for m in args.member.split(",") if m]
    unknown = [m for m in names if m not in MEMBERS]
    if unknown:
        print("train_fashion_mnist.py: unknown member(s) %s; known: %s" % (", ".join(unknown), ", ".join(MEMBERS)),
              file=sys.stderr)
        return 2
    for name in names:
        m = MEMBERS[name]
        a = argparse.Namespace(**vars(args))
        a.arch, a.input_size, a.mean, a.std, a.seed = m.arch, m.input_size, m.mean, m.std, m.seed
        a.epochs, a.batch_size, a.lr, a.weight_decay = m.epochs, m.batch_size, m.lr, 5e-4
        a.translate, a.label_smoothing, a.name = m.translate, m.label_smoothing, m.name
        a.out = os.path.join(args.repository, name, "1")
        a.write_config = not is_default_lenet5(a)      # lenet5_fashion's config.pbtxt is hand-written
        print("== member %s: %s" % (name, m), flush=True)
        rc = train(a)
        if rc:
            return rc
    return 0


def list_members():
    print("%-18s %-10s %5s %7s %7s %4s %6s %5s %6s %9s" % ("member", "arch", "input", "mean", "std", "seed",
                                                             "epochs", "batch", "lr", "translate"))
    for m in MEMBERS.values():
        print("%-18s %-10s %5d %7.4f %7.4f %4d %6d %5d %6g %9d" % (m.name, m.arch, m.input_size, m.mean, m.std,
                                                                 m.seed, m.epochs, m.batch_size, m.lr,
                                                                 m.translate))
    return 0


# --------------------------------------------------------------------------
# evaluation and test images
# --------------------------------------------------------------------------

def model_spec(proto, args):
    """(arch, input_size, mean, std) of an exported file: its cnnserve.* metadata, else the options."""
    meta = {p.key: p.value for p in proto.metadata_props}
    if "cnnserve.arch" in meta:
        return (meta["cnnserve.arch"], int(meta["cnnserve.input_size"]), float(meta["cnnserve.mean"]),
                float(meta["cnnserve.std"]))
    return args.arch, args.input_size, args.mean, args.std


def eval_only(args):
    torch.set_num_threads(max(1, args.threads))
    te_img, te_lab = load_split("test", args.data_dir)
    a_name, size, mean, std = model_spec(onnx.load(args.eval_only), args)
    model = build_model(a_name, size, for_export=True)
    proto = load_onnx_weights(model, args.eval_only)
    x = preprocess(te_img, size=size, mean=mean, std=std)
    logits = predict(model, x)
    print("%s: %s, input %dx%d, mean %.4f std %.4f: test accuracy (PyTorch, %d images): %.4f" % (
        args.eval_only, a_name, size, size, mean, std, len(te_lab), accuracy(logits, te_lab)))
    if size != SRC_SIZE:
        acc_u8 = accuracy(predict(model, preprocess(te_img, opencv_u8=True, size=size, mean=mean, std=std)),
                          te_lab)
        print("  if the server resized the uint8 image (cv::resize on CV_8U, rounded): %.4f" % acc_u8)
    if args.numpy_check:
        import check_onnx  # the zoo's independent float64 NumPy ONNX interpreter
        ref = np.concatenate([check_onnx.run_numpy(proto, x[i:i + 500]) for i in range(0, len(x), 500)])
        print("  ONNX graph run by check_onnx.run_numpy (float64): accuracy %.4f, max |logit diff| "
              "vs PyTorch %.2e, top-1 agreement %.4f" % (
                  accuracy(ref, te_lab), float(np.abs(ref - logits).max()),
                  float((ref.argmax(1) == logits.argmax(1)).mean())))
    return 0


def _png_bytes(gray):
    """Minimal 8-bit grayscale PNG encoder (fallback when PIL is missing)."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[y].tobytes() for y in range(h))

    def chunk(tag, payload):
        return (struct.pack(">I", len(payload)) + tag + payload
                + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_test_images(args):
    try:
        from PIL import Image
    except ImportError:
        Image = None
    te_img, te_lab = load_split("test", args.data_dir)
    count = min(args.count, len(te_lab))
    os.makedirs(args.write_test_images, exist_ok=True)
    rows = []
    for i in range(count):
        stem = "fashion_%05d" % i
        if Image is not None:
            im = Image.fromarray(te_img[i], mode="L")
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            png = buf.getvalue()
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=95)
            jpg = buf.getvalue()
        else:
            png, jpg = _png_bytes(te_img[i]), None
        zoo_export.atomic_write_bytes(os.path.join(args.write_test_images, stem + ".png"), png)
        rows.append((stem + ".png", int(te_lab[i])))
        if jpg is not None:
            zoo_export.atomic_write_bytes(os.path.join(args.write_test_images, stem + ".jpg"), jpg)
            rows.append((stem + ".jpg", int(te_lab[i])))
    with open(os.path.join(args.write_test_images, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["filename", "label"])
        w.writerows(rows)
    # the exact model input for the PNGs (and, with --model, PyTorch's logits for it)
    x = preprocess(te_img[:count])
    zoo_export.atomic_save_npy(os.path.join(args.write_test_images, "input.npy"), x)
    msg = ""
    if args.model:
        torch.set_num_threads(max(1, args.threads))
        model = arch.build(ARCH)
        load_onnx_weights(model, args.model)
        logits = predict(model, x).astype(np.float32)
        zoo_export.atomic_save_npy(os.path.join(args.write_test_images, "logits.npy"), logits)
        msg = ", logits.npy (top-1 correct on %d of %d)" % (
            int((logits.argmax(1) == te_lab[:count]).sum()), count)
    print("wrote %d test images (%s) with labels.csv, input.npy%s to %s" % (
        count, "PNG + JPEG q95" if Image is not None else "PNG only (no PIL)", msg,
        args.write_test_images))
    return 0


def write_train_images(args):
    """The first --count training images as PNG (calibration data for INT8: never the test images)."""
    tr_img, _ = load_split("train", args.data_dir)
    count = min(args.count, len(tr_img))
    os.makedirs(args.write_train_images, exist_ok=True)
    for i in range(count):
        zoo_export.atomic_write_bytes(os.path.join(args.write_train_images, "train_%05d.png" % i),
                                      _png_bytes(tr_img[i]))
    print("wrote %d training images (PNG) to %s" % (count, args.write_train_images))
    return 0


DEFAULT_REPOSITORY = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                                  "repository"))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", help="train and write OUT/model.onnx and OUT/../labels.txt")
    mode.add_argument("--member", metavar="NAME[,NAME...]|all",
                      help="train these members of MEMBERS into --repository (see --list-members)")
    mode.add_argument("--list-members", action="store_true", help="print the members and their recipes")
    mode.add_argument("--eval-only", metavar="ONNX", help="print the PyTorch test accuracy of ONNX")
    mode.add_argument("--write-test-images", metavar="DIR",
                      help="write the first --count test images as PNG and JPEG with labels.csv")
    mode.add_argument("--write-train-images", metavar="DIR",
                      help="write the first --count training images as PNG (INT8 calibration data)")
    p.add_argument("--arch", choices=ARCHS, default="lenet5")
    p.add_argument("--input-size", type=int, choices=(28, 32), default=None,
                   help="model input side: 32 stretches the 28x28 image (default for lenet5), 28 does not "
                        "resize (default otherwise)")
    p.add_argument("--mean", type=float, default=MEAN, help="normalisation mean of x/255 (default %(default)s)")
    p.add_argument("--std", type=float, default=STD, help="normalisation std of x/255 (default %(default)s)")
    p.add_argument("--translate", type=int, default=0, metavar="PIXELS",
                   help="augmentation: random shifts by up to +-PIXELS (default 0: flips only)")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--name", help="model (graph) name (default lenet5_fashion for lenet5, else ARCH_fashion)")
    p.add_argument("--write-config", action="store_true", help="with --out: also write OUT/../config.pbtxt")
    p.add_argument("--repository", default=DEFAULT_REPOSITORY,
                   help="with --member: the model repository (default %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="default: 20 (lenet5), 10 (alexnet_s), 12 (vgg_s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 (lenet5), 128 (others)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak SGD learning rate (default: 0.05, 0.1 for vgg_s)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--count", type=int, default=100, help="with --write-test-images / --write-train-images")
    p.add_argument("--model", metavar="ONNX", help="with --write-test-images: also write logits.npy")
    p.add_argument("--numpy-check", action="store_true",
                   help="with --eval-only: also run the ONNX graph with check_onnx's NumPy interpreter")
    p.add_argument("--data-dir", default=DATA_DIR)
    a = p.parse_args(argv)
    epochs, batch_size, lr = ARCH_DEFAULTS[a.arch]
    a.epochs = epochs if a.epochs is None else a.epochs
    a.batch_size = batch_size if a.batch_size is None else a.batch_size
    a.lr = lr if a.lr is None else a.lr
    if a.input_size is None:
        a.input_size = INPUT_SIZE if a.arch == "lenet5" else SRC_SIZE
    if a.name is None:
        a.name = MODEL_NAME if a.arch == "lenet5" else "%s_fashion" % a.arch
    if a.epochs < 1 or a.batch_size < 1 or a.count < 1:
        p.error("--epochs, --batch-size and --count must be positive")
    if a.std <= 0 or a.translate < 0 or not 0.0 <= a.label_smoothing < 1.0:
        p.error("--std must be > 0, --translate >= 0, --label-smoothing in [0, 1)")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.out:
        return train(a)
    if a.member:
        return train_members(a)
    if a.list_members:
        return list_members()
    if a.eval_only:
        return eval_only(a)
    if a.write_train_images:
        return write_train_images(a)
    return write_test_images(a)


if __name__ == "__main__":
    sys.exit(main())
