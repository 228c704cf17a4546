'use strict';
// Shared helpers for the Node peer runners: CLI parsing, seeded input,
// statistics, peak RSS and a minimal .npy reader/writer.
// torch_run.py mirrors these functions one to one; keep them in step.

const fs = require('fs');

// ---------------------------------------------------------------- CLI

function parseBatchList(s) {
  const out = String(s).split(',').filter((x) => x.trim() !== '').map((x) => {
    const v = Number(x);
    if (!Number.isInteger(v) || v < 1) throw new Error(`bad batch size '${x}'`);
    return v;
  });
  if (out.length === 0) throw new Error('empty --batch list');
  return out;
}

// Parses argv against a spec { name: {type: 'int'|'float'|'str'|'bool'|'batch', def} }.
// Accepts "--name value" and "--name=value"; one positional argument is allowed.
function parseArgs(argv, spec, usage) {
  const opts = {};
  for (const [k, v] of Object.entries(spec)) opts[k] = v.def;
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(usage);
      process.exit(0);
    }
    if (!a.startsWith('--')) { positional.push(a); continue; }
    let val;
    const eq = a.indexOf('=');
    if (eq >= 0) { val = a.slice(eq + 1); a = a.slice(0, eq); }
    const key = a.slice(2).replace(/-/g, '_');
    const s = spec[key];
    if (!s) throw new Error(`unknown option ${a}`);
    if (s.type === 'bool') { opts[key] = val === undefined ? true : !/^(0|false|no)$/i.test(val); continue; }
    if (val === undefined) {
      if (i + 1 >= argv.length) throw new Error(`option ${a} needs a value`);
      val = argv[++i];
    }
    switch (s.type) {
      case 'int': {
        const n = Number(val);
        if (!Number.isInteger(n)) throw new Error(`option ${a}: '${val}' is not an integer`);
        opts[key] = n; break;
      }
      case 'float': {
        const n = Number(val);
        if (!Number.isFinite(n)) throw new Error(`option ${a}: '${val}' is not a number`);
        opts[key] = n; break;
      }
      case 'batch': opts[key] = parseBatchList(val); break;
      default: opts[key] = val;
    }
  }
  return { opts, positional };
}

// ------------------------------------------------------- seeded input
// Counter-based generator, identical in torch_run.py (numpy uint32 arithmetic):
//   h = lowbias32((i + seed * 0x9E3779B9) mod 2^32);  x = (h >>> 8) / 2^23 - 1
// giving float32 values in [-1, 1), exactly representable, element i of the
// flattened NCHW tensor. Same seed + shape => bit-identical input everywhere.

function lowbias32(x) {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function seededInput(count, seed) {
  const out = new Float32Array(count);
  const base = Math.imul(seed >>> 0, 0x9E3779B9) >>> 0;
  for (let i = 0; i < count; i++) {
    const h = lowbias32((base + i) >>> 0);
    out[i] = (h >>> 8) / 8388608 - 1;
  }
  return out;
}

// ------------------------------------------------------------- stats

// Linear-interpolation percentile (numpy's default "linear" method).
function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * (q / 100);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function median(values) {
  return percentile([...values].sort((a, b) => a - b), 50);
}

// Throughput: the measured window [t0, t1] is cut into `repeats` equal slices;
// each batch's images are spread uniformly over its own [start, end] interval,
// so a slice is credited with the fraction of every batch that overlaps it.
// images_per_s is the median over slices of (images credited / slice seconds).
// Gaps between batches (framework overhead outside the timed call) count as
// time in which no images were done.  Times in seconds.
function sliceThroughput(intervals, batch, t0, t1, repeats) {
  const width = (t1 - t0) / repeats;
  const credit = new Array(repeats).fill(0);
  for (const [s, e] of intervals) {
    const len = e - s;
    const first = Math.max(0, Math.floor((s - t0) / width));
    const last = Math.min(repeats - 1, Math.floor((e - t0) / width));
    for (let k = first; k <= last; k++) {
      const a = Math.max(s, t0 + k * width);
      const b = Math.min(e, t0 + (k + 1) * width);
      if (b > a) credit[k] += len > 0 ? (batch * (b - a)) / len : 0;
    }
  }
  return median(credit.map((c) => c / width));
}

// Peak resident set size of this process in MiB: VmHWM from /proc/self/status,
// falling back to getrusage's ru_maxrss (KiB on Linux).
function peakRssMb() {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch (_) { /* not Linux */ }
  return process.resourceUsage().maxRSS / 1024;
}

function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------- npy
// Minimal NumPy .npy (format 1.0/2.0/3.0) support: little-endian float32/float64
// read (float64 is converted), C order only.  Writer emits float32 v1.0.

function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') {
    throw new Error(`${path}: not a .npy file`);
  }
  const major = buf[6];
  let hlen; let off;
  if (major === 1) { hlen = buf.readUInt16LE(8); off = 10; } else if (major === 2 || major === 3) {
    hlen = buf.readUInt32LE(8); off = 12;
  } else throw new Error(`${path}: unsupported .npy version ${major}`);
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', off, off + hlen);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeM) throw new Error(`${path}: cannot parse header ${header}`);
  if (fortran[1] === 'True') throw new Error(`${path}: Fortran-order arrays are not supported`);
  const shape = shapeM[1].split(',').map((x) => x.trim()).filter((x) => x !== '').map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataOff = off + hlen;
  const bytes = buf.subarray(dataOff);
  let data;
  if (descr[1] === '<f4' || descr[1] === '=f4' || (descr[1] === '|f4')) {
    if (bytes.length < count * 4) throw new Error(`${path}: truncated data`);
    data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(0, count * 4));
  } else if (descr[1] === '<f8' || descr[1] === '=f8') {
    if (bytes.length < count * 8) throw new Error(`${path}: truncated data`);
    const ab = new ArrayBuffer(count * 8);
    new Uint8Array(ab).set(bytes.subarray(0, count * 8));
    data = Float32Array.from(new Float64Array(ab));
  } else {
    throw new Error(`${path}: dtype ${descr[1]} not supported (need little-endian float32)`);
  }
  return { shape, data };
}

