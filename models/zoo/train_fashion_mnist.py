#!/usr/bin/python3
"""Train the zoo's LeNet-5 on Fashion-MNIST and export it for the model repository.

    /usr/bin/python3 models/zoo/train_fashion_mnist.py --out models/repository/lenet5_fashion/1
        [--epochs 20] [--seed 0] [--threads 1] [--batch-size 64] [--lr 0.05]
    /usr/bin/python3 models/zoo/train_fashion_mnist.py --eval-only models/repository/lenet5_fashion/1/model.onnx
    /usr/bin/python3 models/zoo/train_fashion_mnist.py --write-test-images DIR --count N [--model ONNX]

Training writes OUT/model.onnx (input "input" N x 1 x 32 x 32 float32, output "logits" N x 10, N dynamic;
exported by export.py's export_onnx, nodes named conv1 ... fc3) and OUT/../labels.txt (CLASSES, one a line).
--eval-only prints the test accuracy of an exported file's weights run by PyTorch (--numpy-check: also of the
ONNX graph itself, run by check_onnx.py's NumPy interpreter).
--write-test-images writes DIR/fashion_NNNNN.png (the raw 28x28 gray pixels) and .jpg (quality 95) for the
first N test images, DIR/labels.csv (header "filename,label", label = class index = line of labels.txt,
one row per file), DIR/input.npy (float32 N x 1 x 32 x 32, the exact model input for the PNGs) and, with
--model ONNX, DIR/logits.npy (float32 N x 10, PyTorch's logits for input.npy).

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*.gz, IDX format, read by read_idx).

Preprocessing (what the server must reproduce; see preprocess()):
  1. the 28x28 uint8 gray image, converted to float32 (raw 0..255),
  2. resized 28x28 -> 32x32 with OpenCV's INTER_LINEAR algorithm (half-pixel centres, edge pixels clamped),
     i.e. cv::resize(float_img, out, Size(32, 32), 0, 0, INTER_LINEAR) on a CV_32F image;
     resize_linear() implements it in NumPy.  For 28 -> 32 every weight is a multiple of 1/16, so on raw
     0..255 values the float32 result is exact (a multiple of 1/256), whatever the order of operations;
  3. x' = (x * SCALE - MEAN) / STD with SCALE = 1/255, MEAN = 0.2860, STD = 0.3530 (float32), the mean and
     standard deviation of the 60,000 raw 28x28 training images' pixels / 255, rounded to 4 decimals
     (pixel_stats() recomputes them).
The model therefore sees the image stretched to 32x32, not zero-padded to 32x32: the server's preprocessing
(EXACT resize, no padding) reproduces it.  resize_linear() is bit-identical to OpenCV 4.6's cv::resize on the
CV_32F image (checked on all 70,000 images).  Resizing the uint8 image instead (cv::resize on CV_8U, fixed
point, rounded to integers; emulated bit-exactly by resize_linear_u8_opencv) is up to 0.75/255 off per pixel;
--eval-only prints the accuracy on that input too.

Training: LeNet-5 as arch.build("lenet5") (PyTorch default init under the seed), SGD with Nesterov momentum 0.9,
weight decay 5e-4, batch 64, cosine learning-rate decay from --lr to 0 over --epochs, linear warm-up during the
first epoch; cross-entropy.  Augmentation: random horizontal flip (p = 0.5; Fashion-MNIST classes are
left-right symmetric, so a flipped shirt is still a shirt) and nothing else.  The order of the images and the
flips come from one torch.Generator seeded with --seed; torch.use_deterministic_algorithms(True); with a fixed
--threads the run is reproducible bit for bit (same weights, byte-identical model.onnx).

Helpers other scripts can import (models/zoo on sys.path):
    import train_fashion_mnist as fm
    images, labels = fm.load_split("test")          # uint8 N x 28 x 28, int64 N
    x = fm.preprocess(images)                       # float32 N x 1 x 32 x 32, the model's input
"""

import argparse
import csv
import gzip
import io
import math
import os
import struct
import sys
import time
import zlib

import numpy as np
import onnx
from onnx import numpy_helper
import torch
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


def normalize(x):
    """x' = (x * SCALE - MEAN) / STD in float32 (the config's scale/mean/std)."""
    x = np.asarray(x, np.float32)
    return (x * np.float32(SCALE) - np.float32(MEAN)) / np.float32(STD)


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


def preprocess(images, opencv_u8=False):
    """uint8 N x 28 x 28 -> float32 N x 1 x 32 x 32, exactly the model's training/serving input.

    opencv_u8: resize the uint8 image as cv::resize does on CV_8U (resize_linear_u8_opencv) instead of the
    float image (a server that resizes before converting to float)."""
    r = resize_linear_u8_opencv(images) if opencv_u8 else resize_linear(images)
    return normalize(r)[:, None, :, :]


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


