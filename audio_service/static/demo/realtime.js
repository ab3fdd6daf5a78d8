// The realtime page: microphone -> AudioWorklet (24 kHz PCM16) -> OpenAI Realtime transcription
// session -> one <li> per conversation item, filled by its deltas and replaced by its completed transcript.
import { $, apiKey, showError } from './common.js';

const RATE = 24000; // OpenAI's PCM rate
const FRAME_MS = 100;
const MAX_EVENTS = 200; // the event log keeps the newest

let session = null;
const items = new Map(); // item_id -> <li>

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

function item(id) {
  let li = items.get(id);
  if (!li) {
    li = document.createElement('li');
    li.className = 'partial';
    li.dataset.item = id;
    items.set(id, li);
    $('transcript').append(li);
  }
  return li;
}

function logEvent(event) {
  const li = document.createElement('li');
  li.textContent = event.type + (event.item_id ? ` ${event.item_id}` : '');
  $('events').prepend(li);
  while ($('events').children.length > MAX_EVENTS) $('events').lastChild.remove();
}

function onEvent(s, event) {
  logEvent(event);
  switch (event.type) {
    case 'session.created': {
      const manual = $('turn').value === 'manual';
      const turn = manual ? null : { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 };
      const transcription = { model: 'whisper-1', language: $('language').value || null };
      s.ws.send(JSON.stringify({
        type: 'session.update',
        session: { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: RATE }, transcription, turn_detection: turn } } },
      }));
      break;
    }
    case 'session.updated':
      if (!s.started) {
        s.started = true;
        s.source.connect(s.worklet); // audio flows once the session has its configuration
        $('commit').disabled = $('clear').disabled = false;
        setStatus(`listening (${s.ctx.sampleRate} Hz capture → ${RATE / 1000} kHz)`);
      }
      break;
    case 'input_audio_buffer.speech_started':
      item(event.item_id).textContent = '…';
      break;
    case 'conversation.item.input_audio_transcription.delta': {
      const li = item(event.item_id);
      li.textContent = (li.textContent === '…' ? '' : li.textContent) + event.delta;
      break;
    }
    case 'conversation.item.input_audio_transcription.completed': {
      const li = item(event.item_id);
      li.textContent = event.transcript;
      li.className = event.transcript ? 'final' : 'empty';
      if (s.stopping && --s.waiting <= 0) s.ws.close(1000);
      break;
    }
    case 'error':
      s.error = event.error;
      showError($('live-error'), `${event.error.code ?? event.error.type}: ${event.error.message}`);
      if (s.stopping) s.ws.close(1000);
      break;
    default:
      break;
  }
}

async function openAudio(stream) {
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: RATE });
    await ctx.audioWorklet.addModule('pcm-worklet.js');
  } catch (err) {
    if (ctx) ctx.close();
    ctx = new AudioContext(); // the worklet resamples from the device rate instead
    await ctx.audioWorklet.addModule('pcm-worklet.js');
  }
  return { ctx, source: ctx.createMediaStreamSource(stream) };
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

async function start() {
  $('start').disabled = true;
  items.clear();
  $('transcript').replaceChildren();
  $('events').replaceChildren();
  showError($('live-error'), null);
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  } catch (err) {
    showError($('live-error'), `Microphone unavailable: ${err.message}`);
    $('start').disabled = false;
    return;
  }
  const { ctx, source } = await openAudio(media);
  const worklet = new AudioWorkletNode(ctx, 'pcm-capture', { processorOptions: { frameMs: FRAME_MS, targetRate: RATE } });
  // browsers cannot set headers on a WebSocket: the key goes in OpenAI's subprotocol
  const protocols = ['realtime', ...(apiKey() ? [`openai-insecure-api-key.${apiKey()}`] : [])];
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/v1/realtime?intent=transcription`, protocols);
  const s = { ws, ctx, media, source, worklet, started: false, stopping: false, waiting: 0, error: null };
  session = s;
  worklet.port.onmessage = (ev) => {
    if (ws.readyState === WebSocket.OPEN && !s.stopping) {
      ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: base64(ev.data) }));
    }
  };
  ws.onopen = () => {
    setStatus('connected: configuring the session…');
    $('stop').disabled = false;
  };
  ws.onmessage = (e) => onEvent(s, JSON.parse(e.data));
  ws.onclose = (e) => {
    teardown(s);
    if (s.error || e.code !== 1000) setStatus(`closed (${e.code})`, true);
    else setStatus('done');
  };
}

function teardown(s) {
  s.media.getTracks().forEach((t) => t.stop());
  s.worklet.port.onmessage = null;
  s.worklet.disconnect();
  if (s.ctx.state !== 'closed') s.ctx.close();
  $('start').disabled = false;
  $('stop').disabled = $('commit').disabled = $('clear').disabled = true;
  if (session === s) session = null;
}

function send(type) {
  if (session && session.ws.readyState === WebSocket.OPEN) session.ws.send(JSON.stringify({ type }));
}

function stop() {
  if (!session) return;
  const s = session;
  s.stopping = true;
  s.media.getTracks().forEach((t) => t.stop());
  $('stop').disabled = true;
  // the items still open: a commit ends the last one; close once each is completed
  s.waiting = [...items.values()].filter((li) => li.className === 'partial').length || 1;
  setStatus('finishing: waiting for the last transcript…');
  send('input_audio_buffer.commit');
  setTimeout(() => s.ws.readyState === WebSocket.OPEN && s.ws.close(1000), 10000);
}

$('start').addEventListener('click', start);
$('stop').addEventListener('click', stop);
$('commit').addEventListener('click', () => send('input_audio_buffer.commit'));
$('clear').addEventListener('click', () => send('input_audio_buffer.clear'));
