// Browser test of the playground page (server/http/static/): a real cnnserve on loopback, Debian's Chromium
// headless through playwright-core, a real Fashion-MNIST test image.
//
//   node playground_test.mjs --cnnserve BIN --repository DIR --source DIR --screenshot PNG [--chromium BIN]
//
// Checks, each against the server's own JSON API and the repository's labels.txt:
//   1. lenet5_fashion: the top-5 bars appear with the true class first and the probability the API gives;
//   2. its layer table: one row per layer, the conv rows' output volume and parameters, the total parameters;
//   3. the timings;
//   4. fashion_ensemble: each member's vote (top-1 and probability, or its error) and the agreement;
//   5. a file that is not an image: the server's 400 message shown in the page's alert;
//   6. the controls are reachable with the keyboard;
//   7. a server that needs a token (--auth-token-file, lenet5_fashion only): 401 shown, token field, sessionStorage.
// Then saves a full-page screenshot of the lenet5_fashion view. Exit 0 when all pass, 1 otherwise. Every wait is
// bounded; the server is killed on every exit path.
import {spawn, spawnSync} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {setTimeout as delay} from 'node:timers/promises';
import {parseArgs} from 'node:util';
import {chromium} from 'playwright-core';

const SERVER_START_TIMEOUT_MS = 120000;
const POLL_INTERVAL_MS = 200;
const PAGE_TIMEOUT_MS = 30000;
const PERCENT = 100;
const IMAGE_INDEX = 0;  // fashion_00000.png: the first Fashion-MNIST test image
const SINGLE_MODEL = 'lenet5_fashion';
const ENSEMBLE = 'fashion_ensemble';
const VIEWPORT = {width: 1280, height: 900};

const {values: args} = parseArgs({
  options: {
    cnnserve: {type: 'string'},
    repository: {type: 'string'},
    source: {type: 'string'},
    screenshot: {type: 'string'},
    chromium: {type: 'string', default: '/usr/bin/chromium'},
  },
});
for (const name of ['cnnserve', 'repository', 'source', 'screenshot']) {
  if (!args[name]) {
    console.error('usage: node playground_test.mjs --cnnserve BIN --repository DIR --source DIR --screenshot PNG');
    process.exit(2);
  }
}

let failures = 0;
function check(condition, what, detail = '') {
  console.log((condition ? 'ok   ' : 'FAIL ') + what + (condition || !detail ? '' : ': ' + detail));
  if (!condition) failures++;
  return condition;
}

// The page's formatting of a probability (app.js percent()).
function percent(p) {
  const v = Number(p) * PERCENT;
  return v > 0 && v < 0.01 ? '<0.01%' : v.toFixed(2) + '%';
}
const integer = new Intl.NumberFormat('en-US');

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Writes the first test images with the project's own writer; returns {file, label} of IMAGE_INDEX.
function writeTestImage(dir) {
  const script = path.join(args.source, 'models/zoo/train_fashion_mnist.py');
  const r = spawnSync('/usr/bin/python3', [script, '--write-test-images', dir, '--count', String(IMAGE_INDEX + 1)],
                      {encoding: 'utf8', timeout: 120000});
  if (r.status !== 0) throw new Error('writing the test image failed: ' + r.stderr + r.stdout);
  const stem = 'fashion_' + String(IMAGE_INDEX).padStart(5, '0') + '.png';
  const row = fs.readFileSync(path.join(dir, 'labels.csv'), 'utf8').split('\n').find((l) => l.startsWith(stem + ','));
  if (!row) throw new Error('labels.csv has no row for ' + stem);
  return {file: path.join(dir, stem), label: Number(row.split(',')[1])};
}

// A cnnserve child on 127.0.0.1:httpPort (gRPC on a free port, no metrics); its output goes to child.logFile.
function startServer(httpPort, dir, repository, extraArgs = []) {
  const logFile = path.join(dir, 'cnnserve-' + httpPort + '.log');
  const log = fs.openSync(logFile, 'w');
  const child = spawn(args.cnnserve, ['--model-repository', repository, '--address', '127.0.0.1:0',
                                      '--metrics-address', 'none', '--http-address', '127.0.0.1:' + httpPort,
                                      ...extraArgs],
                      {stdio: ['ignore', log, log]});
  child.logFile = logFile;
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return child;
}

async function stopServer(child) {
  child.kill('SIGKILL');
  await child.exited;
}

