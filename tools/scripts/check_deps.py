#!/usr/bin/env python3
"""Checks the #include lines of the source tree against the dependency table of DESIGN.md section 1.

Every .h/.cc under engine/, models/, server/, tools/ and bench/ belongs to one unit of LAYERS (the longest unit
that is its folder or the file itself). A unit may include headers of its own unit and of every unit it reaches
through LAYERS ("itself and anything below it"). Third-party and generated headers are matched against
LIBRARY_RULES: a header that matches a rule may only be included from the units that rule lists. tests/ may
include anything and is not scanned. Finally the unit graph of the real includes must have no cycle.

Prints one line per violation, `file:line: <unit> may not include <header> (<rule>)`, and exits 1 if there is
any, 0 if none, 2 on a usage error or a broken table. Python 3 standard library only.

    tools/scripts/check_deps.py [--root DIR]
"""

import os
import re
import sys

from source_tree import SCANNED_ROOTS, argument_parser, report, root_error, source_files

# ---- The table (edit here) -------------------------------------------------------------------------------------

# Unit -> the units it may include directly, besides itself. Reachability is transitive: engine/graph may include
# engine/common because engine/ops may. A unit is a folder or a single file, relative to the root. "*" = anything.
LAYERS = {
    # The engine: a library that could ship alone (no gRPC, protobuf or OpenCV: see LIBRARY_RULES).
    "engine/common": [],
    "engine/tensor": ["engine/common"],
    "engine/ops": ["engine/tensor"],
    "engine/graph": ["engine/ops"],
    "engine/backend": ["engine/graph"],  # backend.h: the interface both backends implement
    "engine/backend/reference": ["engine/backend"],
    "engine/backend/dnnl": ["engine/backend"],
    "engine/runtime": ["engine/backend/reference", "engine/backend/dnnl"],
    # Models: the ONNX importer and the Triton-layout repository.
    "models/onnx": ["engine/runtime"],
    "models/repository": ["models/onnx"],
    # The server, bottom up.
    "server/batching": ["engine/common"],
    "server/preprocess": ["engine/tensor"],
    "server/auth": ["engine/common"],
    "server/servables": ["server/batching", "server/preprocess", "models/repository"],
    "server/ensemble": ["server/servables"],
    "server/service": ["server/ensemble", "server/auth"],
    "server/metrics": ["server/service"],
    "server/kserve": ["server/service"],  # KServe v2 translation over protobuf messages, no gRPC
    "server/native": ["server/service"],  # the native API's translation over protobuf messages, no gRPC
    "server/transport": ["server/kserve", "server/native", "server/metrics"],  # the gRPC front ends
    "server/http": ["server/kserve", "server/native", "server/metrics"],  # the HTTP front end
    "server/main.cc": ["*"],
    # Clients and benchmarks (the generated protocol headers they use are governed by LIBRARY_RULES).
    "tools": ["engine/common"],
    # bench: cnnbench calibrate preprocesses images with a model's own config (server/servables).
    "bench": ["engine/runtime", "models/repository", "server/servables", "tools"],
}

# (rule, header pattern, units where a matching header is allowed). A unit matches an entry that is the unit
# itself or a folder above it ("server" matches "server/main.cc"). A header must pass every rule it matches.
_FRONT_ENDS = ["server/transport", "server/main.cc", "tools", "bench"]
_NATIVE = ["server/native"] + _FRONT_ENDS
_KSERVE = ["server/kserve", "server/transport", "server/http", "tools", "bench"]
_NOT_ENGINE = ["models", "server", "tools", "bench"]
LIBRARY_RULES = [
    ("oneDNN only in engine/backend/dnnl", r"^(dnnl\.hpp|dnnl\.h|dnnl_debug\.h|dnnl_types\.h|oneapi/dnnl/)",
     ["engine/backend/dnnl"]),
    ("OpenCV only in server/preprocess", r"^opencv2/", ["server/preprocess"]),
    ("gRPC only in the gRPC front ends, tools and bench", r"^(grpcpp|grpc\+\+|grpc)/", _FRONT_ENDS),
    ("native wire protocol only in its front end", r"^cnnserve/v1/classifier\.(grpc\.)?pb\.h$", _NATIVE),
    ("cpp-httplib only in the HTTP front end and bench", r"^httplib\.h$", ["server/http", "bench"]),
    ("KServe wire protocol only in its front ends", r"^inference/", _KSERVE),
    ("model config outside the engine", r"^cnnserve/v1/model_config\.pb\.h$", _NOT_ENGINE),
    ("ONNX only in models/onnx", r"^onnx/", ["models/onnx"]),
    ("Prometheus only in server/metrics", r"^prometheus/", ["server/metrics"]),
    ("no protobuf in the engine", r"^google/protobuf/|\.pb\.h$", _NOT_ENGINE),
]

