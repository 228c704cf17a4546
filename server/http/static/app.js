// cnnserve playground: picks a model (GET /v1/models), shows its layers (GET /v1/models/NAME) and classifies a
// chosen or dropped PNG/JPEG (POST /v1/models/NAME:classify) and draws its occlusion map (POST
// /v1/models/NAME:explain). No dependencies; every failure is shown on the page.
'use strict';

const TOP_K = 5;
const TOKEN_KEY = 'cnnserve.token';
const MODEL_KEY = 'cnnserve.model';
const ACCEPTED_TYPES = ['image/png', 'image/jpeg'];
const MICROS_PER_MILLI = 1000;
const PERCENT = 100;

const $ = (id) => document.getElementById(id);
const integer = new Intl.NumberFormat('en-US');

// The server may send 64-bit integers as JSON strings (protobuf's JSON mapping) and leaves zero fields out.
function num(value) {
  const n = Number(value === undefined || value === null ? 0 : value);
  return Number.isFinite(n) ? n : 0;
}

function percent(p) {
  const v = num(p) * PERCENT;
  return v > 0 && v < 0.01 ? '<0.01%' : v.toFixed(2) + '%';
}

function millis(us) {
  return (num(us) / MICROS_PER_MILLI).toFixed(2) + ' ms';
}

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

const state = {image: null, models: new Map(), classifySeq: 0, describeSeq: 0};

function setStatus(text) {
  $('status').textContent = text;
}

function showError(text) {
  const box = $('error');
  box.textContent = text;
  box.hidden = !text;
}

// Calls the JSON API; resolves with the parsed body, rejects with an Error whose message says what went wrong.
async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const token = $('token').value.trim();
  if (token) headers.set('Authorization', 'Bearer ' + token);
  let response;
  try {
    response = await fetch(path, {...init, headers});
  } catch (e) {
    throw new Error('the server did not answer (' + e.message + ')');
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (e) {
    if (response.ok) throw new Error('the server sent a reply that is not JSON');
  }
  if (!response.ok) {
    const detail = body && typeof body.error === 'string' ? body.error : text.slice(0, 200);
    if (response.status === 401 || response.status === 403) {
      $('auth').open = true;
      throw new Error('HTTP ' + response.status + ': ' + detail + ' (enter a token with the right scope under ' +
                      '"Access token")');
    }
    throw new Error('HTTP ' + response.status + ': ' + detail);
  }
  return body;
}

function modelPath(name) {
  return '/v1/models/' + encodeURIComponent(name);
}

function readyVersions(model) {
  return (model.versions || []).filter((v) => v.state === 'READY');
}

async function loadModels() {
  setStatus('Loading the models…');
  const select = $('model');
  try {
    const body = await api('/v1/models');
    const models = (body && body.models) || [];
    select.replaceChildren();
    state.models.clear();
    for (const m of models) {
      state.models.set(m.name, m);
      const ready = readyVersions(m).length > 0;
      const option = el('option', m.name + ' (' + (m.platform || 'model') + (ready ? '' : ', not ready') + ')');
      option.value = m.name;
      select.append(option);
    }
    if (models.length === 0) {
      select.append(el('option', 'no models'));
      setStatus('The server has no models.');
      return;
    }
    const saved = sessionStorage.getItem(MODEL_KEY);
    if (saved && state.models.has(saved)) select.value = saved;
    select.disabled = false;
    setStatus(models.length + ' models.');
    await modelChanged();
  } catch (e) {
    setStatus('');
    showError('Could not list the models: ' + e.message);
  }
}

function describeSummary(model) {
  const shape = (model.input_shape || []).map(num);
  const versions = (model.versions || []).map((v) => 'v' + v.version + ' ' + v.state +
                                                       (v.reason ? ' (' + v.reason + ')' : ''));
  return model.platform + ', input ' + shape.join('×') + ' (C×H×W), ' + num(model.num_classes) + ' classes; ' +
         (versions.join(', ') || 'no versions');
}