function serverLog(child) {
  try {
    return fs.readFileSync(child.logFile, 'utf8').slice(-4000);
  } catch {
    return '(no log)';
  }
}

async function getJson(base, route, init) {
  const response = await fetch(base + route, init);
  const body = await response.json();
  if (!response.ok) throw new Error(route + ': HTTP ' + response.status + ' ' + JSON.stringify(body));
  return body;
}

// Waits until the HTTP front end answers GET /v1/models with every one of `names` READY.
async function waitForModels(base, child, names, headers = {}) {
  const deadline = Date.now() + SERVER_START_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    const exited = await Promise.race([child.exited, delay(POLL_INTERVAL_MS).then(() => undefined)]);
    if (exited !== undefined) {
      throw new Error('cnnserve exited (' + exited + ') before serving; its log:\n' + serverLog(child));
    }
    try {
      const {models} = await getJson(base, '/v1/models', {headers});
      const ready = (name) => models.some((m) => m.name === name && m.versions.some((v) => v.state === 'READY'));
      if (names.every(ready)) return;
      last = 'models not ready yet';
    } catch (e) {
      last = e.message;
    }
  }
  throw new Error('no READY ' + names.join(', ') + ' over HTTP within ' + SERVER_START_TIMEOUT_MS + ' ms (' + last +
                  '); log:\n' + serverLog(child));
}

function classifyApi(base, model, image) {
  return getJson(base, '/v1/models/' + model + ':classify?top_k=5&members=true&timings=true',
                 {method: 'POST', headers: {'Content-Type': 'image/png'}, body: image});
}

async function waitForResult(page, model) {
  await page.waitForFunction((m) => document.getElementById('summary').textContent.startsWith(m + ' v') &&
                                        document.getElementById('result').getAttribute('aria-busy') === 'false',
                             model, {timeout: PAGE_TIMEOUT_MS});
}

// The controls are reachable with Tab alone, in reading order.
async function checkKeyboard(page) {
  const order = [];
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.tagName));
  }
  const at = (id) => order.indexOf(id);
  check(at('model') >= 0 && at('model') < at('file') && at('file') < at('SUMMARY'),
        'Tab reaches the model, the file chooser and the token field in order', order.join(' '));
}

async function checkSingleModel(page, base, image, labels) {
  await page.selectOption('#model', SINGLE_MODEL);
  await page.setInputFiles('#file', image.file);
  await waitForResult(page, SINGLE_MODEL);
  const api = await classifyApi(base, SINGLE_MODEL, fs.readFileSync(image.file));
  const apiTop = api.results[0].classes[0];
  const rows = await page.$$eval('#top li', (lis) => lis.map((li) => ({
    index: Number(li.dataset.index), label: li.querySelector('.label').textContent,
    prob: li.querySelector('.prob').textContent})));
  check(rows.length === 5, 'top-5 shows 5 bars', JSON.stringify(rows));
  check(rows[0]?.label === labels[image.label], 'the first bar is the true class ' + labels[image.label],
        JSON.stringify(rows[0]));
  check(rows[0]?.prob === percent(apiTop.probability) && Number(apiTop.probability) > 0.5,
        'its probability is the API\'s ' + percent(apiTop.probability), rows[0]?.prob);
  const summary = await page.textContent('#summary');
  check(summary.includes(labels[image.label]) && summary.includes(percent(apiTop.probability)),
        'the summary names the class and its probability', summary);
  const widths = await page.$$eval('#top .fill', (fills) => fills.map((f) => parseFloat(f.style.width)));
  check(widths.every((w, i) => i === 0 || w <= widths[i - 1]) && widths[0] > 50, 'bars are best first', String(widths));
  const timings = await page.$$eval('#timings dt', (dts) => dts.map((d) => d.textContent));
  check(['Decode', 'Queue', 'Inference', 'Server total'].every((t) => timings.includes(t)), 'the timings appear',
        timings.join(', '));
  // The occlusion map (POST :explain) is drawn over the image at the model's input size.
  await page.click('#occlude');
  await page.waitForSelector('#occlusion:not([hidden])', {timeout: PAGE_TIMEOUT_MS});
  const map = await page.$eval('#occlusion-map', (canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let reddest = 0;
    for (let i = 0; i < data.length; i += 4) reddest = Math.max(reddest, data[i] - data[i + 2]);
    return {width: canvas.width, height: canvas.height, reddest};
  });
  check(map.width === 32 && map.height === 32 && map.reddest > 50,
        'the occlusion map is drawn at the 32x32 input with red where the patch lowers the class', JSON.stringify(map));
  const info = await page.textContent('#occlusion-info');
  check(info.includes(labels[image.label]), 'the occlusion map names the class', info);
}

