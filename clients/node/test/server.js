// Start the real audio-service server (python -m audio_service serve) on a free loopback port.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DATA = join(REPO, '..', 'shared', 'data');

function python() {
  if (process.env.AUDIO_SERVICE_PYTHON) return process.env.AUDIO_SERVICE_PYTHON;
  const venv = join(REPO, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

const freePort = () => new Promise((res, rej) => {
  const srv = createServer();
  srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => res(port)); });
  srv.on('error', rej);
});

export async function startServer(timeoutMs = 120000) {
  const port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AUDIO_SERVICE_')));
  env.PYTHONPATH = REPO + (process.env.PYTHONPATH ? `:${process.env.PYTHONPATH}` : '');
  const proc = spawn(python(), ['-m', 'audio_service', 'serve', '--server.host', '127.0.0.1', '--server.port', String(port)], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log = (log + d).slice(-4000); });
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${log}`);
    try { if ((await fetch(`${baseUrl}/ready`)).ok) break; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (Date.now() >= deadline) { proc.kill(); throw new Error(`server not ready: ${log}`); }
  return {
    baseUrl,
    stop: () => new Promise((r) => { if (proc.exitCode !== null) return r(); proc.once('exit', r); proc.kill('SIGTERM'); }),
  };
}
