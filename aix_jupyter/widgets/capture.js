// MediaCapture's view: Upload, drag-and-drop, Record (audio) and Camera (image); the bytes go to the
// kernel as custom messages in chunks of binary buffers (see capture.py for the protocol).

const MB = 1024 * 1024;
const WINDOW = 4; // chunks in flight before waiting for the kernel's acknowledgement

function size(n) {
  if (n >= MB) return (n / MB).toFixed(1) + " MB";
  return n >= 1024 ? (n / 1024).toFixed(1) + " KB" : n + " bytes";
}

function button(label, cls, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `jupyter-button widget-button aix-capture-${cls}`;
  b.textContent = label;
  b.title = title;
  return b;
}

// -- WAV: 16-bit PCM, mono, at the requested rate --------------------------------------------------
export function encodeWav(samples, rate) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true); // byte rate
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([view.buffer], { type: "audio/wav" });
}

// a recording (WebM/Opus from MediaRecorder) decoded, mixed down to mono and resampled, as WAV of
// at most maxBytes (a longer recording is cut at the end)
async function toWav(blob, rate, maxBytes) {
  const context = new AudioContext();
  let decoded;
  try {
    decoded = await context.decodeAudioData(await blob.arrayBuffer());
  } finally {
    context.close();
  }
  const frames = Math.max(1, Math.min(Math.ceil(decoded.duration * rate), Math.floor((maxBytes - 44) / 2)));
  const offline = new OfflineAudioContext(1, frames, rate);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const rendered = await offline.startRendering();
  return encodeWav(rendered.getChannelData(0), rate);
}

// what a view showed, per widget (its ``uid``): a view drawn again (the notebook re-renders an
// output that is updated) shows it too; kept on the page, which may evaluate this module again
const memory = (globalThis.__aixCaptureMemory ||= new Map());

