"""Canonical CNN architectures of the cnnserve model zoo.

Every model is a plain ``torch.nn.Module``; ``build(name)`` returns a fresh,
randomly initialised (PyTorch default init) instance.  ``export.py`` replaces
the weights with seeded He initialisation or a user supplied state_dict and
exports the module to ONNX.

Hand-written models (lenet5, alexnet, zfnet, zfnet512) name their submodules
after the textbook layer names (conv1, relu1, pool1, norm1, ..., fc6, relu6,
drop6, ..., fc8), so the ONNX nodes torch produces (``/conv1/Conv``) map one to
one onto readable names.  The torchvision models (alexnet_tv, vgg*) are the
unmodified torchvision definitions, so real torchvision ImageNet state_dicts
load into them without any key renaming.

Local response normalisation is implemented as an autograd Function with an
ONNX ``symbolic`` so that it exports as the single ONNX ``LRN`` operator
instead of the ~12 primitive ops PyTorch 1.13 emits for
``nn.LocalResponseNorm``.
"""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------
# Local response normalisation with a one-op ONNX export
# --------------------------------------------------------------------------

class _LRNFunction(torch.autograd.Function):
    """Cross-channel LRN.

    forward computes exactly ``F.local_response_norm(x, size, alpha, beta, k)``:
        y[c] = x[c] / (k + alpha/size * sum_{c' in window(c)} x[c']^2) ** beta
    symbolic emits the ONNX ``LRN`` operator, whose definition is identical
    for odd ``size`` (window = c-(size-1)/2 .. c+(size-1)/2 in both).
    """

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        ctx.save_for_backward(x)
        ctx.lrn_args = (size, alpha, beta, k)
        return F.local_response_norm(x, size, alpha=alpha, beta=beta, k=k)

    @staticmethod
    def backward(ctx, grad_out):
        # Not needed for export/inference; provided so the module is usable for
        # fine-tuning.  Differentiate the reference implementation.
        (x,) = ctx.saved_tensors
        size, alpha, beta, k = ctx.lrn_args
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            y = F.local_response_norm(xd, size, alpha=alpha, beta=beta, k=k)
            (gx,) = torch.autograd.grad(y, xd, grad_out)
        return gx, None, None, None, None

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=int(size), alpha_f=float(alpha),
                    beta_f=float(beta), bias_f=float(k))


