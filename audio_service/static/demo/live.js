// Live view: microphone -> AudioWorklet (16 kHz PCM16) -> WebSocket; level meter, transcript, lag.
import { $, apiKey, fillRow, showError } from './common.js';

const FRAME_MS = 80; // 50-100 ms frames, as the streaming protocol recommends
const TRACE_EVERY_S = 1.0; // a trace probe per second of audio sent: the lag figure stays fresh

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

// ---- input level meter ------------------------------------------------------------------------
let level = 0;

/** Move the meter to the loudness of one PCM16 frame: RMS in dBFS mapped from -60..0 dB to 0..100. */
function meter(frame) {
  const pcm = new Int16Array(frame);
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
  const rms = Math.sqrt(sum / Math.max(1, pcm.length)) / 32768;
  const target = Math.max(0, Math.min(1, (20 * Math.log10(rms + 1e-9) + 60) / 60));
  // fast attack, slow release: speech onsets show at once, the bar falls smoothly in pauses
  level = target > level ? target : level * 0.7 + target * 0.3;
  const pct = Math.round(level * 100);
  const el = $('level');
  el.style.setProperty('--level', `${pct}%`);
  el.setAttribute('aria-valuenow', String(pct));
  el.setAttribute('aria-valuetext', `${pct} percent`);
}

function resetMeter() {
  level = 0;
  $('level').style.setProperty('--level', '0%');
  $('level').setAttribute('aria-valuenow', '0');
}

// ---- transcript: one <li> per segment id, patched in place ------------------------------------
const rows = new Map();
const isFinal = (seg) => Boolean(seg.is_final || (seg.words?.length && seg.words[seg.words.length - 1].is_final));

function applySegments(list) {
  const root = $('transcript');
  for (const seg of list) {
    const id = Number(seg.id);
    let li = rows.get(id);
    if (!li) {
      li = document.createElement('li');
      rows.set(id, li);
      // ids increase; insert in order in case a patch names an older segment first
      const after = [...rows.keys()].filter((k) => k > id).sort((a, b) => a - b)[0];
      root.insertBefore(li, after === undefined ? null : rows.get(after));
    }
    const final = isFinal(seg);
    fillRow(li, seg, final);
    // partial text would flood a screen reader; only final segments are announced
    li.setAttribute('aria-hidden', final ? 'false' : 'true');
  }
}

// ---- streaming session ------------------------------------------------------------------------
let session = null;

function streamUrl() {
  const q = new URLSearchParams({ response_format: 'verbose_json' });
  if ($('language').value) q.set('language', $('language').value);
  if ($('diarize').checked) q.set('diarize', 'true');
  // browsers cannot set headers on a WebSocket: the key goes in the query, as the protocol allows
  if (apiKey()) q.set('Authorization', apiKey());
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/v1/audio/transcriptions/streaming?${q}`;
}

async function openAudio(stream) {
  // Ask for a 16 kHz context so the browser's own resampler does most of the work; where that is
  // refused, the worklet resamples from the device rate itself.
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: 16000 });
    await ctx.audioWorklet.addModule('pcm-worklet.js');
  } catch (err) {
    if (ctx) ctx.close();
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule('pcm-worklet.js');
  }
  return { ctx, source: ctx.createMediaStreamSource(stream) };
}

function onFrame(s, frame) {
  if (s.ws.readyState !== WebSocket.OPEN || s.stopping) return;
  s.ws.send(frame);
  meter(frame);
  s.sent += frame.byteLength / 2 / 16000;
  $('sent').textContent = `${s.sent.toFixed(1)} s`;
  if (s.sent >= s.nextTrace) {
    s.nextTrace += TRACE_EVERY_S;
    s.ws.send(JSON.stringify({ object: 'stt.input.trace', trace_id: `t${s.traces++}` }));
  }
}

function onMessage(s, e) {
  const msg = JSON.parse(e.data);
  if (msg.error) {
    // the server closes the socket right after an error: keep its words for the close handler
    s.error = msg.error;
    return;
  }
  if (Array.isArray(msg.segments)) {
    applySegments(msg.segments);
  } else if (msg.object === 'stt.output.trace' && typeof msg.lag_s === 'number') {
    $('lag').textContent = `${msg.lag_s.toFixed(2)} s`;
  } else if (msg.checkpoint_id === 'final') {
    setStatus('done: every segment is final');
    s.ws.close(1000);
  }
}

function onClose(s, e) {
  teardown(s);
  if (s.error) {
    const code = s.error.code ? ` [${s.error.code}]` : '';
    showError($('live-error'), `The server closed the stream (${e.code})${code}: ${s.error.message}`);
    setStatus('stopped by an error', true);
  } else if (!s.stopping || e.code !== 1000) {
    const why = e.reason || (e.code === 1006 ? 'the connection was lost' : 'no reason given');
    showError($('live-error'), `The stream closed (${e.code}): ${why}`);
    setStatus('closed', true);
  }
}

async function start() {
  $('start').disabled = true;
  rows.clear();
  $('transcript').replaceChildren();
  showError($('live-error'), null);
  $('lag').textContent = '–';
  $('sent').textContent = '–';
  setStatus('starting microphone…');
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  } catch (err) {
    showError($('live-error'), `Microphone unavailable: ${err.message}`);
    setStatus('idle');
    $('start').disabled = false;
    return;
  }
  let audio;
  try {
    audio = await openAudio(media);
  } catch (err) {
    media.getTracks().forEach((t) => t.stop());
    showError($('live-error'), `This browser cannot process microphone audio here (AudioWorklet): ${err.message}`);
    setStatus('idle');
    $('start').disabled = false;
    return;
  }
  const { ctx, source } = audio;
  const ws = new WebSocket(streamUrl());
  ws.binaryType = 'arraybuffer';
  const worklet = new AudioWorkletNode(ctx, 'pcm-capture', { processorOptions: { frameMs: FRAME_MS } });
  const s = { ws, ctx, media, worklet, stopping: false, sent: 0, nextTrace: TRACE_EVERY_S, traces: 0, error: null };
  session = s;
  ws.onopen = () => {
    setStatus(`streaming (${ctx.sampleRate} Hz capture → 16 kHz)`);
    $('stop').disabled = false;
    worklet.port.onmessage = (ev) => onFrame(s, ev.data);
    source.connect(worklet); // the worklet outputs nothing audible; it need not reach the speakers
  };
  ws.onmessage = (e) => onMessage(s, e);
  ws.onclose = (e) => onClose(s, e);
}

function teardown(s) {
  s.media.getTracks().forEach((t) => t.stop());
  s.worklet.port.onmessage = null;
  s.worklet.disconnect();
  if (s.ctx.state !== 'closed') s.ctx.close();
  resetMeter();
  $('start').disabled = false;
  $('stop').disabled = true;
  if (session === s) session = null;
}

function stop() {
  if (!session) return;
  const s = session;
  s.stopping = true;
  s.media.getTracks().forEach((t) => t.stop());
  resetMeter();
  $('stop').disabled = true;
  setStatus('finishing: waiting for the final segments…');
  // the final checkpoint flushes: the server finalizes everything, echoes it, and we close
  if (s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify({ checkpoint_id: 'final' }));
}

$('start').addEventListener('click', start);
$('stop').addEventListener('click', stop);
