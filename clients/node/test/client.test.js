// The Node client against a real server: batch, streaming merge, an error case.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { AudioServiceClient, AudioServiceError, StreamError, checkpoint, decodeWithFfmpeg, parseWav, pcmFrames, traceProbe } from '../src/index.js';
import { DATA, startServer } from './server.js';

const JFK = join(DATA, 'jfk.flac');
const JFK_WORDS = 'and so my fellow americans ask not what your country can do for you ask what you can do for your country'.split(' ');
const words = (s) => s.toLowerCase().replace(/[^\w\s']/g, ' ').split(/\s+/).filter(Boolean);
// share of reference words found in order-insensitive bag: a cheap recall check that tolerates one slip
const recall = (text) => { const got = words(text); return JFK_WORDS.filter((w) => got.includes(w)).length / JFK_WORDS.length; };

let server;
let client;
before(async () => { server = await startServer(); client = new AudioServiceClient({ baseUrl: server.baseUrl }); });
after(async () => { await server?.stop(); });

test('transcribe verbose_json with words, and srt', async () => {
  const t = await client.transcribe(JFK, { response_format: 'verbose_json', timestamp_granularities: ['word', 'segment'], language: 'en' });
  assert.ok(recall(t.text) >= 0.9, t.text);
  assert.equal(t.task, 'transcribe');
  assert.ok(t.segments.length > 0 && t.words.length >= 20);
  assert.ok(t.headers['x-audio-service-model']);
  const srt = await client.transcribe(readFileSync(JFK), { response_format: 'srt' });
  assert.match(srt, /^1\r?\n\d\d:\d\d:\d\d,\d{3} --> /);
});

test('translate and models', async () => {
  const t = await client.translate(JFK);
  assert.ok(recall(t.text) >= 0.85, t.text);
  assert.ok((await client.models()).some((m) => m.id === 'whisper-base'));
});

test('server errors raise with the server message', async () => {
  await assert.rejects(client.transcribe(JFK, { language: 'xx' }), (err) => {
    assert.ok(err instanceof AudioServiceError);
    assert.equal(err.status, 400);
    assert.equal(err.param, 'language');
    assert.match(err.message, /unsupported language/);
    return true;
  });
  await assert.rejects(client.stream(JFK, { language: 'xx' }).result(), (err) => {
    assert.ok(err instanceof StreamError, String(err));
    assert.equal(err.param, 'language');
    assert.notEqual(err.closeCode, 1000);
    return true;
  });
});

test('streaming merges segment patches by id, with checkpoints and trace echoes', async () => {
  const pcm = await decodeWithFfmpeg(JFK);
  async function* chunks() {
    let i = 0;
    for (const frame of pcmFrames(pcm, 100)) {
      if (i === 30) yield traceProbe('t1');
      if (i === 60) yield checkpoint('mid');
      yield frame;
      i += 1;
    }
  }
  const stream = client.stream(chunks(), { language: 'en' });
  const kinds = [];
  const checkpoints = [];
  let traced = false;
  for await (const u of stream) {
    kinds.push(u.kind);
    if (u.kind === 'checkpoint') checkpoints.push(u.checkpointId);
    if (u.kind === 'trace' && u.traceId === 't1') traced = true;
  }
  const t = stream.transcript;
  assert.deepEqual(checkpoints, ['mid', 'final']);
  assert.ok(traced);
  assert.ok(kinds.includes('segments'));
  assert.ok(t.segments.size > 0 && t.ordered().every((s) => s.is_final));
  assert.deepEqual(t.changedAfterFinal, []);
  assert.equal(t.partialText, '');
  assert.ok(recall(t.finalText) >= 0.9, t.finalText);
  assert.deepEqual(Object.keys(t.state).map(Number), t.ordered().map((s) => s.id));
});

test('a 16 kHz wav streams through parseWav', async () => {
  const pcm = parseWav(readFileSync(join(DATA, 'two_speakers.wav')));
  const t = await client.stream(pcm.subarray(0, 16000 * 2 * 12)).result();
  assert.ok(words(t.finalText).length >= 5, t.finalText);
});
