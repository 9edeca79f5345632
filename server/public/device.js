// Captioning on this device (docs/browser.md): the "Caption on this device" switch, remembered in
// localStorage, loads the browser bundle (/device/captioner.js, the same model/ library the
// server runs), a TF.js backend (WebGL, else WebAssembly) and the model's files once, with a
// progress bar; the browser's HTTP cache keeps them for the next visit. Then app.js captions
// with `device.events`, which yields the events the server's stream sends, so that the page draws
// both alike, and the image never leaves the machine. On an exported static site
// (`captioner export-site`) the switch is on and fixed: there is no server to upload to.

const STORAGE_KEY = 'captioner.onDevice';
const BACKEND_KEY = 'captioner.backend';

const box = document.getElementById('device');

/** The backend to ask for: ?backend=… on the address, else localStorage, else 'auto' (WebGL, then WebAssembly). */
function preferredBackend() {
  return new URLSearchParams(location.search).get('backend') ?? localStorage.getItem(BACKEND_KEY) ?? 'auto';
}

function megabytes(bytes) {
  return (bytes / 1e6).toFixed(1);
}

function createDevice() {
  const toggle = document.getElementById('device-toggle');
  const progress = document.getElementById('device-progress');
  const status = document.getElementById('device-status');
  const only = box.hasAttribute('data-only');
  const url = (name) => new URL(box.dataset[name], document.baseURI);
  let loading = null;

  /** The bundle, backend and model, loaded once (again after a failure). */
  function ready() {
    loading ??= (async () => {
      progress.hidden = false;
      progress.removeAttribute('value');
      status.textContent = 'Loading the model onto this device…';
      const lib = await import(url('bundle').href);
      const backend = await lib.useBackend(preferredBackend(), url('wasm'));
      const started = performance.now();
      const model = await lib.loadDeviceModel(url('model'), (loaded, total) => {
        progress.max = Math.max(total, 1);
        progress.value = loaded;
      });
      progress.hidden = true;
      status.textContent = `Model ${model.name} is on this device (${megabytes(model.bytes)} MB, ${Math.round(performance.now() - started)} ms), on the ${backend} backend.`;
      box.dataset.ready = backend;
      return { lib, model };
    })();
    loading.catch((err) => {
      loading = null;
      progress.hidden = true;
      status.textContent = `Cannot caption on this device: ${err.message}`;
    });
    return loading;
  }

  if (!only) {
    toggle.checked = localStorage.getItem(STORAGE_KEY) === 'on';
    toggle.addEventListener('change', () => {
      localStorage.setItem(STORAGE_KEY, toggle.checked ? 'on' : 'off');
      if (toggle.checked) ready().catch(() => {});
    });
  }
  if (only || toggle.checked) ready().catch(() => {});

  return {
    /** Whether the next image is captioned here rather than uploaded. */
    get enabled() {
      return only || toggle.checked;
    },
    /**
     * Captions `file` on this device with `settings` (strategy, beamWidth, nBest), yielding
     * {event, data} as the server's stream does: start, word or hypothesis, done.
     */
    async *events(file, settings, signal) {
      const { lib, model } = await ready();
      const pixels = await lib.imagePixels(file, model.model.config.imageSize);
      signal.throwIfAborted();
      yield* lib.captionOnDevice(model, pixels, settings, signal);
    },
  };
}

/** Null on a page without the switch (the model page). */
export const device = box ? createDevice() : null;
