// Where the model looked, on the page: for a model with attention, pointing at a word of the
// caption or focusing it with the keyboard lays that word's attention map over the image, and
// "Show all maps" draws one small map per word (Xu et al. 2015, "Show, Attend and Tell", fig. 3).
// app.js feeds the maps in as they arrive (the stream's start, word, hypothesis and done events);
// this module finds the caption's words itself, so it follows whatever app.js draws.
//
// A map is the word's weights over the encoder's grid, [rows, cols] row-major, upsampled
// bilinearly to the image. The model saw the image resized to cover its square and
// centre-cropped (model/data/image.ts), so the map covers the centre square of the preview and
// the rest, which the model never saw, is hatched. The overlay colours where the model looked,
// so that it reads on dark and light images alike: a colour map from magenta to yellow whose
// opacity grows with the square of the weight's share of the word's largest (clear at 0, MAX_ALPHA
// at the largest; the square keeps a diffuse map from washing over the whole image), and an
// outline, white inside and black outside, around where the weight is at least half the largest
// (OUTLINE_AT).

/** Opacity of the overlay's colour at the word's largest weight. */
export const MAX_ALPHA = 0.7;

/** The outline goes around the area where the weight is at least this share of the largest. */
export const OUTLINE_AT = 0.5;

/** Opacity of the hatching over the part of the preview the model never saw. */
export const HATCH_ALPHA = 0.55;

/**
 * The eval report's pictures (eval/attention-maps.ts) still darken where the model did not look,
 * by at most this: they are read beside the image, on a light page.
 */
export const MAX_SHADE = 0.75;

/**
 * The weight at (u, v) in [0, 1]² of a grid [rows, cols] of row-major `weights`, bilinearly
 * interpolated between cell centres and held constant beyond the outer centres (as an image
 * resize with half-pixel centres does).
 */
export function sampleGrid(weights, rows, cols, u, v) {
  const gx = Math.min(Math.max(u * cols - 0.5, 0), cols - 1);
  const gy = Math.min(Math.max(v * rows - 0.5, 0), rows - 1);
  const x0 = Math.floor(gx);
  const y0 = Math.floor(gy);
  const x1 = Math.min(x0 + 1, cols - 1);
  const y1 = Math.min(y0 + 1, rows - 1);
  const fx = gx - x0;
  const fy = gy - y0;
  const at = (y, x) => weights[y * cols + x];
  const top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx;
  const bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx;
  return top * (1 - fy) + bottom * fy;
}

/** The square the model saw of a width × height picture: its centre, side min(width, height). */
export function centreSquare(width, height) {
  const side = Math.min(width, height);
  return { x: (width - side) / 2, y: (height - side) / 2, side };
}

/**
 * The overlay's colour at a weight `t` = w / max w in [0, 1]: [r, g, b] from magenta (t = 0)
 * through orange to yellow (t = 1), and its opacity MAX_ALPHA · t². Yellow keeps a channel high
 * and one low, so it differs from black and from white alike.
 */
export function overlayColour(t) {
  const c = Math.min(Math.max(t, 0), 1);
  return [255, Math.round(40 + 215 * c), Math.round(200 * (1 - c)), MAX_ALPHA * c * c];
}

/**
 * The overlay of one word's map over a width × height area whose centre square the map covers,
 * as RGBA bytes (straight alpha, row-major): overlayColour of each pixel's share of the largest
 * weight; a one-pixel outline, white inside and black outside, where that share crosses
 * OUTLINE_AT; and, outside the square, diagonal hatching in black and white at HATCH_ALPHA.
 */
