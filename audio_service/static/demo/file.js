// File view: upload with progress, a timeline of segments / speaker turns, playback, downloads.
import { $, apiKey, clock, fillRow, segmentSpeaker, showError, speakerClass } from './common.js';

let job = null; // {file, translate, language, body, url, downloads: Map(format -> Blob)}

// ---- the request: XMLHttpRequest, for upload progress and a readable streamed answer -----------
function formFor(j, format, { diarize = false, stream = false } = {}) {
  const form = new FormData();
  form.append('file', j.file);
  form.append('response_format', format);
  if (j.language) form.append('language', j.language);
  if (diarize) {
    form.append('diarize', 'true');
    form.append('timestamp_granularities', 'word,segment');
  }
  // progress events (OpenAI-style SSE) where the server offers them; a server without them ignores the field
  if (stream) form.append('stream', 'true');
  return form;
}

function send(j, form, onEvent = () => {}, { quiet = false } = {}) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', j.translate ? '/v1/audio/translations' : '/v1/audio/transcriptions');
    if (apiKey()) xhr.setRequestHeader('Authorization', `Bearer ${apiKey()}`);
    if (!quiet) xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) progress(ev.loaded / ev.total, `uploading ${Math.round((100 * ev.loaded) / ev.total)}%`); };
    if (!quiet) xhr.upload.onload = () => progress(null, 'transcribing…');
    let seen = 0;
    const isSse = () => (xhr.getResponseHeader('content-type') ?? '').startsWith('text/event-stream');
    const drain = () => {
      // server-sent events: blank-line separated blocks of "data: {json}" lines
      const blocks = xhr.responseText.slice(seen).split('\n\n');
      blocks.pop(); // an incomplete block waits for more
      for (const block of blocks) {
        seen += block.length + 2;
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
        if (data && data !== '[DONE]') onEvent(JSON.parse(data));
      }
    };
    xhr.onprogress = () => { if (isSse()) drain(); };
    xhr.onload = () => {
      if (isSse()) { drain(); resolve({ status: xhr.status, sse: true }); return; }
      let body = xhr.responseText;
      if ((xhr.getResponseHeader('content-type') ?? '').startsWith('application/json')) body = JSON.parse(body);
      resolve({ status: xhr.status, body, type: xhr.getResponseHeader('content-type') ?? 'text/plain' });
    };
    xhr.onerror = () => resolve({ status: 0, body: null });
    xhr.send(form);
  });
}

const errorText = (r) => (r.status === 0 ? 'The upload failed: the server could not be reached.' : `Error ${r.status}: ${r.body?.error?.message ?? r.body}`);

function progress(fraction, label) {
  const bar = $('upload-progress');
  if (fraction == null) bar.removeAttribute('value'); // indeterminate: the server is working
  else bar.value = fraction;
  $('progress-label').textContent = label;
}

// Does this server's stream=true event stream end with the timed transcript (segments) the view
// needs? OpenAI's `transcript.text.done` carries the text only, and transcribing a file twice (once
// for progress, once for timings) would double the wait, so the page asks once, with 0.1 s of silence
// (a VAD pass, no decoding), and uses the events only where they end with segments.
let streamGivesSegments = null;

function silentWav(samples) {
  const view = new DataView(new ArrayBuffer(44 + 2 * samples));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF'); view.setUint32(4, 36 + 2 * samples, true); text(8, 'WAVEfmt ');
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true); // PCM, mono
  view.setUint32(24, 16000, true); view.setUint32(28, 32000, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, 'data'); view.setUint32(40, 2 * samples, true);
  return new File([view.buffer], 'probe.wav', { type: 'audio/wav' });
}

async function streamHasSegments() {
  if (streamGivesSegments === null) {
    const probe = { file: silentWav(1600), translate: false, language: '' };
    let done = null;
    const r = await send(probe, formFor(probe, 'verbose_json', { stream: true }), (ev) => { if (ev.type === 'transcript.text.done') done = ev; }, { quiet: true });
    streamGivesSegments = Boolean(r.sse && Array.isArray(done?.segments));
  }
  return streamGivesSegments;
}

/** Transcribe (with stream=true progress events where they end with segments); returns the verbose_json body, or throws an error message. */
async function transcribe(j, diarize) {
  let done = null;
  let failed = null;
  const stream = !j.translate && (await streamHasSegments()); // the reference API streams transcriptions only
  const r = await send(j, formFor(j, 'verbose_json', { diarize, stream }), (ev) => {
    if (ev.error) failed = ev;
    else if (ev.type === 'transcript.text.delta') {
      const at = ev.audio_position_s ?? ev.audio_position;
      if (typeof at === 'number' && j.duration) progress(Math.min(1, at / j.duration), `transcribing: ${clock(at)} of ${clock(j.duration)}`);
      $('progress-label').dataset.sse = 'true';
    } else if (ev.type === 'transcript.text.done') done = ev;
  });
  if (r.sse) {
    if (failed || !done?.segments) throw errorText({ status: r.status, body: failed ?? 'the event stream ended early' });
    return done;
  }
  if (r.status === 0 || r.status >= 400) throw errorText(r);
  return r.body;
}

// ---- rendering --------------------------------------------------------------------------------
function segmentButton(seg, className, label) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.dataset.start = String(seg.start);
  b.dataset.end = String(seg.end);
  b.setAttribute('aria-label', label);
  return b;
}