def export_model(model, out_dir, meta):
    """Write out_dir/model.onnx via export.py and out_dir/../labels.txt; returns the ONNX bytes."""
    model.eval()
    proto = zoo_export.export_onnx(model, arch.info(ARCH), 13)
    proto.graph.name = MODEL_NAME
    proto.doc_string = ("LeNet-5 trained on Fashion-MNIST by models/zoo/train_fashion_mnist.py. Input: gray "
                        "28x28 image resized to 32x32 (OpenCV INTER_LINEAR), x*%s, mean %.4f, std %.4f."
                        % ("1/255", MEAN, STD))
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
    tr_img, tr_lab = load_split("train", args.data_dir)
    te_img, te_lab = load_split("test", args.data_dir)
    mean, std = pixel_stats(tr_img)
    print("training pixels: mean %.6f std %.6f (constants used: %.4f %.4f)" % (mean, std, MEAN, STD))
    x_tr = torch.from_numpy(preprocess(tr_img))
    y_tr = torch.from_numpy(tr_lab)
    x_te = preprocess(te_img)
    print("data loaded and preprocessed in %.1f s" % (time.time() - t_start), flush=True)

    torch.manual_seed(args.seed)
    model = arch.build(ARCH)
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
        loss_sum = 0.0
        correct = 0
        for i in range(0, n, args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb = x_tr[idx]
            fb = flips[i:i + args.batch_size]
            xb = torch.where(fb[:, None, None, None], torch.flip(xb, dims=[3]), xb)
            yb = y_tr[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            logits = model(xb)
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
    logits = predict(model, x_te)
    acc = accuracy(logits, te_lab)
    cmd = "models/zoo/train_fashion_mnist.py --epochs %d --seed %d --threads %d --batch-size %d --lr %g" % (
        args.epochs, args.seed, args.threads, args.batch_size, args.lr)
    meta = [
        ("cnnserve.preprocess", "color=GRAY resize=EXACT(28x28->32x32, OpenCV INTER_LINEAR on float) "
                                "scale=1/255 mean=%.4f std=%.4f" % (MEAN, STD)),
        ("cnnserve.labels", ",".join(CLASSES)),
        ("cnnserve.training", "%s (torch %s)" % (cmd, torch.__version__)),
        ("cnnserve.test_accuracy_pytorch", "%.4f" % acc),
    ]
    data = export_model(model, args.out, meta)
    # the file must give the same predictions as the module it came from
    check = arch.build(ARCH)
    load_onnx_weights(check, os.path.join(args.out, "model.onnx"))
    if not np.array_equal(predict(check, x_te), logits):
        raise RuntimeError("weights read back from model.onnx give different logits")
    print("test accuracy (PyTorch, 10,000 images): %.4f" % acc)
    print("training time %.1f s (%d epochs), total %.1f s" % (train_time, args.epochs,
                                                             time.time() - t_start))
    print("wrote %s (%s bytes, crc32 %08x) and %s" % (
        os.path.join(args.out, "model.onnx"), format(len(data), ","), zlib.crc32(data),
        os.path.join(os.path.dirname(os.path.abspath(args.out)), "labels.txt")))
    return 0


# --------------------------------------------------------------------------
# evaluation and test images
# --------------------------------------------------------------------------

def eval_only(args):
    torch.set_num_threads(max(1, args.threads))
    te_img, te_lab = load_split("test", args.data_dir)
    model = arch.build(ARCH)
    proto = load_onnx_weights(model, args.eval_only)
    x = preprocess(te_img)
    logits = predict(model, x)
    print("%s: test accuracy (PyTorch, %d images): %.4f" % (args.eval_only, len(te_lab),
                                                           accuracy(logits, te_lab)))
    acc_u8 = accuracy(predict(model, preprocess(te_img, opencv_u8=True)), te_lab)
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


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", help="train and write OUT/model.onnx and OUT/../labels.txt")
    mode.add_argument("--eval-only", metavar="ONNX", help="print the PyTorch test accuracy of ONNX")
    mode.add_argument("--write-test-images", metavar="DIR",
                      help="write the first --count test images as PNG and JPEG with labels.csv")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--count", type=int, default=100, help="with --write-test-images")
    p.add_argument("--model", metavar="ONNX", help="with --write-test-images: also write logits.npy")
    p.add_argument("--numpy-check", action="store_true",
                   help="with --eval-only: also run the ONNX graph with check_onnx's NumPy interpreter")
    p.add_argument("--data-dir", default=DATA_DIR)
    a = p.parse_args(argv)
    if a.epochs < 1 or a.batch_size < 1 or a.count < 1:
        p.error("--epochs, --batch-size and --count must be positive")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.out:
        return train(a)
    if a.eval_only:
        return eval_only(a)
    return write_test_images(a)


if __name__ == "__main__":
    sys.exit(main())