export function overlayPixels(width, height, weights, grid) {
  const [rows, cols] = grid;
  const { x, y, side } = centreSquare(width, height);
  const max = Math.max(...weights) || 1;
  const share = new Float32Array(width * height).fill(-1); // -1: outside the square
  for (let j = 0; j < height; j++) {
    for (let i = 0; i < width; i++) {
      const u = (i + 0.5 - x) / side;
      const v = (j + 0.5 - y) / side;
      if (u >= 0 && u < 1 && v >= 0 && v < 1) share[j * width + i] = sampleGrid(weights, rows, cols, u, v) / max;
    }
  }
  const above = (i, j) => i >= 0 && j >= 0 && i < width && j < height && share[j * width + i] >= OUTLINE_AT;
  const px = new Uint8ClampedArray(width * height * 4);
  for (let j = 0; j < height; j++) {
    for (let i = 0; i < width; i++) {
      const k = j * width + i;
      const t = share[k];
      let rgba;
      if (t < 0) {
        const light = Math.floor((i + j) / 4) % 2 === 0;
        rgba = light ? [255, 255, 255, HATCH_ALPHA] : [0, 0, 0, HATCH_ALPHA];
      } else {
        const inside = t >= OUTLINE_AT;
        const edge = [above(i - 1, j), above(i + 1, j), above(i, j - 1), above(i, j + 1)].some((a) => a !== inside);
        if (edge) rgba = inside ? [255, 255, 255, 1] : [0, 0, 0, 1];
        else rgba = overlayColour(t);
      }
      px.set([rgba[0], rgba[1], rgba[2], Math.round(255 * rgba[3])], k * 4);
    }
  }
  return px;
}

/** Draws `overlayPixels` on `ctx` (a canvas of width × height). */
export function drawOverlay(ctx, width, height, weights, grid) {
  const image = ctx.createImageData(width, height);
  image.data.set(overlayPixels(width, height, weights, grid));
  ctx.putImageData(image, 0, 0);
}

