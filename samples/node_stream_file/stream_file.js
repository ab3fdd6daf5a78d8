// Stream an audio file to audio-service and print the merged transcript state as it changes.
//   node samples/node_stream_file/stream_file.js FILE [--speed 1] [--url URL] [--language en]
// .wav files at 16 kHz mono PCM16 are read directly; anything else is decoded with ffmpeg.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { AudioServiceClient, decodeWithFfmpeg, parseWav } from '../../clients/node/src/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    'api-key': { type: 'string' },
    language: { type: 'string' },
    speed: { type: 'string', default: '1' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node samples/node_stream_file/stream_file.js FILE [--speed 1] [--url URL] [--language en]');
  process.exit(2);
}
const file = positionals[0];

async function loadPcm(path) {
  if (path.toLowerCase().endsWith('.wav')) {
    try { return parseWav(readFileSync(path)); } catch { /* not 16 kHz mono PCM16: fall back to ffmpeg */ }
  }
  return decodeWithFfmpeg(path);
}

const client = new AudioServiceClient({ baseUrl: values.url, apiKey: values['api-key'] });
const pcm = await loadPcm(file);
const speed = Number(values.speed) || null;
const stream = client.stream(pcm, { language: values.language }, { speed });
try {
  for await (const update of stream) {
    if (update.kind !== 'segments') continue;
    // the merged state: every segment by id, final ones marked
    const lines = update.transcript.ordered().map((s) => `  ${s.id} ${s.is_final ? 'final  ' : 'partial'} ${s.text.trim()}`);
    console.log(`state after patch of ${update.segments.map((s) => s.id).join(',')}:\n${lines.join('\n')}`);
  }
  console.log(`TRANSCRIPT: ${stream.transcript.text}`);
} catch (err) {
  console.error(`error: ${err.message}`);
  process.exit(1);
}
