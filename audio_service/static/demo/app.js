// Browser demo: microphone -> AudioWorklet (16 kHz PCM16) -> WebSocket; live transcript; batch uploads.
const $ = (id) => document.getElementById(id);
const FRAME_MS = 80; // 50-100 ms frames, as the streaming protocol recommends

const apiKeyInput = $('api-key');
apiKeyInput.value = localStorage.getItem('audio-service-key') ?? '';
apiKeyInput.addEventListener('change', () => localStorage.setItem('audio-service-key', apiKeyInput.value));

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

// ---- live transcript: the state by segment id ----------------------------------------------
const segments = new Map();
const speakerClass = new Map();

const isFinal = (seg) => Boolean(seg.is_final || (seg.words?.length && seg.words[seg.words.length - 1].is_final));

function segmentSpeaker(seg) {
  if (seg.speaker_id != null) return String(seg.speaker_id);
  const w = (seg.words ?? []).find((x) => x.speaker_id != null);
  return w ? String(w.speaker_id) : null;
}

function render() {
  const root = $('transcript');
  root.replaceChildren();
  let lastSpeaker = null;
  let line = root;
  for (const id of [...segments.keys()].sort((a, b) => a - b)) {
    const seg = segments.get(id);
    const speaker = segmentSpeaker(seg);
    if (speaker !== null && speaker !== lastSpeaker) {
      if (!speakerClass.has(speaker)) speakerClass.set(speaker, `speaker-${speakerClass.size % 4}`);
      line = document.createElement('span');
      line.className = 'turn';
      const label = document.createElement('span');
      label.className = `speaker ${speakerClass.get(speaker)}`;
      label.textContent = `${speaker}:`;
      line.append(label);
      root.append(line);
      lastSpeaker = speaker;
    }
    const span = document.createElement('span');
    span.className = isFinal(seg) ? 'final' : 'partial';
    span.dataset.segmentId = String(seg.id);
    span.textContent = `${seg.text.trim()} `;
    line.append(span);
  }
}

// ---- streaming session ----------------------------------------------------------------------
let session = null;