async function modelChanged() {
  const name = $('model').value;
  const model = state.models.get(name);
  if (!model) return;
  sessionStorage.setItem(MODEL_KEY, name);
  $('model-info').textContent = describeSummary(model);
  $('classify').disabled = !state.image;
  $('occlude').disabled = !state.image;
  $('occlusion').hidden = true;
  showError('');
  const tasks = [loadLayers(name)];
  if (state.image) tasks.push(classify());
  await Promise.all(tasks);
}

function shapeText(shape) {
  const dims = (shape || []).map(num);
  if (dims.length === 3) return dims[1] + '×' + dims[2] + '×' + dims[0];
  return dims.join('×');
}

// "3,211,264 (12.8 MB)", "4,704 (18.8 kB)": activation values per image and their fp32 bytes.
function bytesText(bytes) {
  return num(bytes) >= 1e6 ? (num(bytes) / 1e6).toFixed(1) + ' MB' : (num(bytes) / 1e3).toFixed(1) + ' kB';
}

function activationText(values, bytes) {
  return integer.format(num(values)) + ' (' + bytesText(bytes) + ')';
}

function layerRow(layer) {
  const tr = el('tr');
  const rf = num(layer.receptive_field);
  const act = num(layer.activation_values) > 0 ? activationText(layer.activation_values, layer.activation_bytes)
              : layer.op === 'Relu'                ? 'in place'
                                                   : 'view';
  const name = el('th', layer.name);
  if (layer.output_name && layer.output_name !== layer.name) name.title = 'output tensor: ' + layer.output_name;
  tr.append(name, el('td', layer.op), el('td', shapeText(layer.output_shape), 'num'),
            el('td', act, 'num'), el('td', integer.format(num(layer.params)), 'num'),
            el('td', integer.format(num(layer.macs)), 'num'),
            el('td', rf > 0 ? rf + '×' + rf : 'whole input', 'num'));
  tr.firstChild.scope = 'row';
  return tr;
}

function renderLayers(name, body) {
  const table = $('layers');
  const layers = (body && body.layers) || [];
  const platform = body && body.summary ? body.summary.platform : '';
  const labels = (body && body.labels) || [];
  let info = labels.length ? 'Classes: ' + labels.join(', ') + '.' : '';
  if (layers.length === 0) {
    table.hidden = true;
    const why = platform === 'ensemble' ? name + ' is an ensemble: its members have the layers (pick one to see ' +
                                              'them).'
                                        : name + ' has no layers to show.';
    $('layers-info').textContent = why + (info ? ' ' + info : '');
    return;
  }
  const counted = 'Activations per image in fp32 count the input (' + integer.format(num(body.input_values)) +
                  ' values) and each new tensor once: ReLU runs in place, Flatten and Dropout are views.';
  $('layers-info').textContent = counted + (info ? ' ' + info : '');
  $('layers-caption').textContent = 'Layers of ' + name + ', input first';
  table.tBodies[0].replaceChildren(...layers.map(layerRow));
  const total = el('tr');
  total.append(el('th', 'Total: ' + layers.length + ' layers'), el('td', ''), el('td', ''),
               el('td', activationText(body.total_activation_values, body.total_activation_bytes), 'num'),
               el('td', integer.format(num(body.total_params)), 'num'),
               el('td', integer.format(num(body.total_macs)), 'num'), el('td', ''));
  total.firstChild.scope = 'row';
  table.tFoot.replaceChildren(total);
  table.hidden = false;
}

async function loadLayers(name) {
  const seq = ++state.describeSeq;
  $('layers-heading').textContent = 'Layers of ' + name;
  try {
    const body = await api(modelPath(name));
    if (seq === state.describeSeq) renderLayers(name, body);
  } catch (e) {
    if (seq !== state.describeSeq) return;
    $('layers').hidden = true;
    $('layers-info').textContent = '';
    showError('Could not describe ' + name + ': ' + e.message);
  }
}

