// audio-service client for Node >= 18: batch endpoints over native fetch/FormData, streaming over `ws`.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import WebSocket from 'ws';

export const SAMPLE_RATE = 16000;
const STREAM_PATH = '/v1/audio/transcriptions/streaming';

/** An error answered by the server (HTTP status or WebSocket error message), with its fields. */
export class AudioServiceError extends Error {
  constructor(message, { type = null, param = null, code = null, status = null, body = null } = {}) {
    super(message);
    this.name = 'AudioServiceError';
    Object.assign(this, { type, param, code, status, body });
  }
}

/** The streaming endpoint sent an error and/or closed with an error code. */
export class StreamError extends AudioServiceError {
  constructor(message, fields = {}, closeCode = null) {
    super(message, fields);
    this.name = 'StreamError';
    this.closeCode = closeCode;
  }
}

function errorFromBody(status, body) {
  const err = body && typeof body === 'object' ? body.error : null;
  const message = err?.message ?? (typeof body === 'string' && body ? body : `HTTP ${status}`);
  return new AudioServiceError(message, { type: err?.type ?? null, param: err?.param ?? null, code: err?.code ?? null, status, body });
}

/** Server parameters -> form/query strings; undefined/null mean "server default" and are left out. */
function toFields(params) {
  const out = {};
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) out[key] = value.join(',');
    else if (typeof value === 'object') out[key] = JSON.stringify(value);
    else out[key] = String(value);
  }
  return out;
}

async function filePart(file) {
  if (typeof file === 'string' && /^https?:\/\//i.test(file)) return { url: file };
  if (typeof file === 'string') {
    // openAsBlob (Node >= 19.8) streams the file from disk instead of holding it in memory
    const blob = fs.openAsBlob ? await fs.openAsBlob(file) : new Blob([await readFile(file)]);
    return { blob, name: basename(file) };
  }
  if (file instanceof Blob) return { blob: file, name: file.name ?? 'audio' };
  if (file instanceof Uint8Array || file instanceof ArrayBuffer) return { blob: new Blob([file]), name: 'audio' };
  throw new TypeError('file must be a path, an http(s) URL, a Blob, a Buffer/Uint8Array or an ArrayBuffer');
}

/** The merged transcript of a stream: the state by segment id, final vs partial. */
export class StreamTranscript {
  constructor() {
    this.segments = new Map();
    this.changedAfterFinal = [];
  }

  static isFinal(seg) {
    const words = seg.words ?? [];
    return Boolean(seg.is_final || (words.length && words[words.length - 1].is_final));
  }

  apply(segments) {
    for (const seg of segments) {
      const old = this.segments.get(seg.id);
      if (old && StreamTranscript.isFinal(old) && old.text !== seg.text) this.changedAfterFinal.push(seg.id);
      this.segments.set(seg.id, seg);
    }
  }

  ordered() {
    return [...this.segments.keys()].sort((a, b) => Number(a) - Number(b)).map((k) => this.segments.get(k));
  }

  #join(filter) {
    return this.ordered().filter(filter).map((s) => s.text.trim()).filter(Boolean).join(' ');
  }

  get text() { return this.#join(() => true); }
  get finalText() { return this.#join((s) => StreamTranscript.isFinal(s)); }
  get partialText() { return this.#join((s) => !StreamTranscript.isFinal(s)); }
  /** `{id: text}`, as the reference's example clients keep it. */
  get state() { return Object.fromEntries(this.ordered().map((s) => [s.id, s.text])); }
}

/** Put in a chunk iterable to get `{checkpoint_id}` back once everything before it is final. */
export const checkpoint = (checkpointId) => ({ checkpointId: String(checkpointId) });
/** Put in a chunk iterable to get a trace echo once everything before it is processed. */
export const traceProbe = (traceId, eventId = traceId) => ({ traceId, eventId });

function toPcmBuffer(chunk) {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Int16Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof Float32Array) {
    const out = Buffer.alloc(chunk.length * 2);
    chunk.forEach((v, i) => out.writeInt16LE(Math.round(Math.max(-1, Math.min(1, v)) * 32767), i * 2));
    return out;
  }
  if (chunk instanceof Uint8Array || chunk instanceof ArrayBuffer) return Buffer.from(chunk);
  throw new TypeError('audio chunks must be PCM16LE Buffers, Int16Array or Float32Array (16 kHz mono)');
}

/** Frames of `frameMs` from PCM16 (a Buffer/Int16Array holding a whole recording). */
export function* pcmFrames(pcm, frameMs = 100) {
  const buf = toPcmBuffer(pcm);
  const step = (SAMPLE_RATE * frameMs / 1000) * 2;
  for (let i = 0; i < buf.length; i += step) yield buf.subarray(i, Math.min(i + step, buf.length));
}

/** Decode any audio file to 16 kHz mono PCM16LE with the `ffmpeg` command. */
export function decodeWithFfmpeg(path, { ffmpeg = 'ffmpeg' } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(ffmpeg, ['-nostdin', '-loglevel', 'error', '-i', path, '-f', 's16le', '-ac', '1', '-ar', String(SAMPLE_RATE), '-']);
    const parts = [];
    let stderr = '';
    proc.stdout.on('data', (d) => parts.push(d));
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve(Buffer.concat(parts)) : reject(new Error(`ffmpeg failed (${code}): ${stderr.trim()}`))));
  });
}