# ---- The check -------------------------------------------------------------------------------------------------

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


class TableError(Exception):
    pass


def unit_of(path, units):
    """The unit of a root-relative path: the longest unit that is the path or a folder above it."""
    best = None
    for unit in units:
        if (path == unit or path.startswith(unit + "/")) and (best is None or len(unit) > len(best)):
            best = unit
    return best


def reachable(layers):
    """unit -> the set of units it may include (itself included); raises TableError on a cycle or bad name."""
    for unit, below in layers.items():
        for other in below:
            if other != "*" and other not in layers:
                raise TableError(f"LAYERS: {unit} names unknown unit {other}")
    result = {}

    def visit(unit, stack):
        if unit in result:
            return result[unit]
        if unit in stack:
            raise TableError("LAYERS has a cycle: " + " -> ".join(stack[stack.index(unit):] + [unit]))
        stack.append(unit)
        reach = {unit}
        for other in layers[unit]:
            reach |= set(layers) if other == "*" else visit(other, stack)
        stack.pop()
        result[unit] = reach
        return reach

    for unit in layers:
        visit(unit, [])
    return result


def allowed_in(unit, places):
    return any(unit == p or unit.startswith(p + "/") for p in places)


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            match = INCLUDE_RE.match(line)
            if match:
                yield number, match.group(1), match.group(2)


def find_cycles(edges):
    """Strongly connected components of more than one unit (Tarjan), each as a sorted list."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return components


def cycle_path(component, edges):
    """One cycle through the first unit of a strongly connected component, as a list of units."""
    start = component[0]
    members = set(component)
    parents = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return list(reversed(path)) + [start]
            if w not in parents:
                parents[w] = v
                queue.append(w)
    return component


def check(root):
    """Returns the violation lines for the tree at root."""
    reach = reachable(LAYERS)
    units = list(LAYERS)
    rules = [(name, re.compile(pattern), places) for name, pattern, places in LIBRARY_RULES]
    violations = []
    edges = {}  # unit -> {included unit: (file, line)}
    for path in source_files(root):
        unit = unit_of(path, units)
        if unit is None:
            violations.append(f"{path}:1: {path} is in no unit of the dependency table (add its folder to LAYERS "
                              f"in tools/scripts/check_deps.py)")
            continue
        for number, _, header in includes(os.path.join(root, path)):
            where = f"{path}:{number}"
            for name, pattern, places in rules:
                if pattern.search(header) and not allowed_in(unit, places):
                    violations.append(f"{where}: {unit} may not include {header} ({name})")
            if header.split("/")[0] not in SCANNED_ROOTS:
                continue
            target = unit_of(header, units)
            if target is None:
                violations.append(f"{where}: {unit} may not include {header} (in no unit of the dependency table)")
                continue
            if target != unit:
                edges.setdefault(unit, {}).setdefault(target, where)
            if target not in reach[unit]:
                violations.append(f"{where}: {unit} may not include {header} "
                                  f"(upward: {target} is not below {unit})")
    graph = {u: set(targets) for u, targets in edges.items()}
    for component in find_cycles(graph):
        path = cycle_path(component, graph)
        steps = [f"{a} -> {b} ({edges[a][b]})" for a, b in zip(path, path[1:])]
        first = edges[path[0]][path[1]]
        violations.append(f"{first}: {path[0]} may not include {path[1]} (folder cycle: {'; '.join(steps)})")
    return violations


def main(argv):
    args = argument_parser(__doc__).parse_args(argv)
    if root_error(args.root):
        print(f"check_deps: {root_error(args.root)}", file=sys.stderr)
        return 2
    try:
        violations = check(args.root)
    except TableError as error:
        print(f"check_deps: {error}", file=sys.stderr)
        return 2
    return report("check_deps", violations, "the dependency table (DESIGN.md section 1)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