function writeNpy(path, shape, data) {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre[0] = 0x93; pre.write('NUMPY', 1, 'latin1'); pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'),
    Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength)]));
}

// -------------------------------------------------------------- verify
// Accept iff max|got - want| <= rtol * max|want| + atol and, for every row
// (first dimension), the top-k indices (k = min(5, row length); descending
// value, ties broken by lower index) are identical and in the same order.

function topk(row, k) {
  const idx = Array.from(row, (_, i) => i);
  idx.sort((a, b) => (row[b] - row[a]) || (a - b));
  return idx.slice(0, k);
}

function compareOutputs(got, gotShape, want, wantShape, rtol, atol) {
  const res = { ok: true, reasons: [], maxDiff: NaN, maxRef: NaN, bound: NaN, top5Mismatch: [] };
  if (gotShape.length !== wantShape.length || gotShape.some((d, i) => d !== wantShape[i])) {
    res.ok = false;
    res.reasons.push(`shape mismatch: got [${gotShape}] expected [${wantShape}]`);
    return res;
  }
  let maxDiff = 0; let maxRef = 0; let nonFinite = false;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!Number.isFinite(got[i])) nonFinite = true;
    if (d > maxDiff || Number.isNaN(d)) maxDiff = Number.isNaN(d) ? Infinity : d;
    const r = Math.abs(want[i]);
    if (r > maxRef) maxRef = r;
  }
  res.maxDiff = maxDiff; res.maxRef = maxRef; res.bound = rtol * maxRef + atol;
  if (nonFinite) { res.ok = false; res.reasons.push('output has NaN/Inf'); }
  if (!(maxDiff <= res.bound)) {
    res.ok = false;
    res.reasons.push(`max|diff| ${maxDiff.toExponential(3)} > bound ${res.bound.toExponential(3)}`);
  }
  const rows = wantShape.length > 0 ? wantShape[0] : 1;
  const rowLen = rows > 0 ? want.length / rows : 0;
  const k = Math.min(5, rowLen);
  for (let r = 0; r < rows; r++) {
    const a = topk(got.subarray(r * rowLen, (r + 1) * rowLen), k);
    const b = topk(want.subarray(r * rowLen, (r + 1) * rowLen), k);
    if (a.some((v, i) => v !== b[i])) res.top5Mismatch.push({ row: r, got: a, expected: b });
  }
  if (res.top5Mismatch.length) {
    res.ok = false;
    res.reasons.push(`top-${k} differs in ${res.top5Mismatch.length} of ${rows} rows`);
  }
  return res;
}

// ------------------------------------------------------------- output

const TABLE_COLS = [
  ['batch', 5, 0], ['threads', 7, 0], ['images/s', 10, 1], ['p50 ms', 9, 2], ['p90 ms', 9, 2],
  ['p99 ms', 9, 2], ['load ms', 9, 1], ['peak MB', 8, 1], ['runs', 6, 0], ['cpu/wall', 8, 2],
];

function tableHeader() {
  return TABLE_COLS.map(([n, w]) => n.padStart(w)).join(' ');
}

function tableRow(vals) {
  return TABLE_COLS.map(([, w, d], i) => (typeof vals[i] === 'number' ? vals[i].toFixed(d) : String(vals[i])).padStart(w)).join(' ');
}

module.exports = {
  parseArgs, parseBatchList, lowbias32, seededInput, percentile, median, sliceThroughput,
  peakRssMb, round, readNpy, writeNpy, topk, compareOutputs, tableHeader, tableRow,
};