/** PCM16 samples of a 16 kHz mono 16-bit WAV file (no ffmpeg needed). */
export function parseWav(bytes) {
  const buf = Buffer.from(bytes);
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a WAV file');
  let fmt = null;
  for (let off = 12; off + 8 <= buf.length;) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    if (id === 'fmt ') fmt = { format: buf.readUInt16LE(off + 8), channels: buf.readUInt16LE(off + 10), rate: buf.readUInt32LE(off + 12), bits: buf.readUInt16LE(off + 22) };
    if (id === 'data') {
      if (!fmt || fmt.format !== 1 || fmt.channels !== 1 || fmt.rate !== SAMPLE_RATE || fmt.bits !== 16) {
        throw new Error('parseWav reads 16 kHz mono PCM16 WAV only; use decodeWithFfmpeg for anything else');
      }
      return buf.subarray(off + 8, off + 8 + size);
    }
    off += 8 + size + (size % 2);
  }
  throw new Error('WAV file has no data chunk');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A streaming session: `for await (const update of stream)`; `await stream.result()`.
 * Updates: `{kind: 'segments'|'checkpoint'|'trace'|'other', segments, checkpointId, traceId, transcript, raw}`.
 */
export class TranscriptionStream {
  constructor(url, headers, source, { frameMs = 100, speed = null, finalTimeoutMs = 120000 } = {}) {
    Object.assign(this, { url, headers, source, frameMs, speed, finalTimeoutMs });
    this.transcript = new StreamTranscript();
  }

  async result() {
    // eslint-disable-next-line no-unused-vars
    for await (const _ of this);
    return this.transcript;
  }

  async *[Symbol.asyncIterator]() {
    const ws = new WebSocket(this.url, { headers: this.headers, maxPayload: 0 });
    const queue = [];
    let wake = null;
    let closed = null;
    let error = null;
    const push = (item) => { queue.push(item); if (wake) { wake(); wake = null; } };
    ws.on('message', (data, isBinary) => { if (!isBinary) push(JSON.parse(data.toString())); });
    ws.on('close', (code, reason) => { closed = { code, reason: reason.toString() }; push(null); });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let parsed = body;
        try { parsed = JSON.parse(body); } catch { /* not JSON */ }
        error = errorFromBody(res.statusCode, parsed);
        push(null);
      });
    });
    ws.on('error', (err) => { error ??= new AudioServiceError(`WebSocket error: ${err.message}`); push(null); });
    await new Promise((resolve) => { ws.once('open', resolve); ws.once('close', resolve); ws.once('unexpected-response', resolve); ws.once('error', resolve); });
    let sendDone = false;
    const sending = ws.readyState === WebSocket.OPEN
      ? this.#send(ws).catch((err) => { error ??= err; ws.close(1011, 'client source failed'); }).finally(() => { sendDone = true; })
      : Promise.resolve();
    let serverError = null;
    let timer = null;
    try {
      for (;;) {
        if (!queue.length) {
          await new Promise((resolve) => {
            wake = resolve;
            // after the audio ended, the final checkpoint must come within finalTimeoutMs
            if (sendDone) timer = setTimeout(() => { error ??= new StreamError(`no final checkpoint within ${this.finalTimeoutMs} ms`); resolve(); }, this.finalTimeoutMs);
          });
          clearTimeout(timer);
          if (!queue.length && error) throw error;
          continue;
        }
        const msg = queue.shift();
        if (msg === null) {
          if (error) throw error;
          const err = serverError ?? {};
          throw new StreamError(err.message ?? `stream closed with code ${closed?.code} before the final checkpoint`, err, closed?.code ?? null);
        }
        if (msg.error && typeof msg.error === 'object') { serverError = msg.error; continue; }
        const update = this.#update(msg);
        yield update;
        if (update.kind === 'checkpoint' && update.checkpointId === 'final') return;
      }
    } finally {
      clearTimeout(timer);
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
      await sending;
    }
  }

  #update(msg) {
    const t = this.transcript;
    if (Array.isArray(msg.segments)) { t.apply(msg.segments); return { kind: 'segments', segments: msg.segments, transcript: t, raw: msg }; }
    if ('checkpoint_id' in msg) return { kind: 'checkpoint', checkpointId: String(msg.checkpoint_id), transcript: t, raw: msg };
    if (msg.object === 'stt.output.trace') return { kind: 'trace', traceId: msg.trace_id, transcript: t, raw: msg };
    return { kind: 'other', transcript: t, raw: msg };
  }

  async *#items() {
    const src = this.source;
    if (Buffer.isBuffer(src) || src instanceof Int16Array || src instanceof Float32Array) yield* pcmFrames(src, this.frameMs);
    else if (typeof src === 'string') yield* pcmFrames(await decodeWithFfmpeg(src), this.frameMs);
    else if (src && (Symbol.asyncIterator in src || Symbol.iterator in src)) yield* src;
    else throw new TypeError('stream source must be a path, PCM16 Buffer/Int16Array/Float32Array or an (async) iterable of chunks');
  }

  async #send(ws) {
    const t0 = Date.now();
    let sentS = 0;
    for await (const item of this.#items()) {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (item && item.checkpointId !== undefined) ws.send(JSON.stringify({ checkpoint_id: item.checkpointId }));
      else if (item && item.traceId !== undefined) ws.send(JSON.stringify({ event_id: item.eventId, object: 'stt.input.trace', trace_id: item.traceId }));
      else {
        const buf = toPcmBuffer(item);
        ws.send(buf);
        sentS += buf.length / 2 / SAMPLE_RATE;
        if (this.speed) {
          const wait = t0 + (sentS / this.speed) * 1000 - Date.now();
          if (wait > 0) await sleep(wait);
        }
      }
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ checkpoint_id: 'final' }));
  }
}

