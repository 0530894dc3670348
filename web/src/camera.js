// camera.js — QR scanning with the camera: getUserMedia, frames drawn to a canvas and
// decoded with jsQR. onCode(payload, t0) gets each decoded payload with the time
// (performance.now()) of the first frame that was looked at, so the page can tell how
// long a code in view took to score.
import jsQR from 'jsqr';

export async function startCamera(video, onCode) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  video.srcObject = stream;
  await video.play();
  const canvas = document.createElement('canvas'), ctx = canvas.getContext('2d', { willReadFrequently: true });
  // No decoding while a scan is being answered, and for a second after: decoding holds the
  // main thread, which must be free to show the answer.
  let running = true, t0 = null, busyUntil = 0;
  const tick = () => {
    if (!running) return;
    if (video.readyState >= 2 && video.videoWidth && performance.now() >= busyUntil) {
      if (t0 == null) t0 = performance.now();
      const scale = Math.min(1, 480 / video.videoWidth); // enough for a code that fills a fair part of the view
      canvas.width = Math.round(video.videoWidth * scale); canvas.height = Math.round(video.videoHeight * scale);
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const code = jsQR(img.data, img.width, img.height, { inversionAttempts: 'dontInvert' });
      if (code && code.data) {
        document.body.dataset.cameraDecodedMs ??= String(Math.round(performance.now() - t0));
        busyUntil = Infinity;
        Promise.resolve(onCode(code.data, t0)).finally(() => { busyUntil = performance.now() + 1000; });
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return { stop() { running = false; stream.getTracks().forEach(t => t.stop()); video.srcObject = null; } };
}