class LRN(nn.Module):
    """Drop-in replacement for ``nn.LocalResponseNorm`` that exports as ONNX LRN."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 2.0):
        super().__init__()
        if size < 1 or size % 2 != 1:
            # PyTorch pads an even window asymmetrically the other way round
            # from ONNX, so only odd sizes export faithfully.
            raise ValueError("LRN size must be a positive odd number, got %r" % size)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return "size=%d, alpha=%g, beta=%g, k=%g" % (self.size, self.alpha,
                                                     self.beta, self.k)


# Hyper-parameters used by AlexNet and ZFNet (Krizhevsky et al. 2012, sec 3.3).
LRN_ARGS = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)


# --------------------------------------------------------------------------
# Hand-written models
# --------------------------------------------------------------------------

class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, 1x32x32 input.

    conv1 (C1)  6@5x5    -> 6x28x28,  relu1, pool1 2/2 -> 6x14x14
    conv2 (C3) 16@5x5    -> 16x10x10, relu2, pool2 2/2 -> 16x5x5
    flatten -> 400, fc1 120, relu3, fc2 84, relu4, fc3 10
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu3(self.fc1(x))
        x = self.relu4(self.fc2(x))
        return self.fc3(x)


class _ClassicNet(nn.Module):
    """Five conv layers + three FC layers, the AlexNet/ZFNet family.

    ``spec`` lists the conv layers as (out_channels, kernel, stride, pad,
    groups, pool) where ``pool`` is None or (kernel, stride, pad) and whether
    an LRN follows the pool is given by ``lrn_after``.
    """

    def __init__(self, in_channels, convs, lrn_after, fc_widths, num_classes,
                 dropout=0.5):
        super().__init__()
        self._order: List[str] = []
        c = in_channels
        for i, (out_c, k, s, p, g, pool) in enumerate(convs, start=1):
            self._add("conv%d" % i, nn.Conv2d(c, out_c, kernel_size=k, stride=s,
                                              padding=p, groups=g))
            self._add("relu%d" % i, nn.ReLU())
            if pool is not None:
                pk, ps, pp = pool
                self._add("pool%d" % i, nn.MaxPool2d(kernel_size=pk, stride=ps,
                                                     padding=pp))
            if i in lrn_after:
                self._add("norm%d" % i, LRN(**LRN_ARGS))
            c = out_c
        self._add("flatten", nn.Flatten(1))
        # Feature map after the conv stack is 6x6 for every model here.
        n_in = c * 6 * 6
        first_fc = len(convs) + 1
        for j, width in enumerate(fc_widths):
            idx = first_fc + j
            self._add("fc%d" % idx, nn.Linear(n_in, width))
            self._add("relu%d" % idx, nn.ReLU())
            self._add("drop%d" % idx, nn.Dropout(p=dropout))
            n_in = width
        self._add("fc%d" % (first_fc + len(fc_widths)), nn.Linear(n_in, num_classes))

    def _add(self, name, module):
        setattr(self, name, module)
        self._order.append(name)

    def forward(self, x):
        for name in self._order:
            x = getattr(self, name)(x)
        return x


class AlexNet2012(_ClassicNet):
    """AlexNet as in Krizhevsky, Sutskever & Hinton 2012 (the two-GPU model
    expressed with grouped convolutions), 3x227x227 input.

    conv1 96@11x11/4        -> 96x55x55,  relu1, pool1 3/2 -> 27x27, norm1
    conv2 256@5x5 p2 g2     -> 256x27x27, relu2, pool2 3/2 -> 13x13, norm2
    conv3 384@3x3 p1        -> 384x13x13, relu3
    conv4 384@3x3 p1 g2     -> 384x13x13, relu4
    conv5 256@3x3 p1 g2     -> 256x13x13, relu5, pool5 3/2 -> 6x6
    flatten 9216, fc6 4096 relu6 drop6, fc7 4096 relu7 drop7, fc8 1000
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__(
            in_channels=3,
            convs=[
                (96, 11, 4, 0, 1, (3, 2, 0)),
                (256, 5, 1, 2, 2, (3, 2, 0)),
                (384, 3, 1, 1, 1, None),
                (384, 3, 1, 1, 2, None),
                (256, 3, 1, 1, 2, (3, 2, 0)),
            ],
            lrn_after=(1, 2),
            fc_widths=(4096, 4096),
            num_classes=num_classes)


class ZFNet(_ClassicNet):
    """ZFNet (Zeiler & Fergus 2013), 3x224x224 input.

    conv1 96@7x7/2 p1        -> 96x110x110, relu1, pool1 3/2 p1 -> 55x55, norm1
    conv2 256@5x5/2          -> 256x26x26,  relu2, pool2 3/2 p1 -> 13x13, norm2
    conv3 c3@3x3 p1          -> 13x13, relu3
    conv4 c4@3x3 p1          -> 13x13, relu4
    conv5 c5@3x3 p1          -> 13x13, relu5, pool5 3/2 -> 6x6
    flatten, fc6 4096 relu6 drop6, fc7 4096 relu7 drop7, fc8 1000

    (c3, c4, c5) = (384, 384, 256) for ``zfnet`` and (512, 1024, 512) for
    ``zfnet512``, the wider variant of the paper's Table 2 ("layers 3,4,5:
    512,1024,512 maps").
    """

    def __init__(self, num_classes: int = 1000, widths=(384, 384, 256)):
        c3, c4, c5 = widths
        super().__init__(
            in_channels=3,
            convs=[
                (96, 7, 2, 1, 1, (3, 2, 1)),
                (256, 5, 2, 0, 1, (3, 2, 1)),
                (c3, 3, 1, 1, 1, None),
                (c4, 3, 1, 1, 1, None),
                (c5, 3, 1, 1, 1, (3, 2, 0)),
            ],
            lrn_after=(1, 2),
            fc_widths=(4096, 4096),
            num_classes=num_classes)


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelInfo:
    name: str
    factory: Callable[[], nn.Module]
    input_shape: Tuple[int, int, int]      # C, H, W
    num_classes: int
    labels: str                             # "digits" or "imagenet"
    torchvision: bool                       # keep torch's node names as exported
    description: str