function streamUrl() {
  const q = new URLSearchParams({ response_format: 'verbose_json' });
  if ($('language').value) q.set('language', $('language').value);
  if ($('diarize').checked) q.set('diarize', 'true');
  // browsers cannot set headers on a WebSocket: the key goes in the query, as the protocol allows
  if (apiKeyInput.value) q.set('Authorization', apiKeyInput.value);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/v1/audio/transcriptions/streaming?${q}`;
}

async function openAudio(stream) {
  // Ask for a 16 kHz context so the browser's own high-quality resampler does most of the work; where
  // that is refused, the worklet resamples from the device rate itself.
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: 16000 });
    await ctx.audioWorklet.addModule('pcm-worklet.js');
    return { ctx, source: ctx.createMediaStreamSource(stream) };
  } catch (err) {
    if (ctx) ctx.close();
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule('pcm-worklet.js');
    return { ctx, source: ctx.createMediaStreamSource(stream) };
  }
}

async function start() {
  $('start').disabled = true;
  segments.clear();
  render();
  setStatus('starting microphone...');
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  } catch (err) {
    setStatus(`microphone unavailable: ${err.message}`, true);
    $('start').disabled = false;
    return;
  }
  const { ctx, source } = await openAudio(media);
  const ws = new WebSocket(streamUrl());
  ws.binaryType = 'arraybuffer';
  const worklet = new AudioWorkletNode(ctx, 'pcm-capture', { processorOptions: { frameMs: FRAME_MS } });
  session = { ws, ctx, media, worklet, stopping: false, sent: 0 };
  const current = session;

  ws.onopen = () => {
    setStatus(`streaming (${ctx.sampleRate} Hz capture -> 16 kHz)`);
    $('stop').disabled = false;
    worklet.port.onmessage = (e) => {
      if (ws.readyState === WebSocket.OPEN && !current.stopping) {
        ws.send(e.data);
        current.sent += e.data.byteLength / 2 / 16000;
        document.body.dataset.secondsSent = current.sent.toFixed(1);
      }
    };
    source.connect(worklet); // the worklet outputs nothing audible; it need not reach the speakers
  };
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.error) {
      setStatus(`error: ${msg.error.message}`, true);
      return;
    }
    if (Array.isArray(msg.segments)) {
      for (const seg of msg.segments) segments.set(Number(seg.id), seg);
      render();
    } else if (msg.checkpoint_id === 'final') {
      setStatus('done: every segment is final');
      ws.close(1000);
    }
  };
  ws.onclose = (e) => {
    teardown(current);
    if (!current.stopping || e.code !== 1000) setStatus(`connection closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`, e.code !== 1000);
  };
  ws.onerror = () => setStatus('WebSocket error', true);
}

function teardown(s) {
  s.media.getTracks().forEach((t) => t.stop());
  s.worklet.port.onmessage = null;
  s.worklet.disconnect();
  if (s.ctx.state !== 'closed') s.ctx.close();
  $('start').disabled = false;
  $('stop').disabled = true;
  if (session === s) session = null;
}

function stop() {
  if (!session) return;
  const s = session;
  s.stopping = true;
  s.media.getTracks().forEach((t) => t.stop());
  $('stop').disabled = true;
  setStatus('finishing: waiting for the final segments...');
  // the final checkpoint flushes: the server finalizes everything, echoes it, and we close
  if (s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify({ checkpoint_id: 'final' }));
}

$('start').addEventListener('click', start);
$('stop').addEventListener('click', stop);

// ---- batch upload ---------------------------------------------------------------------------
function showBatch(format, body) {
  const out = $('batch-result');
  out.replaceChildren();
  if (format !== 'verbose_json') {
    out.textContent = body;
    return;
  }
  const words = body.words ?? [];
  if (words.some((w) => w.speaker_id != null)) {
    // one line per speaker turn
    let turn = null;
    for (const w of words) {
      if (!turn || turn.speaker !== w.speaker_id) {
        turn = { speaker: w.speaker_id, el: document.createElement('span') };
        turn.el.className = 'turn final';
        if (!speakerClass.has(String(w.speaker_id))) speakerClass.set(String(w.speaker_id), `speaker-${speakerClass.size % 4}`);
        turn.el.innerHTML = `<span class="speaker ${speakerClass.get(String(w.speaker_id))}"></span>`;
        turn.el.firstChild.textContent = `${w.speaker_id}:`;
        out.append(turn.el);
      }
      turn.el.append(document.createTextNode(w.word));
    }
    return;
  }
  for (const seg of body.segments ?? []) {
    const line = document.createElement('span');
    line.className = 'turn final';
    line.textContent = `[${seg.start.toFixed(1)}-${seg.end.toFixed(1)}] ${seg.text.trim()}`;
    out.append(line);
  }
  if (!body.segments) out.textContent = body.text;
}

$('upload-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  const format = $('format').value;
  const translate = $('translate').checked;
  const form = new FormData();
  form.append('file', file);
  form.append('response_format', format);
  if ($('language').value && !translate) form.append('language', $('language').value);
  if (format === 'verbose_json' && $('diarize').checked && !translate) {
    form.append('diarize', 'true');
    form.append('timestamp_granularities', 'word,segment');
  }
  // XMLHttpRequest, not fetch: it reports upload progress
  const xhr = new XMLHttpRequest();
  xhr.open('POST', translate ? '/v1/audio/translations' : '/v1/audio/transcriptions');
  if (apiKeyInput.value) xhr.setRequestHeader('Authorization', `Bearer ${apiKeyInput.value}`);
  const bar = $('upload-progress');
  bar.hidden = false;
  bar.value = 0;
  xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) bar.value = ev.loaded / ev.total; };
  $('batch-result').textContent = 'transcribing...';
  xhr.onload = () => {
    bar.hidden = true;
    let body = xhr.responseText;
    if ((xhr.getResponseHeader('content-type') ?? '').startsWith('application/json')) body = JSON.parse(body);
    if (xhr.status >= 400) $('batch-result').textContent = `error: ${body?.error?.message ?? xhr.status}`;
    else showBatch(format, body);
  };
  xhr.onerror = () => { bar.hidden = true; $('batch-result').textContent = 'upload failed'; };
  xhr.send(form);
});
