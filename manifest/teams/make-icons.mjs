// Draws the Teams app icons (color.png 192x192, outline.png 32x32 white on transparent) and writes
// them next to this file. Run once after changing the design: `node manifest/teams/make-icons.mjs`.
// Plain PNG encoding with node:zlib; shapes are sampled 4x4 per pixel for smooth edges.
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const here = new URL('.', import.meta.url);

/** A speech bubble (rounded rectangle with a tail, bottom left) in a unit square. */
function inBubble(x, y) {
  const [l, t, r, b, radius] = [0.16, 0.2, 0.84, 0.68, 0.12];
  const cx = Math.min(Math.max(x, l + radius), r - radius);
  const cy = Math.min(Math.max(y, t + radius), b - radius);
  if (x >= l && x <= r && y >= t && y <= b && (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2) return true;
  // Tail: a triangle under the bubble's left side.
  const [ax, ay, bx, by, px, py] = [0.28, 0.66, 0.46, 0.66, 0.26, 0.84];
  const d = (x1, y1, x2, y2) => (x - x2) * (y1 - y2) - (x1 - x2) * (y - y2);
  const s1 = d(ax, ay, bx, by), s2 = d(bx, by, px, py), s3 = d(px, py, ax, ay);
  return !((s1 < 0 || s2 < 0 || s3 < 0) && (s1 > 0 || s2 > 0 || s3 > 0));
}

/** The handoff arrow inside the bubble: a bar with a head pointing right. */
function inArrow(x, y) {
  const bar = x >= 0.3 && x <= 0.58 && Math.abs(y - 0.44) <= 0.045;
  const head = x >= 0.56 && x <= 0.72 && Math.abs(y - 0.44) <= (0.72 - x) * 0.75;
  return bar || head;
}

/** Rounded square for the color icon's background. */
function inTile(x, y) {
  const r = 0.2;
  const cx = Math.min(Math.max(x, r), 1 - r);
  const cy = Math.min(Math.max(y, r), 1 - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

function render(size, shade) {
  const pixels = Buffer.alloc(size * size * 4);
  const n = 4;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const acc = [0, 0, 0, 0];
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const [r, g, b, a] = shade((px + (sx + 0.5) / n) / size, (py + (sy + 0.5) / n) / size);
          acc[0] += r * a; acc[1] += g * a; acc[2] += b * a; acc[3] += a;
        }
      }
      const alpha = acc[3] / (n * n);
      const i = (py * size + px) * 4;
      for (let c = 0; c < 3; c++) pixels[i + c] = acc[3] ? Math.round(acc[c] / acc[3]) : 0;
      pixels[i + 3] = Math.round(alpha * 255);
    }
  }
  return pixels;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function png(size, pixels) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // RGBA
  const rows = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) pixels.copy(rows, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const INDIGO = [79, 70, 229];
const WHITE = [255, 255, 255];

const color = render(192, (x, y) => {
  if (!inTile(x, y)) return [0, 0, 0, 0];
  if (inBubble(x, y) && !inArrow(x, y)) return [...WHITE, 1];
  return [...INDIGO, 1];
});
// Teams wants the outline icon white on transparent: the bubble with the arrow cut out.
const outline = render(32, (x, y) => (inBubble(x, y) && !inArrow(x, y) ? [...WHITE, 1] : [0, 0, 0, 0]));

writeFileSync(new URL('color.png', here), png(192, color));
writeFileSync(new URL('outline.png', here), png(32, outline));
console.log('wrote color.png (192x192) and outline.png (32x32)');