def _tv(fn_name):
    def make():
        import torchvision
        return getattr(torchvision.models, fn_name)(weights=None)
    return make


MODELS: Dict[str, ModelInfo] = OrderedDict()


def _register(info: ModelInfo):
    MODELS[info.name] = info


_register(ModelInfo("lenet5", LeNet5, (1, 32, 32), 10, "digits", False,
                    "LeNet-5 (ReLU, max pool), 1x32x32 -> 10 digits"))
_register(ModelInfo("alexnet", AlexNet2012, (3, 227, 227), 1000, "imagenet", False,
                    "AlexNet 2012 (grouped convs, LRN), 3x227x227"))
_register(ModelInfo("zfnet", ZFNet, (3, 224, 224), 1000, "imagenet", False,
                    "ZFNet 2013 (conv3-5: 384/384/256, LRN), 3x224x224"))
_register(ModelInfo("zfnet512", lambda: ZFNet(widths=(512, 1024, 512)),
                    (3, 224, 224), 1000, "imagenet", False,
                    "ZFNet 2013 wide variant (conv3-5: 512/1024/512), 3x224x224"))
_register(ModelInfo("alexnet_tv", _tv("alexnet"), (3, 224, 224), 1000, "imagenet",
                    True, "torchvision AlexNet (one-GPU variant, no LRN), 3x224x224"))
for _depth in (11, 13, 16, 19):
    _register(ModelInfo("vgg%d" % _depth, _tv("vgg%d" % _depth), (3, 224, 224), 1000,
                        "imagenet", True,
                        "torchvision VGG-%d (no batch norm), 3x224x224" % _depth))

NAMES: List[str] = list(MODELS)


def build(name: str) -> nn.Module:
    """Return a new instance of the named architecture (PyTorch default init)."""
    try:
        info = MODELS[name]
    except KeyError:
        raise ValueError("unknown model %r; known: %s" % (name, ", ".join(NAMES)))
    return info.factory()


def info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise ValueError("unknown model %r; known: %s" % (name, ", ".join(NAMES)))
    return MODELS[name]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_shapes(name: str, batch: int = 1):
    """Run a forward pass with forward hooks and return [(module, shape)] for
    every leaf module, in execution order."""
    model = build(name).eval()
    c, h, w = MODELS[name].input_shape
    rows = []
    hooks = []
    for mod_name, mod in model.named_modules():
        if len(list(mod.children())) == 0:
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, n=mod_name: rows.append((n, tuple(o.shape)))))
    with torch.no_grad():
        model(torch.zeros(batch, c, h, w))
    for hk in hooks:
        hk.remove()
    return rows


if __name__ == "__main__":
    # Quick self-description: parameter counts and layer output shapes.
    import sys
    torch.set_num_threads(1)
    for n in (sys.argv[1:] or NAMES):
        m = build(n)
        print("%-10s params %12s   %s" % (n, format(count_params(m), ","),
                                        MODELS[n].description))
        if MODELS[n].torchvision:
            continue
        for mod_name, shape in layer_shapes(n):
            p = sum(q.numel() for q in m.get_submodule(mod_name).parameters())
            print("    %-8s %-22s %s" % (mod_name, "x".join(map(str, shape[1:])),
                                        format(p, ",") if p else ""))
