/**
 * Drawing a shapes scene: an SVG composed from the drawing, rasterised by sharp (librsvg), then
 * seeded pixel noise added in JavaScript so that the same (seed, index) gives the same bytes.
 */
import sharp from 'sharp';
import { Rng } from '../../model/util/rng.ts';
import type { Drawing } from './grammar.ts';

function polygon(cx: number, cy: number, radii: readonly number[], rotationDeg: number, fill: string): string {
  const n = radii.length;
  const points = radii.map((r, k) => {
    const angle = ((rotationDeg - 90) * Math.PI) / 180 + (2 * Math.PI * k) / n; // first vertex straight up
    return `${(cx + r * Math.cos(angle)).toFixed(2)},${(cy + r * Math.sin(angle)).toFixed(2)}`;
  });
  return `<polygon points="${points.join(' ')}" fill="${fill}"/>`;
}

/** The SVG of a drawing at `size` × `size` pixels. Shapes of equal radius have similar areas. */
export function drawingSvg(d: Drawing, size: number): string {
  const { from, to, angle } = d.background;
  const rad = (angle * Math.PI) / 180;
  const [x1, y1, x2, y2] = [
    0.5 - Math.cos(rad) / 2,
    0.5 - Math.sin(rad) / 2,
    0.5 + Math.cos(rad) / 2,
    0.5 + Math.sin(rad) / 2,
  ].map((v) => v.toFixed(3));
  const body = d.scene.objects.map((o, i) => {
    const { radius, rotation, fill } = d.styles[i]!;
    const cx = o.x! * size;
    const cy = o.y! * size;
    const r = radius * size;
    switch (o.shape) {
      case 'circle':
        return `<circle cx="${cx.toFixed(2)}" cy="${cy.toFixed(2)}" r="${r.toFixed(2)}" fill="${fill}"/>`;
      case 'square':
        return polygon(
          cx,
          cy,
          [1, 1, 1, 1].map((k) => k * r * 1.25),
          rotation + 45,
          fill,
        );
      case 'diamond':
        return polygon(
          cx,
          cy,
          [1.3, 1, 1.3, 1].map((k) => k * r),
          rotation,
          fill,
        );
      case 'triangle':
        return polygon(
          cx,
          cy,
          [1, 1, 1].map((k) => k * r * 1.35),
          rotation,
          fill,
        );
      case 'star':
        return polygon(
          cx,
          cy,
          Array.from({ length: 10 }, (_, k) => (k % 2 ? 0.5 : 1.4) * r),
          rotation,
          fill,
        );
      case 'hexagon':
        return polygon(cx, cy, Array(6).fill(r * 1.1) as number[], rotation, fill);
    }
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">` +
    `<defs><linearGradient id="bg" x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}"><stop offset="0" stop-color="${from}"/><stop offset="1" stop-color="${to}"/></linearGradient></defs>` +
    `<rect width="${size}" height="${size}" fill="url(#bg)"/>${body.join('')}</svg>`
  );
}

/**
 * Rasterises a drawing to size × size × 3 uint8 RGB, with noise of the drawing's standard
 * deviation from `noiseSeed` (a sum of three uniforms: close to Gaussian, and cheap).
 */
export async function renderDrawing(d: Drawing, size: number, noiseSeed: number): Promise<Uint8Array> {
  const { data, info } = await sharp(Buffer.from(drawingSvg(d, size)))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size || info.channels !== 3) {
    throw new Error(`rendered ${info.width}×${info.height}×${info.channels}, expected ${size}×${size}×3`);
  }
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (d.noise > 0) {
    const rng = new Rng(noiseSeed);
    const scale = d.noise * 2; // the sum of three U(-0.5, 0.5) has variance 1/4
    for (let k = 0; k < pixels.length; k++) {
      const v = pixels[k]! + scale * (rng.next() + rng.next() + rng.next() - 1.5);
      pixels[k] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
    }
  }
  return pixels;
}

/** PNG bytes of raw RGB pixels (lossless: decoding gives the same pixels back). */
export async function encodePng(pixels: Uint8Array, size: number): Promise<Buffer> {
  return sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
    .png({ compressionLevel: 6 })
    .toBuffer();
}
