// y4m.mjs — a Y4M video (4:2:0) of a QR code for Chromium's fake camera: the SVG is drawn
// on a white 640x480 canvas in the browser, and the RGBA pixels are converted here.
import { writeFileSync } from 'node:fs';

const W = 640, H = 480;
export async function makeY4m(browser, svg, file, frames = 10) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const b64 = await page.evaluate(async ({ svg, W, H }) => {
    const img = new Image();
    img.src = 'data:image/svg+xml;base64,' + btoa(svg);
    await img.decode();
    const c = document.createElement('canvas'); c.width = W; c.height = H;
    const g = c.getContext('2d');
    g.fillStyle = '#fff'; g.fillRect(0, 0, W, H);
    g.imageSmoothingEnabled = false;
    g.drawImage(img, (W - 400) / 2, (H - 400) / 2, 400, 400);
    const d = g.getImageData(0, 0, W, H).data;
    let s = '';
    for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode(...d.subarray(i, i + 0x8000));
    return btoa(s);
  }, { svg, W, H });
  await ctx.close();
  const rgba = Buffer.from(b64, 'base64');
  const y = Buffer.alloc(W * H), u = Buffer.alloc(W * H / 4), v = Buffer.alloc(W * H / 4);
  for (let i = 0; i < W * H; i++) {
    const r = rgba[i * 4], g = rgba[i * 4 + 1], b = rgba[i * 4 + 2];
    y[i] = Math.round(16 + 0.257 * r + 0.504 * g + 0.098 * b);
  }
  for (let j = 0; j < H / 2; j++) for (let i = 0; i < W / 2; i++) { u[j * W / 2 + i] = 128; v[j * W / 2 + i] = 128; }
  const frame = Buffer.concat([Buffer.from('FRAME\n'), y, u, v]);
  writeFileSync(file, Buffer.concat([Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\n`), ...Array(frames).fill(frame)]));
}