/** Client for one audio-service server. `baseUrl` defaults to $AUDIO_SERVICE_URL or http://127.0.0.1:8000. */
export class AudioServiceClient {
  constructor({ baseUrl = process.env.AUDIO_SERVICE_URL ?? 'http://127.0.0.1:8000', apiKey = process.env.AUDIO_SERVICE_API_KEY ?? null, keyInQuery = false } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.apiKey = apiKey || null;
    this.keyInQuery = keyInQuery;
  }

  #headers() { return this.apiKey ? { Authorization: `Bearer ${this.apiKey}` } : {}; }

  async #request(path, init = {}) {
    const res = await fetch(this.baseUrl + path, { ...init, headers: { ...this.#headers(), ...(init.headers ?? {}) } });
    const isJson = (res.headers.get('content-type') ?? '').startsWith('application/json');
    const body = isJson ? await res.json() : await res.text();
    if (!res.ok) throw errorFromBody(res.status, body);
    return { res, body, isJson };
  }

  async #post(path, file, params) {
    const form = new FormData();
    const part = await filePart(file);
    if (part.url) form.append('file', part.url);
    else form.append('file', part.blob, part.name);
    for (const [k, v] of Object.entries(toFields(params))) form.append(k, v);
    const { res, body, isJson } = await this.#request(path, { method: 'POST', body: form });
    if (!isJson) return body;
    const headers = {};
    res.headers.forEach((v, k) => { if (k.startsWith('x-audio-service-')) headers[k] = v; });
    return { ...body, headers };
  }

  /** POST /v1/audio/transcriptions. `diarize: true` implies verbose_json with word timestamps unless given. */
  transcribe(file, params = {}) {
    const p = { ...params };
    if (p.diarize) {
      p.response_format ??= 'verbose_json';
      p.timestamp_granularities ??= ['word', 'segment'];
    }
    return this.#post('/v1/audio/transcriptions', file, p);
  }

  /** POST /v1/audio/translations (speech -> English text). */
  translate(file, params = {}) { return this.#post('/v1/audio/translations', file, params); }

  /** POST /v1/audio/alignments: force-align known `text` to the audio (servers with alignment). */
  align(file, text, params = {}) { return this.#post('/v1/audio/alignments', file, { response_format: 'verbose_json', ...params, text }); }

  /** GET /v1/models. */
  async models() { return (await this.#request('/v1/models')).body.data; }

  /** True once the server's models are loaded (GET /ready). */
  async ready() {
    try { return (await fetch(`${this.baseUrl}/ready`)).ok; } catch { return false; }
  }

  /** Open a streaming session; see TranscriptionStream. Options: frameMs, speed (1 = real time), finalTimeoutMs. */
  stream(source, params = {}, options = {}) {
    const query = toFields({ response_format: 'verbose_json', ...params });
    if (this.apiKey && this.keyInQuery) query.Authorization = this.apiKey;
    const url = new URL(this.baseUrl + STREAM_PATH);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = new URLSearchParams(query).toString();
    return new TranscriptionStream(url.toString(), this.keyInQuery ? {} : this.#headers(), source, options);
  }
}
