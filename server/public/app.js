// The page's script (served as a file: the Content-Security-Policy allows no inline script).
// Choose, drop or paste an image; it is previewed, uploaded to /api/captions/stream, and the
// caption is drawn word by word from the Server-Sent Events as the model writes it. Every
// string from the server goes into the page as text (textContent), never as HTML.
// Without JavaScript the form posts to / and the server renders the finished caption.
// An ES module (layout.hbs loads it with type="module"; deferred like any module script).

import { AttentionView } from './attention.js';
import { device } from './device.js';
import { formatPercent } from './percent.js';
import { sentenceParts } from './sentence.js';

const form = document.getElementById('caption-form');
const input = document.getElementById('image-input');
const dropZone = document.getElementById('drop-zone');
const preview = document.getElementById('preview');
const statusLine = document.getElementById('status');
const captionLine = document.getElementById('caption');
const alternatives = document.getElementById('alternatives');
const nbestList = document.getElementById('nbest');
const answered = document.getElementById('answered');
const unfamiliar = document.getElementById('unfamiliar');
const strategy = document.getElementById('strategy');
const beamWidth = document.getElementById('beam-width');
const announcer = document.getElementById('announce');

// Where the model looked for each word (server/public/attention.js), on the page that has the caption.
const attention = document.getElementById('attention-overlay')
  ? new AttentionView({
      caption: captionLine,
      preview,
      overlay: document.getElementById('attention-overlay'),
      hint: document.getElementById('attention'),
      allButton: document.getElementById('attention-all'),
      gallery: document.getElementById('attention-maps'),
      label: document.getElementById('attention-label'),
    })
  : null;

let running = null; // the AbortController of the request in flight
let previewUrl = null;

/** Resolves after the browser has had a chance to paint (so each word shows on its own). */
function nextFrame() {
  return new Promise((resolve) => {
    const done = () => resolve(undefined);
    requestAnimationFrame(done);
    setTimeout(done, 100); // rAF does not run in a hidden tab
  });
}

function shade(prob) {
  return `c${Math.max(0, Math.min(10, Math.round(prob * 10)))}`;
}

/** Shades `span` by its word's probability (pending while unknown); leaves other classes alone. */
function setShade(span, prob) {
  span.classList.remove('pending', ...Array.from({ length: 11 }, (_, k) => `c${k}`));
  span.classList.add(prob === undefined ? 'pending' : shade(prob));
  if (prob !== undefined) span.title = `p = ${prob.toFixed(3)}`;
  else span.removeAttribute('title');
}

function wordSpan(text, prob) {
  const span = document.createElement('span');
  span.className = 'word';
  span.textContent = text;
  setShade(span, prob);
  return span;
}

/**
 * Draws the caption as a sentence (model/text/sentence.js, as the server renders it without
 * JavaScript): a span per word, shaded by its probability when known; the final period once
 * `complete`. The nodes already drawn that still read the same are kept (only their shade is
 * updated) and the rest appended, so that a word focused with the keyboard keeps its focus as
 * the next words stream in.
 */
function showWords(words, probs, complete = false) {
  const wanted = [];
  for (const part of sentenceParts(words, complete)) {
    if (part.space) wanted.push({ text: ' ', word: null });
    wanted.push({ text: part.text, word: part.word });
  }
  const drawn = [...captionLine.childNodes];
  const same = (node, w) =>
    w.word === null
      ? node.nodeType === Node.TEXT_NODE && node.nodeValue === w.text
      : node instanceof HTMLElement && node.classList.contains('word') && node.textContent === w.text;
  let kept = 0;
  while (kept < wanted.length && kept < drawn.length && same(drawn[kept], wanted[kept])) {
    if (wanted[kept].word !== null) setShade(drawn[kept], probs?.[wanted[kept].word]);
    kept++;
  }
  for (const node of drawn.slice(kept)) node.remove();
  captionLine.append(...wanted.slice(kept).map((w) => (w.word === null ? w.text : wordSpan(w.text, probs?.[w.word]))));
}

/**
 * An image the model finds unfamiliar (r.familiarity.familiar false): the notice next to the
 * caption (its text rendered by the server with what the model knows) and the caption shaded
 * as unreliable. A model without a calibration sends no familiarity: nothing is said.
 */
function showFamiliarity(familiarity) {
  const foreign = familiarity?.familiar === false;
  unfamiliar.hidden = !foreign;
  captionLine.classList.toggle('unreliable', foreign);
}

function showResult(r) {
  showWords(r.words, r.wordProbs, true);
  attention?.setRows(r.attention?.weights, r.attention?.grid);
  showFamiliarity(r.familiarity);
  nbestList.replaceChildren();
  for (const h of r.nbest) {
    const li = document.createElement('li');
    const cap = document.createElement('span');
    cap.className = 'alt-caption';
    cap.textContent = h.sentence;
    const prob = document.createElement('span');
    prob.className = 'alt-prob';
    prob.textContent = formatPercent(h.prob);
    const logp = document.createElement('span');
    logp.className = 'alt-logp';
    logp.textContent = `log p ${h.logProb.toFixed(2)}`;
    li.append(cap, ' ', prob, ' ', logp);
    nbestList.append(li);
  }
  alternatives.hidden = false;
  statusLine.textContent = r.device
    ? `Done on this device in ${r.timing.decodeMs} ms.`
    : `Done on the server in ${r.timing.decodeMs} ms${r.timing.queueMs > 5 ? ` (after ${r.timing.queueMs} ms in the queue)` : ''}.`;
  statusLine.classList.remove('error');
  captionLine.dataset.state = 'done';
  captionLine.dataset.caption = r.sentence;
  captionLine.removeAttribute('aria-busy');
  announce(`Caption: ${r.sentence}`);
  setAnswered(r.model, r.backend, r.options.strategy, r.device ? r.timing.decodeMs : undefined);
}