// The page's byte label: decimal MB from 1e6 bytes on, kB below.
function bytesText(bytes) {
  return bytes >= 1e6 ? (bytes / 1e6).toFixed(1) + ' MB' : (bytes / 1e3).toFixed(1) + ' kB';
}

async function checkLayers(page, base) {
  const model = await getJson(base, '/v1/models/' + SINGLE_MODEL);
  await page.waitForSelector('#layers:not([hidden]) tbody tr', {timeout: PAGE_TIMEOUT_MS});
  const rows = await page.$$eval('#layers tbody tr', (trs) => trs.map((tr) =>
      [...tr.children].map((c) => c.textContent)));
  check(rows.length === model.layers.length && model.layers.length > 0,
        'the layer table has one row per layer (' + model.layers.length + ')', String(rows.length));
  const convs = model.layers.filter((l) => l.op === 'Conv');
  check(convs.length === 2, SINGLE_MODEL + ' has two Conv layers in the API', String(convs.length));
  for (const conv of convs) {
    const row = rows.find((r) => r[0] === conv.name);
    const [c, h, w] = conv.output_shape.map(Number);
    check(Number(conv.activation_values) === c * h * w && Number(conv.activation_bytes) === 4 * c * h * w,
          conv.name + ' activations in the API = its output volume, fp32', JSON.stringify(conv));
    const activations = integer.format(c * h * w) + ' (' + bytesText(4 * c * h * w) + ')';
    const expected = [conv.name, 'Conv', h + '×' + w + '×' + c, activations,
                      integer.format(Number(conv.params)), integer.format(Number(conv.macs ?? 0)),
                      Number(conv.receptive_field) + '×' + Number(conv.receptive_field)];
    check(JSON.stringify(row) === JSON.stringify(expected), 'row ' + conv.name + ' = ' + expected.join(' | '),
          JSON.stringify(row));
  }
  const total = await page.$$eval('#layers tfoot tr > *', (cells) => cells.map((c) => c.textContent));
  check(total[4] === integer.format(Number(model.total_params)) && Number(model.total_params) > 0,
        'total parameters ' + integer.format(Number(model.total_params)), JSON.stringify(total));
  const totalActivations = integer.format(Number(model.total_activation_values)) + ' (' +
                           bytesText(Number(model.total_activation_bytes)) + ')';
  check(total[3] === totalActivations && Number(model.total_activation_values) > Number(model.input_values),
        'total activations ' + totalActivations, JSON.stringify(total));
}

async function checkEnsemble(page, base, image, labels) {
  await page.selectOption('#model', ENSEMBLE);
  await waitForResult(page, ENSEMBLE);
  const api = await classifyApi(base, ENSEMBLE, fs.readFileSync(image.file));
  const result = api.results[0];
  check(await page.isVisible('#ensemble'), 'the ensemble view is shown');
  const rows = await page.$$eval('#members tbody tr', (trs) => trs.map((tr) =>
      [...tr.children].map((c) => c.textContent)));
  check(rows.length === Number(api.members_total) && rows.length === result.members.length && rows.length > 1,
        'one vote row per member (' + api.members_total + ')', String(rows.length));
  result.members.forEach((m, i) => {
    const row = rows[i] || [];
    const top = (m.classes || [])[0];
    const expected = m.error || !top ? 'error: ' + (m.error || 'no answer')
                                     : top.label + ' ' + percent(top.probability);
    check(row[0]?.startsWith(m.model) && row.slice(1).join(' ') === expected, 'member ' + m.model + ': ' + expected,
          JSON.stringify(row));
  });
  const votes = result.members.filter((m) => !m.error && m.classes.length);
  check(votes.filter((m) => m.classes[0].label === labels[image.label]).length >= votes.length / 2,
        'most members vote for the true class ' + labels[image.label]);
  const agreement = await page.textContent('#agreement');
  check(agreement.includes('Agreement: ' + percent(result.agreement)) &&
            agreement.includes(api.members_answered + ' of ' + api.members_total + ' members answered'),
        'the agreement ' + percent(result.agreement) + ' and ' + api.members_answered + '/' + api.members_total +
            ' members appear', agreement);
  const info = await page.textContent('#layers-info');
  check(info.includes('is an ensemble') && await page.isHidden('#layers'), 'the ensemble has no layer table', info);
}