function drawTimeline(body) {
  const total = Math.max(body.duration || 0, ...body.segments.map((s) => s.end)) || 1;
  const lanes = new Map(); // speaker (or 'speech') -> segments
  for (const seg of body.segments) {
    const key = segmentSpeaker(seg) ?? 'speech';
    if (!lanes.has(key)) lanes.set(key, []);
    lanes.get(key).push(seg);
  }
  const root = $('timeline');
  root.replaceChildren();
  for (const [speaker, segs] of lanes) {
    const lane = document.createElement('div');
    lane.className = 'lane';
    const colour = speaker === 'speech' ? 'spk-speech' : speakerClass(speaker);
    const name = document.createElement('span');
    name.className = `lane-label ${colour}`;
    name.textContent = speaker;
    const track = document.createElement('div');
    track.className = 'track';
    for (const seg of segs) {
      const bar = segmentButton(seg, `bar ${colour}`, `${speaker}, ${clock(seg.start)} to ${clock(seg.end)}: ${seg.text.trim()}`);
      bar.dataset.speaker = speaker;
      bar.title = seg.text.trim();
      bar.style.left = `${(100 * seg.start) / total}%`;
      bar.style.width = `${(100 * (seg.end - seg.start)) / total}%`;
      track.append(bar);
    }
    lane.append(name, track);
    root.append(lane);
  }
  const axis = document.createElement('div');
  axis.className = 'axis';
  axis.setAttribute('aria-hidden', 'true');
  const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => total / s <= 8) ?? 1200;
  for (let t = 0; t <= total; t += step) {
    const tick = document.createElement('span');
    tick.style.left = `${(100 * t) / total}%`;
    tick.textContent = clock(t).replace(/\.0$/, '');
    axis.append(tick);
  }
  const head = document.createElement('div');
  head.className = 'playhead';
  head.setAttribute('aria-hidden', 'true');
  root.append(axis, head);
  root.dataset.total = String(total);
}

function showTranscript(body) {
  const list = $('batch-result');
  list.replaceChildren();
  for (const seg of body.segments) {
    const li = document.createElement('li');
    fillRow(li, seg, true);
    const play = segmentButton(seg, 'play', `Play ${clock(seg.start)} to ${clock(seg.end)}`);
    play.textContent = '▶';
    li.prepend(play);
    li.addEventListener('click', (e) => { if (e.target === li || e.target.tagName === 'SPAN') play.click(); });
    list.append(li);
  }
}

// ---- playback of one segment ------------------------------------------------------------------
const player = $('player');
let stopAt = null;

function playRange(start, end) {
  stopAt = end;
  player.currentTime = start;
  player.play().catch(() => {});
}

player.addEventListener('timeupdate', () => {
  if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
  const total = Number($('timeline').dataset.total || 0);
  if (total) $('timeline').style.setProperty('--pos', String(Math.min(1, player.currentTime / total)));
  for (const el of document.querySelectorAll('#file-result [data-start]')) {
    el.classList.toggle('playing', !player.paused && player.currentTime >= Number(el.dataset.start) && player.currentTime < Number(el.dataset.end));
  }
});
$('file-result').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-start]');
  if (b) playRange(Number(b.dataset.start), Number(b.dataset.end));
});

// ---- downloads: JSON is the answer shown; SRT and VTT are the endpoint's own renderings --------
async function download(format) {
  if (!job?.body) return;
  const j = job;
  let blob = j.downloads.get(format);
  if (!blob) {
    if (format === 'json') {
      blob = new Blob([JSON.stringify(j.body, null, 2)], { type: 'application/json' });
    } else {
      progress(null, `preparing ${format.toUpperCase()}…`);
      $('progress').hidden = false;
      const buttons = document.querySelectorAll('.downloads button');
      buttons.forEach((b) => { b.disabled = true; });
      const r = await send(j, formFor(j, format));
      buttons.forEach((b) => { b.disabled = false; });
      $('progress').hidden = true;
      if (r.status >= 400 || r.status === 0) { showError($('file-error'), errorText(r)); return; }
      blob = new Blob([r.body], { type: r.type });
    }
    j.downloads.set(format, blob);
  }
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${j.file.name.replace(/\.[^.]+$/, '')}.${format}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

for (const b of document.querySelectorAll('.downloads button')) b.addEventListener('click', () => download(b.dataset.format));

// ---- the form ---------------------------------------------------------------------------------
/** The file's duration as the browser reads it (for the progress events), or null; never waits long. */
function fileDuration(url) {
  return new Promise((resolve) => {
    player.onloadedmetadata = () => resolve(Number.isFinite(player.duration) ? player.duration : null);
    player.onerror = () => resolve(null); // a format the browser cannot play: no playback, still a transcript
    setTimeout(() => resolve(null), 3000);
    player.src = url;
  });
}

$('upload-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  const translate = $('translate').checked;
  if (job?.url) URL.revokeObjectURL(job.url);
  const j = { file, translate, language: translate ? '' : $('language').value, body: null, downloads: new Map() };
  job = j;
  j.url = URL.createObjectURL(file);
  $('upload').disabled = true;
  $('file-result').hidden = true;
  showError($('file-error'), null);
  progress(0, 'uploading 0%');
  $('progress').hidden = false;
  j.duration = await fileDuration(j.url);
  try {
    j.body = await transcribe(j, $('diarize').checked && !translate);
    drawTimeline(j.body);
    const segs = j.body.segments;
    const speakers = new Set(segs.map(segmentSpeaker).filter((x) => x !== null)).size;
    $('file-summary').textContent = [`${file.name}`, clock(j.body.duration ?? 0), j.body.language, `${segs.length} segments`,
      speakers ? `${speakers} speakers` : null].filter(Boolean).join(' · ');
    showTranscript(j.body);
    $('file-result').hidden = false;
  } catch (err) {
    showError($('file-error'), String(err));
  } finally {
    $('progress').hidden = true;
    $('upload').disabled = false;
  }
});
