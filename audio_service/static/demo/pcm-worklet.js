// AudioWorklet: microphone float samples at the context's rate -> mono PCM16 frames at `targetRate`
// (16 kHz unless the page asks for another: the realtime page sends OpenAI's 24 kHz).
// Runs on the audio rendering thread; posts an Int16Array buffer of `frameMs` to the main thread.

class PcmCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameMs = options?.processorOptions?.frameMs ?? 80;
    const targetRate = options?.processorOptions?.targetRate ?? 16000;
    this.ratio = sampleRate / targetRate; // input samples per output sample (`sampleRate` is the context's)
    this.frame = new Int16Array(Math.round((targetRate * frameMs) / 1000));
    this.filled = 0;
    this.pos = 0; // position of the next output sample, in input samples, relative to the current block
    this.carry = new Float32Array(0); // input samples of the previous block still needed
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    // mono: average the channels
    const n = channels[0].length;
    const mono = new Float32Array(this.carry.length + n);
    mono.set(this.carry);
    for (let c = 0; c < channels.length; c++) {
      const ch = channels[c];
      for (let i = 0; i < n; i++) mono[this.carry.length + i] += ch[i] / channels.length;
    }
    // each output sample is the mean of the `ratio` input samples around it: a box low-pass that
    // keeps aliasing down when decimating 48 kHz -> 16 kHz (ratio 1 is a plain copy)
    const half = this.ratio / 2;
    let p = this.pos + this.carry.length;
    while (p + half <= mono.length) {
      const lo = Math.max(0, Math.floor(p - half));
      const hi = Math.max(lo + 1, Math.floor(p + half));
      let sum = 0;
      for (let i = lo; i < hi; i++) sum += mono[i];
      this.push(sum / (hi - lo));
      p += this.ratio;
    }
    const keepFrom = Math.max(0, Math.floor(p - half));
    this.carry = mono.slice(keepFrom);
    this.pos = p - keepFrom - this.carry.length;
    return true;
  }

  push(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.filled === this.frame.length) {
      const out = this.frame.slice();
      this.port.postMessage(out.buffer, [out.buffer]);
      this.filled = 0;
    }
  }
}

registerProcessor('pcm-capture', PcmCaptureProcessor);