function render({ model, el }) {
  const kind = model.get("kind");
  el.classList.add("aix-capture", `aix-capture-${kind}`);
  const bar = document.createElement("div");
  bar.className = "aix-capture-bar";
  const picker = document.createElement("input");
  picker.type = "file";
  picker.accept = model.get("accept");
  picker.style.display = "none";
  const upload = button("Upload", "upload", "Choose a file (or drop one here)");
  const record = button("Record", "record", "Record from the microphone");
  const camera = button("Camera", "camera", "Take a picture with the camera");
  const snap = button("Snap", "snap", "Take the picture");
  const use = button("Use", "use", "Send this clip to the kernel as the parameter's value");
  const meter = document.createElement("div");
  meter.className = "aix-capture-meter";
  meter.title = "input level";
  const level = document.createElement("div");
  level.className = "aix-capture-level";
  meter.append(level);
  const status = document.createElement("span");
  status.className = "aix-capture-status";
  const preview = document.createElement("div");
  preview.className = "aix-capture-preview";
  const live = document.createElement("video");
  live.className = "aix-capture-live";
  live.muted = true;
  live.playsInline = true;
  const hint = document.createElement("span");
  hint.className = "aix-capture-hint";
  hint.textContent = "or drop a file here";
  bar.append(picker, upload);
  if (kind === "audio") bar.append(record, meter);
  if (kind === "image") bar.append(camera, snap);
  bar.append(use, hint);
  el.append(bar, status, preview);
  for (const b of [snap, use]) b.style.display = "none";
  meter.style.display = "none";

  let pending = null; // {blob, name}: shown, not sent yet
  let stream = null; // the open microphone or camera
  let recorder = null;
  let audio = null; // {context, timer}
  let url = null;
  let closed = false;
  const cap = () => model.get("max_bytes");
  const uid = model.get("uid");
  if (!memory.has(uid)) memory.set(uid, { clip: null, unsent: false, status: "", error: false });
  const kept = memory.get(uid);

  // a passing state (recording, sending, camera on) is not kept for a view drawn later
  const say = (text, isError = false, passing = false) => {
    status.textContent = text;
    status.classList.toggle("aix-capture-error", isError);
    if (!passing) Object.assign(kept, { status: text, error: isError });
  };
  const stopStream = () => {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    if (audio) {
      clearInterval(audio.timer);
      audio.context.close();
      audio = null;
    }
    meter.style.display = "none";
    live.srcObject = null;
    live.remove();
    snap.style.display = "none";
    camera.textContent = "Camera";
  };
  const show = (blob, name) => {
    kept.clip = { blob, name };
    if (url) URL.revokeObjectURL(url);
    url = URL.createObjectURL(blob);
    preview.replaceChildren();
    const type = blob.type || "";
    let node = null;
    if (type.startsWith("audio/")) {
      node = document.createElement("audio");
      node.controls = true;
    } else if (type.startsWith("image/")) {
      node = document.createElement("img");
      node.alt = name;
    } else if (type.startsWith("video/")) {
      node = document.createElement("video");
      node.controls = true;
    }
    if (node) {
      node.className = "aix-capture-clip";
      node.src = url;
      preview.append(node);
    }
  };

  // -- sending ---------------------------------------------------------------------------------------
  let sending = null; // {id, acked, wake}
  const onMessage = (msg) => {
    if (!msg || !sending || msg.id !== sending.id) return;
    if (msg.type === "ack") sending.acked = Math.max(sending.acked, msg.index + 1);
    else if (msg.type === "done") sending.done = msg;
    else if (msg.type === "error") sending.error = msg.message;
    const wake = sending.wake;
    sending.wake = null;
    if (wake) wake();
  };
  model.on("msg:custom", onMessage);

  const send = async (blob, name) => {
    const step = model.get("chunk_size");
    const chunks = Math.ceil(blob.size / step);
    const id = Math.random().toString(36).slice(2) + Date.now().toString(36);
    const job = { id, acked: 0, wake: null, done: null, error: null, replaced: false };
    if (sending) { // a newer file replaces one still on its way (the kernel keeps the newer)
      sending.replaced = true;
      if (sending.wake) sending.wake();
    }
    sending = job;
    const wait = () => new Promise((resolve) => { job.wake = resolve; });
    use.disabled = true;
    model.send({ type: "begin", id, name, mime: blob.type || "", size: blob.size, chunks });
    const over = () => job.error || job.replaced || closed;
    for (let index = 0; index < chunks && !over(); index++) {
      while (index - job.acked >= WINDOW && !over()) await wait();
      if (over()) break;
      const data = await blob.slice(index * step, (index + 1) * step).arrayBuffer();
      model.send({ type: "chunk", id, index }, undefined, [data]);
      say(`sending ${name}: ${Math.round((100 * index) / chunks)} %`, false, true);
    }
    if (!over()) {
      model.send({ type: "end", id });
      while (!job.done && !over()) await wait();
    }
    if (job.replaced) return false;
    sending = null;
    use.disabled = false;
    if (job.error) {
      say(job.error, true);
      return false;
    }
    if (job.done) {
      say(`sent ${name} (${size(blob.size)})`);
      el.dataset.sent = name;
      use.style.display = "none";
      kept.unsent = false;
    }
    return !!job.done;
  };

  const offer = (blob, name, sendNow) => {
    const refused = blob.size > cap()
      ? `${name} is ${size(blob.size)}, over the ${size(cap())} limit; nothing was sent`
      : blob.size === 0 ? `${name} is empty; nothing was sent` : null;
    if (refused) { // before anything is shown or sent
      preview.replaceChildren();
      pending = kept.clip = null;
      use.style.display = "none";
      say(refused, true);
      return;
    }
    show(blob, name);
    pending = { blob, name };
    kept.unsent = !sendNow;
    el.dataset.sent = "";
    if (sendNow) {
      use.style.display = "none";
      send(blob, name);
    } else {
      use.style.display = "";
      say(`${name}, ${size(blob.size)}: check it, then Use`);
    }
  };

  const take = (file) => {
    if (!file) return;
    const accept = model.get("accept");
    if (accept && !(file.type || "").startsWith(accept.replace("*", ""))) {
      say(`${file.name} is not ${kind === "image" ? "an" : "a"} ${kind} file (${file.type || "unknown type"}); nothing was sent`, true);
      return;
    }
    stopStream();
    offer(file, file.name, true);
  };

  // -- Upload and drag-and-drop ---------------------------------------------------------------------
  upload.addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => { take(picker.files[0]); picker.value = ""; });
  el.addEventListener("dragover", (e) => { e.preventDefault(); el.classList.add("aix-capture-over"); });
  el.addEventListener("dragleave", () => el.classList.remove("aix-capture-over"));
  el.addEventListener("drop", (e) => {
    e.preventDefault();
    e.stopPropagation(); // the notebook would otherwise treat the drop as its own
    el.classList.remove("aix-capture-over");
    const files = e.dataTransfer ? e.dataTransfer.files : [];
    if (files.length > 1) say(`${files.length} files dropped: using the first, ${files[0].name}`);
    take(files[0]);
  });
  use.addEventListener("click", () => { if (pending) send(pending.blob, pending.name); });

  // -- Record: the microphone through MediaRecorder, a level meter, then a WAV --------------------
  const secure = (what) => {
    if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) return true;
    say(`the ${what} needs a secure page (https:// or localhost); Upload a file instead`, true);
    return false;
  };

  const startRecording = async () => {
    stopStream();
    if (!secure("microphone")) return;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      say(`the microphone is unavailable: ${err.name}: ${err.message}`, true);
      return;
    }
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let peak = 0;
    let limited = false;
    const started = Date.now();
    const rate = model.get("sample_rate");
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      peak = Math.max(peak, rms);
      level.style.width = Math.min(100, Math.round(rms * 400)) + "%";
      meter.dataset.peak = peak.toFixed(4);
      const seconds = (Date.now() - started) / 1000;
      say(`recording ${seconds.toFixed(1)} s`, false, true);
      if (seconds * rate * 2 + 44 > cap() && recorder && recorder.state === "recording") {
        limited = true; // the WAV would outgrow the limit
        recorder.stop();
      }
    }, 50);
    audio = { context, timer };
    meter.style.display = "";
    const type = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus"].find(
      (t) => MediaRecorder.isTypeSupported(t)
    );
    const parts = [];
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    recorder.ondataavailable = (e) => { if (e.data.size) parts.push(e.data); };
    recorder.onstop = async () => {
      const raw = new Blob(parts, { type: recorder.mimeType || "audio/webm" });
      recorder = null;
      stopStream();
      record.textContent = "Record";
      if (closed) return;
      try {
        offer(await toWav(raw, rate, cap()), "recording.wav", false);
      } catch (err) {
        // not decodable here: the compressed recording itself (PyAV reads WebM/Opus)
        offer(raw, "recording.webm", false);
      }
      if (limited && pending) say(`stopped at the ${size(cap())} limit: ${status.textContent}`);
    };
    recorder.start(250);
    record.textContent = "Stop";
  };
  record.addEventListener("click", () => {
    if (recorder && recorder.state === "recording") recorder.stop();
    else startRecording();
  });

  // -- Camera: a live preview, a snapshot to a canvas, PNG --------------------------------------------
  camera.addEventListener("click", async () => {
    if (stream) { stopStream(); say(""); return; }
    if (!secure("camera")) return;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true });
    } catch (err) {
      say(`the camera is unavailable: ${err.name}: ${err.message}`, true);
      return;
    }
    live.srcObject = stream;
    preview.replaceChildren(live);
    use.style.display = "none";
    await live.play();
    snap.style.display = "";
    camera.textContent = "Close camera";
    say("camera on: Snap takes the picture", false, true);
  });
  snap.addEventListener("click", () => {
    const canvas = document.createElement("canvas");
    canvas.width = live.videoWidth;
    canvas.height = live.videoHeight;
    canvas.getContext("2d").drawImage(live, 0, 0);
    stopStream();
    canvas.toBlob((blob) => {
      if (!blob) { say("the snapshot could not be encoded as PNG", true); return; }
      offer(blob, "snapshot.png", false);
    }, "image/png");
  });

  if (kept.clip) { // drawn again: what the last view showed
    show(kept.clip.blob, kept.clip.name);
    pending = kept.clip;
    if (kept.unsent) use.style.display = "";
  }
  say(kept.status, kept.error);

  return () => {
    closed = true;
    if (recorder && recorder.state === "recording") recorder.stop();
    stopStream();
    if (url) URL.revokeObjectURL(url);
    model.off("msg:custom", onMessage);
    if (sending) {
      model.send({ type: "abort", id: sending.id });
      sending = null;
    }
  };
}

export default { render };