async function checkBadImage(page, dir) {
  const bad = path.join(dir, 'not_an_image.png');
  fs.writeFileSync(bad, 'this is text, not a PNG');
  await page.selectOption('#model', SINGLE_MODEL);
  await page.setInputFiles('#file', bad);
  await page.waitForSelector('#error:not([hidden])', {timeout: PAGE_TIMEOUT_MS});
  const text = await page.textContent('#error');
  check(/HTTP 400: \S/.test(text) && (await page.getAttribute('#error', 'role')) === 'alert',
        'a bad image shows the server\'s 400 message in an alert', text);
}

// A server with --auth-token-file: the page shows the 401 and opens the token field; with the token typed in, the
// models load and an image is classified; after a reload the token comes back from sessionStorage.
async function checkToken(browser, dir, image, labels) {
  const repository = path.join(dir, 'token-repository');
  fs.cpSync(path.join(args.repository, SINGLE_MODEL), path.join(repository, SINGLE_MODEL), {recursive: true});
  const token = crypto.randomBytes(16).toString('hex');
  fs.writeFileSync(path.join(dir, 'tokens'), token + ' infer,metadata\n');
  const port = await freePort();
  const base = 'http://127.0.0.1:' + port;
  const server = startServer(port, dir, repository, ['--auth-token-file', path.join(dir, 'tokens')]);
  const context = await browser.newContext({viewport: VIEWPORT});
  try {
    await waitForModels(base, server, [SINGLE_MODEL], {Authorization: 'Bearer ' + token});
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    await page.goto(base + '/');
    await page.waitForSelector('#error:not([hidden])');
    const text = await page.textContent('#error');
    check(text.includes('HTTP 401') && await page.getAttribute('#auth', 'open') !== null,
          'without a token: the 401 in the alert and the token field opened', text);
    await page.fill('#token', token);
    await page.press('#token', 'Tab');
    await page.waitForSelector('#model:not([disabled])');
    await page.setInputFiles('#file', image.file);
    await waitForResult(page, SINGLE_MODEL);
    check((await page.textContent('#summary')).includes(labels[image.label]) && await page.isHidden('#error'),
          'with the token: the models load and the image is classified', await page.textContent('#summary'));
    await page.reload();
    await page.waitForSelector('#model:not([disabled])');
    check(await page.inputValue('#token') === token, 'after a reload the token comes from sessionStorage');
  } finally {
    await context.close();
    await stopServer(server);
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cnnserve-playground-'));
  const image = writeTestImage(path.join(dir, 'images'));
  const labels = fs.readFileSync(path.join(args.repository, SINGLE_MODEL, 'labels.txt'), 'utf8').trim().split('\n');
  const httpPort = await freePort();
  const base = 'http://127.0.0.1:' + httpPort;
  const server = startServer(httpPort, dir, args.repository);
  let browser;
  try {
    await waitForModels(base, server, [SINGLE_MODEL, ENSEMBLE]);
    browser = await chromium.launch({executablePath: args.chromium, headless: true,
                                     args: ['--no-sandbox', '--disable-gpu']});
    const page = await browser.newPage({viewport: VIEWPORT});
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    const response = await page.goto(base + '/');
    check(response.ok() && (response.headers()['content-type'] || '').startsWith('text/html'), 'GET / serves the page',
          response.status() + ' ' + response.headers()['content-type']);
    await page.waitForSelector('#model:not([disabled])');
    await checkKeyboard(page);
    await checkSingleModel(page, base, image, labels);
    await checkLayers(page, base);
    fs.mkdirSync(path.dirname(path.resolve(args.screenshot)), {recursive: true});
    await page.screenshot({path: args.screenshot, fullPage: true});
    console.log('screenshot: ' + path.resolve(args.screenshot));
    await checkEnsemble(page, base, image, labels);
    await checkBadImage(page, dir);
    // The one console error allowed: Chromium's own line for the bad image's 400 response.
    check(pageErrors.every((e) => e.includes('status of 400')), 'no script errors in the page', pageErrors.join('; '));
    await stopServer(server);
    await checkToken(browser, dir, image, labels);
  } finally {
    if (browser) await browser.close();
    await stopServer(server);
    fs.rmSync(dir, {recursive: true, force: true});
  }
  console.log(failures === 0 ? 'PASS' : failures + ' check(s) failed');
  return failures === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => {
  console.error('FAIL ' + (e.stack || e.message));
  process.exit(1);
});
