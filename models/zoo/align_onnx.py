#!/usr/bin/python3
"""Rewrite an ONNX model so that the raw data of every large initializer starts
at a 64-byte boundary of the file. The model does not change: the padding is
spaces in doc_string fields (of the initializer before, or of the last node).

    /usr/bin/python3 models/zoo/align_onnx.py MODEL.onnx [OUT.onnx]

cnnserve reads an aligned initializer in place from the memory-mapped file when
the model runs in bf16 or int8 (OnnxImportOptions::map_weights), so the fp32
weights never need to be resident all at once; an unaligned one (3 in 4 of
them in a file written by torch.onnx) is copied instead. Without OUT the file
is replaced (a new file renamed over it, never rewritten in place).
"""

import os
import sys
import tempfile

import onnx

ALIGNMENT = 64
MIN_BYTES = 64 << 10   # the importer's threshold (kStripMinBytes in models/onnx/onnx_file.cc)

MODEL_GRAPH = 7        # ModelProto.graph
GRAPH_INITIALIZER = 5  # GraphProto.initializer
TENSOR_RAW_DATA = 9    # TensorProto.raw_data


def varint(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(data, begin, end):
    """(number, payload begin, payload end) of each length-delimited field in [begin, end)."""
    pos = begin
    while pos < end:
        key, pos = varint(data, pos)
        wire = key & 7
        if wire == 0:
            _, pos = varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = varint(data, pos)
            yield key >> 3, pos, pos + size
            pos += size
        else:
            raise ValueError("unsupported wire type %d at byte %d" % (wire, pos))


def raw_data_offsets(data):
    """File offset of each initializer's raw_data (None when it has none), in order."""
    offsets = []
    for number, begin, end in fields(data, 0, len(data)):
        if number != MODEL_GRAPH:
            continue
        for gnumber, gbegin, gend in fields(data, begin, end):
            if gnumber != GRAPH_INITIALIZER:
                continue
            offset = None
            for tnumber, tbegin, _ in fields(data, gbegin, gend):
                if tnumber == TENSOR_RAW_DATA:
                    offset = tbegin
            offsets.append(offset)
    return offsets


def varint_size(value):
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def field_size(message):
    """Bytes of `message` as a length-delimited field (its tag taken as one byte)."""
    size = message.ByteSize()
    return 1 + varint_size(size) + size


def align(model):
    """Serialized bytes of `model` with every large raw_data 64-byte aligned.

    Each round serializes once, pads every misaligned initializer by the shift it needs (counting the shifts
    made before it) and checks again: a round moves what comes before (a longer length prefix of the graph).
    """
    graph = model.graph
    large = [i for i, t in enumerate(graph.initializer) if len(t.raw_data) >= MIN_BYTES]
    for _ in range(8):
        data = model.SerializeToString()
        offsets = raw_data_offsets(data)
        if all(offsets[i] % ALIGNMENT == 0 for i in large):
            return data
        shift = 0
        for index in large:
            holder = graph.initializer[index - 1] if index > 0 else (graph.node[-1] if graph.node else None)
            offset = offsets[index] + shift
            if offset % ALIGNMENT == 0 or holder is None:
                continue
            before = field_size(holder)
            holder.doc_string += " " * (ALIGNMENT - offset % ALIGNMENT)
            shift += field_size(holder) - before
    raise RuntimeError("the initializers did not align in 8 rounds")


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    source, target = argv[1], argv[-1]
    model = onnx.load(source)
    data = align(model)
    offsets = [o for o, t in zip(raw_data_offsets(data), model.graph.initializer) if len(t.raw_data) >= MIN_BYTES]
    folder = os.path.dirname(os.path.abspath(target))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".align-", suffix=".onnx")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(temporary, target)
    print("%s: %d large initializers, %d aligned to %d bytes" %
          (target, len(offsets), sum(o % ALIGNMENT == 0 for o in offsets), ALIGNMENT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