function classRow(c, best) {
  const li = el('li');
  li.dataset.index = num(c.index);
  const label = el('span', c.label || 'class ' + num(c.index), 'label');
  const bar = el('span', undefined, 'bar');
  bar.setAttribute('aria-hidden', 'true');
  const fill = el('span', undefined, 'fill');
  fill.style.width = Math.max(0, Math.min(PERCENT, num(c.probability) * PERCENT)) + '%';
  if (best) fill.classList.add('best');
  bar.append(fill);
  li.append(label, bar, el('span', percent(c.probability), 'prob'));
  return li;
}

function renderMembers(result, body) {
  const box = $('ensemble');
  const members = result.members || [];
  if (members.length === 0 && !num(body.members_total)) {
    box.hidden = true;
    return;
  }
  const answered = num(body.members_answered);
  const total = num(body.members_total);
  $('agreement').textContent =
      'Agreement: ' + percent(result.agreement) + ' of the answering members vote for the ensemble\'s top-1; ' +
      'margin ' + percent(result.margin) + '; ' + answered + ' of ' + total + ' members answered' +
      (body.partial ? ' (partial result: quorum met without all members)' : '') + '.';
  const rows = members.map((m) => {
    const tr = el('tr');
    const top = (m.classes || [])[0];
    tr.append(el('th', m.model + (m.version ? ' v' + m.version : '')));
    tr.firstChild.scope = 'row';
    if (m.error || !top) {
      const td = el('td', 'error: ' + (m.error || 'no answer'), 'member-error');
      td.colSpan = 2;
      tr.append(td);
    } else {
      tr.append(el('td', top.label || 'class ' + num(top.index)), el('td', percent(top.probability), 'num'));
    }
    return tr;
  });
  $('members').tBodies[0].replaceChildren(...rows);
  box.hidden = false;
}

function renderTimings(timings, roundTripMs) {
  const dl = $('timings');
  dl.replaceChildren();
  const rows = timings ? [['Decode', millis(timings.decode_us)], ['Queue', millis(timings.queue_us)],
                          ['Inference', millis(timings.inference_us)], ['Server total', millis(timings.total_us)]]
                       : [];
  rows.push(['Round trip (this browser)', roundTripMs.toFixed(2) + ' ms']);
  for (const [name, value] of rows) dl.append(el('dt', name), el('dd', value));
}

function renderResult(body, roundTripMs) {
  const result = (body.results || [])[0];
  if (!result || !(result.classes || []).length) throw new Error('the reply holds no classification');
  const classes = result.classes;
  const best = classes[0];
  $('summary').textContent = body.model + ' v' + body.version + ': ' + (best.label || 'class ' + num(best.index)) +
                             ', ' + percent(best.probability) + ' (request ' + body.request_id + ')';
  $('top').replaceChildren(...classes.map((c, i) => classRow(c, i === 0)));
  renderMembers(result, body);
  renderTimings(body.timings, roundTripMs);
}

async function classify() {
  const name = $('model').value;
  if (!state.image || !name) return;
  const seq = ++state.classifySeq;
  const image = state.image;
  showError('');
  setStatus('Classifying ' + image.name + ' with ' + name + '…');
  $('result').setAttribute('aria-busy', 'true');
  const started = performance.now();
  try {
    const body = await api(modelPath(name) + ':classify?top_k=' + TOP_K + '&members=true&timings=true', {
      method: 'POST',
      headers: {'Content-Type': image.type},
      body: image,
    });
    if (seq !== state.classifySeq) return;
    renderResult(body, performance.now() - started);
    setStatus('Classified ' + image.name + ' with ' + name + '.');
  } catch (e) {
    if (seq !== state.classifySeq) return;
    setStatus('');
    $('summary').textContent = 'No result.';
    $('top').replaceChildren();
    $('ensemble').hidden = true;
    showError('Could not classify ' + image.name + ' with ' + name + ': ' + e.message);
  } finally {
    if (seq === state.classifySeq) $('result').setAttribute('aria-busy', 'false');
  }
}

function takeImage(file) {
  if (!file) return;
  if (!ACCEPTED_TYPES.includes(file.type)) {
    showError(file.name + ' is not a PNG or JPEG image (type "' + (file.type || 'unknown') + '").');
    return;
  }
  state.image = file;
  const preview = $('preview');
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.alt = 'the chosen image, ' + file.name;
  preview.hidden = false;
  $('classify').disabled = !$('model').value;
  $('occlude').disabled = !$('model').value;
  $('occlusion').hidden = true;
  classify();
}