/** Says `text` to screen readers (the polite live region): the finished caption, or what went wrong. */
function announce(text) {
  announcer.textContent = text;
}

/** Who answered: the server's model and backend, or this device's (`deviceMs`: how long it took here). */
function setAnswered(model, backend, how, deviceMs) {
  answered.replaceChildren(
    deviceMs === undefined ? 'Answered by model ' : 'Answered by this device: model ',
    Object.assign(document.createElement('strong'), { textContent: model }),
    ' on the ',
    Object.assign(document.createElement('strong'), { textContent: backend }),
    ` backend (${how})${deviceMs === undefined ? '' : ` in ${deviceMs} ms`}.`,
  );
}

function showError(message) {
  statusLine.textContent = message;
  statusLine.classList.add('error');
  captionLine.dataset.state = 'error';
  captionLine.removeAttribute('aria-busy');
  announce(message);
}

/** Splits an SSE byte stream into {event, data} records (https://html.spec.whatwg.org/#event-stream-interpretation). */
async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) yield { event, data: JSON.parse(data.join('\n')) };
    }
  }
}

async function caption(file) {
  running?.abort();
  const controller = new AbortController();
  running = controller;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  preview.src = previewUrl;
  preview.hidden = false;
  captionLine.replaceChildren();
  attention?.reset(null);
  captionLine.dataset.state = 'running';
  delete captionLine.dataset.caption;
  showFamiliarity(undefined);
  captionLine.setAttribute('aria-busy', 'true');
  announce('');
  const words = [];
  const probs = [];
  alternatives.hidden = true;
  answered.replaceChildren();
  statusLine.classList.remove('error');
  const onDevice = device?.enabled ?? false;
  statusLine.textContent = onDevice ? 'Captioning on this device…' : 'Uploading…';

  const settings = { strategy: strategy.value };
  if (strategy.value === 'beam') {
    settings.beamWidth = Number(beamWidth.value);
    settings.nBest = Math.min(3, settings.beamWidth); // as the server's default: the page lists three alternatives
  }
  try {
    let events;
    if (onDevice) {
      events = device.events(file, settings, controller.signal);
    } else {
      const body = new FormData();
      body.append('image', file);
      body.append('strategy', settings.strategy);
      if (settings.beamWidth !== undefined) body.append('beamWidth', String(settings.beamWidth));
      const res = await fetch('/api/captions/stream', { method: 'POST', body, signal: controller.signal });
      if (!res.ok || !res.body) {
        const json = await res.json().catch(() => null);
        showError(json?.error?.message ?? `the server answered ${res.status}`);
        return;
      }
      events = sseEvents(res.body);
    }
    for await (const { event, data } of events) {
      if (controller !== running) return;
      if (event === 'start') {
        statusLine.textContent = 'Writing…';
        setAnswered(data.model, data.backend, data.options.strategy);
        attention?.reset(data.attention?.grid);
      } else if (event === 'word') {
        words[data.index] = data.word;
        probs[data.index] = data.prob;
        showWords(words, probs);
        attention?.setRow(data.index, data.attention);
        await nextFrame();
      } else if (event === 'hypothesis') {
        showWords(data.words);
        attention?.setRows(data.attention);
        await nextFrame();
      } else if (event === 'done') {
        showResult(data);
      } else if (event === 'error') {
        showError(data.message);
      }
    }
  } catch (err) {
    if (controller === running && err.name !== 'AbortError') showError(`Failed: ${err.message}`);
  }
}

function useFile(file) {
  if (!file) return;
  caption(file);
}

/** Wires the upload form: choose, drop or paste an image. */
function wireForm() {
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.files[0]) useFile(input.files[0]);
    else showError('Choose an image first.');
  });
  input.addEventListener('change', () => useFile(input.files[0]));
  for (const type of ['dragenter', 'dragover']) {
    dropZone.addEventListener(type, (e) => {
      e.preventDefault();
      dropZone.classList.add('dragging');
    });
  }
  for (const type of ['dragleave', 'drop'])
    dropZone.addEventListener(type, () => dropZone.classList.remove('dragging'));
  dropZone.addEventListener('drop', (e) => {
    e.preventDefault();
    const file = e.dataTransfer?.files[0];
    if (file) {
      input.files = e.dataTransfer.files;
      useFile(file);
    }
  });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items ?? [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    const file = item?.getAsFile();
    if (file) {
      e.preventDefault();
      useFile(file);
    }
  });
}

// layout.hbs loads this script on every page; only the upload page has the form.
if (form) wireForm();