/** Where in a 3 × 3 division of the image a grid's cell `index` lies, in words ("the top left"). */
export function placeOf(index, grid) {
  const [rows, cols] = grid;
  const third = (k, n) => Math.min(2, Math.floor(((k + 0.5) / n) * 3));
  const row = ['top', 'middle', 'bottom'][third(Math.floor(index / cols), rows)];
  const col = ['left', 'centre', 'right'][third(index % cols, cols)];
  if (row === 'middle' && col === 'centre') return 'the centre';
  if (row === 'middle') return `the middle ${col}`;
  if (col === 'centre') return `the ${row} centre`;
  return `the ${row} ${col}`;
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * The attention view of the page. `elements`: caption (the words' container), preview (the
 * image), overlay (a canvas over it), hint (shown when there are maps), allButton, gallery (the
 * small multiples' container) and label (says in words where the model looked).
 */
export class AttentionView {
  constructor(elements) {
    Object.assign(this, elements);
    this.grid = null;
    this.rows = [];
    this.wanted = null; // the index of the word pointed at or focused, shown once it can be
    this.caption.addEventListener('pointerover', (e) => this.pointAt(e.target));
    this.caption.addEventListener('focusin', (e) => this.pointAt(e.target));
    this.caption.addEventListener('pointerout', (e) => this.leave(e.relatedTarget));
    this.caption.addEventListener('focusout', (e) => this.leave(e.relatedTarget));
    this.caption.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.show(null);
    });
    this.allButton.addEventListener('click', () => {
      const open = this.allButton.getAttribute('aria-pressed') !== 'true';
      this.allButton.setAttribute('aria-pressed', String(open));
      this.allButton.textContent = open ? 'Hide the maps' : 'Show all maps';
      this.drawGallery();
    });
    // Words come and go as app.js draws the caption: each is made focusable once it has a map.
    new MutationObserver(() => this.markWords()).observe(this.caption, { childList: true });
    // A word focused before the preview had loaded gets its map when it has.
    this.preview.addEventListener('load', () => {
      if (this.wanted !== null) this.show(this.wanted);
    });
  }

  /** A new caption: `grid` [rows, cols] for a model with attention, else null (no maps). */
  reset(grid) {
    this.grid = grid ?? null;
    this.rows = [];
    this.show(null);
    this.hint.hidden = !this.grid;
    this.drawGallery();
  }

  /** Word `index`'s weights (a streamed word). */
  setRow(index, weights) {
    if (!this.grid || !weights) return;
    this.rows[index] = weights;
    this.changed();
  }

  /** Every word's weights (a beam hypothesis, or the finished caption). */
  setRows(weights, grid) {
    if (grid) this.grid = grid;
    if (!this.grid || !weights) return;
    this.hint.hidden = false;
    this.rows = weights.slice();
    this.changed();
  }

  changed() {
    this.markWords();
    if (this.wanted !== null) this.show(this.wanted < this.words().length ? this.wanted : null);
    this.drawGallery();
  }

  words() {
    return [...this.caption.querySelectorAll('.word')];
  }

  markWords() {
    this.words().forEach((span, i) => {
      const has = Boolean(this.rows[i]);
      span.dataset.index = String(i);
      span.classList.toggle('has-map', has);
      if (has) {
        span.tabIndex = 0;
        span.setAttribute('aria-describedby', this.label.id);
      } else {
        span.removeAttribute('tabindex');
        span.removeAttribute('aria-describedby');
      }
    });
  }

  pointAt(target) {
    const span = target instanceof Element ? target.closest('.word.has-map') : null;
    if (span) this.show(Number(span.dataset.index));
  }

  leave(next) {
    const span = next instanceof Element ? next.closest('.word.has-map') : null;
    if (!span) this.show(null);
  }

  /** Shows word `index`'s map over the image (null: hides it). */
  show(index) {
    this.wanted = index;
    const weights = index === null ? null : this.rows[index];
    const span = index === null ? null : this.words()[index];
    for (const w of this.words()) w.classList.toggle('looking', w === span && Boolean(weights));
    if (!weights || !this.grid || this.preview.hidden || !this.preview.complete) {
      this.overlay.hidden = true;
      this.label.textContent = this.grid ? 'Point at a word, or tab to it, to see where the model looked.' : '';
      return;
    }
    const img = this.preview;
    const width = img.clientWidth;
    const height = img.clientHeight;
    Object.assign(this.overlay.style, {
      left: `${img.offsetLeft + img.clientLeft}px`,
      top: `${img.offsetTop + img.clientTop}px`,
      width: `${width}px`,
      height: `${height}px`,
    });
    this.overlay.width = width;
    this.overlay.height = height;
    drawOverlay(this.overlay.getContext('2d'), width, height, weights, this.grid);
    this.overlay.dataset.index = String(index);
    this.overlay.hidden = false;
    const word = span ? span.textContent : '';
    this.label.textContent = `“${word}”: the model looked most at ${placeOf(argmax(weights), this.grid)} of the image.`;
  }

  /** The small multiples: the square the model saw under each word's overlay, the word below. */
  drawGallery() {
    const open = this.allButton.getAttribute('aria-pressed') === 'true';
    this.gallery.hidden = !open || !this.grid || this.rows.length === 0;
    if (this.gallery.hidden) {
      this.gallery.replaceChildren();
      return;
    }
    const img = this.preview;
    const words = this.words();
    const size = 112;
    const figures = [];
    this.rows.forEach((weights, i) => {
      if (!weights) return;
      const canvas = document.createElement('canvas');
      canvas.width = size;
      canvas.height = size;
      const ctx = canvas.getContext('2d');
      const layer = document.createElement('canvas');
      layer.width = size;
      layer.height = size;
      drawOverlay(layer.getContext('2d'), size, size, weights, this.grid);
      if (img.complete && img.naturalWidth) {
        const { x, y, side } = centreSquare(img.naturalWidth, img.naturalHeight);
        ctx.drawImage(img, x, y, side, side, 0, 0, size, size);
      }
      ctx.drawImage(layer, 0, 0);
      const word = words[i]?.textContent ?? '';
      canvas.setAttribute('role', 'img');
      canvas.setAttribute(
        'aria-label',
        `where the model looked for “${word}”: most at ${placeOf(argmax(weights), this.grid)}`,
      );
      const figure = document.createElement('figure');
      const caption = document.createElement('figcaption');
      caption.textContent = word;
      figure.append(canvas, caption);
      figures.push(figure);
    });
    this.gallery.replaceChildren(...figures);
  }
}