// Patch about a fifth of the input, stride half the patch: a map of about 9 x 9 positions.
const OCCLUSION_FRACTION = 5;
const HEAT_ALPHA = 0.6;

// Mean drop per input pixel over the patch positions covering it, as in cnnctl's heat map.
function occlusionPixels(map, h, w) {
  const sum = new Float64Array(h * w);
  const count = new Uint32Array(h * w);
  for (let r = 0; r < map.rows; ++r) {
    for (let c = 0; c < map.cols; ++c) {
      const d = map.drop[r * map.cols + c] || 0;
      for (let y = r * map.stride; y < Math.min(h, r * map.stride + map.patch); ++y) {
        for (let x = c * map.stride; x < Math.min(w, c * map.stride + map.patch); ++x) {
          sum[y * w + x] += d;
          count[y * w + x] += 1;
        }
      }
    }
  }
  return sum.map((v, i) => (count[i] ? v / count[i] : 0));
}

function drawOcclusion(map) {
  const shape = (map.input_shape || []).map(Number);
  const h = shape[1], w = shape[2];
  const canvas = $('occlusion-map');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.drawImage($('preview'), 0, 0, w, h);
  const base = ctx.getImageData(0, 0, w, h);
  const pixels = occlusionPixels(map, h, w);
  const scale = Math.max(...pixels.map(Math.abs)) || 1;
  for (let i = 0; i < pixels.length; ++i) {
    const t = Math.max(-1, Math.min(1, pixels[i] / scale));
    const fade = 1 - Math.abs(t);
    const heat = [t >= 0 ? 255 : 255 * fade, 255 * fade, t <= 0 ? 255 : 255 * fade];
    for (let k = 0; k < 3; ++k) {
      base.data[4 * i + k] = (1 - HEAT_ALPHA) * base.data[4 * i + k] + HEAT_ALPHA * heat[k];
    }
  }
  ctx.putImageData(base, 0, 0);
}

async function occlude() {
  const name = $('model').value;
  const model = state.models.get(name);
  if (!state.image || !model) return;
  const shape = (model.input_shape || []).map(Number);
  const patch = Math.max(1, Math.round(Math.min(shape[1] || 1, shape[2] || 1) / OCCLUSION_FRACTION));
  const stride = Math.max(1, Math.round(patch / 2));
  showError('');
  setStatus('Occluding ' + state.image.name + ' with ' + name + '…');
  try {
    const body = await api(modelPath(name) + ':explain?patch=' + patch + '&stride=' + stride, {
      method: 'POST',
      headers: {'Content-Type': state.image.type},
      body: state.image,
    });
    const map = body.occlusion || {};
    drawOcclusion(map);
    $('occlusion-info').textContent = 'p(' + (map.target_label || 'class ' + num(map.target_class || 0)) + ') = ' +
        percent(map.probability || 0) + '; red where a ' + patch + '×' + patch + ' patch (stride ' + stride +
        ', ' + num(map.masks) + ' masked copies) lowers it.';
    $('occlusion').hidden = false;
    setStatus('Occlusion map of ' + state.image.name + ' with ' + name + '.');
  } catch (e) {
    setStatus('');
    showError('Could not make the occlusion map of ' + state.image.name + ' with ' + name + ': ' + e.message);
  }
}

function setUp() {
  const token = $('token');
  token.value = sessionStorage.getItem(TOKEN_KEY) || '';
  token.addEventListener('change', () => {
    sessionStorage.setItem(TOKEN_KEY, token.value.trim());
    loadModels();
  });
  $('model').addEventListener('change', modelChanged);
  $('file').addEventListener('change', (e) => takeImage(e.target.files[0]));
  $('classify').addEventListener('click', classify);
  $('occlude').addEventListener('click', occlude);
  const drop = $('drop');
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
  }
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    takeImage(e.dataTransfer.files[0]);
  });
  loadModels();
}

document.addEventListener('DOMContentLoaded', setUp);
