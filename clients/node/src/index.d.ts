// Type declarations for audio-service-client (ESM, Node >= 18).

export declare const SAMPLE_RATE: 16000;

export type ResponseFormat = 'json' | 'text' | 'srt' | 'verbose_json' | 'vtt';
export type Granularity = 'word' | 'segment';

export declare class AudioServiceError extends Error {
  type: string | null;
  param: string | null;
  code: string | null;
  /** HTTP status (null for stream errors after the handshake). */
  status: number | null;
  body: unknown;
}

export declare class StreamError extends AudioServiceError {
  /** The WebSocket close code the server used. */
  closeCode: number | null;
}

export interface TranslateParams {
  model?: string;
  language?: string;
  prompt?: string;
  temperature?: number | number[];
  response_format?: ResponseFormat;
  timestamp_granularities?: Granularity[];
  vad_model?: string;
  alignment_model?: string;
  preprocessing?: 'none' | 'dynamic' | 'soft_dynamic' | 'bass_dynamic';
  skip_vad?: boolean;
  max_clip_len?: number;
  [extra: string]: unknown;
}

export interface TranscribeParams extends TranslateParams {
  diarize?: boolean;
  min_speakers?: number;
  max_speakers?: number;
  diarization_model?: string;
}

export interface AlignParams {
  language?: string;
  alignment_model?: string;
  response_format?: ResponseFormat;
  [extra: string]: unknown;
}

export interface Word {
  word: string;
  start: number;
  end: number;
  probability?: number;
  language?: string;
  speaker_id?: string;
}

export interface Segment {
  id: number;
  start: number;
  end: number;
  text: string;
  seek?: number;
  tokens?: number[];
  temperature?: number;
  avg_logprob?: number;
  compression_ratio?: number;
  no_speech_prob?: number;
  speaker_id?: string;
  words?: Word[];
  [extra: string]: unknown;
}

/** A `json` or `verbose_json` response; `headers` has the server's `x-audio-service-*` headers. */
export interface Transcription {
  text: string;
  task?: 'transcribe' | 'translate' | string;
  language?: string;
  duration?: number;
  words?: Word[];
  segments?: Segment[];
  headers: Record<string, string>;
  [extra: string]: unknown;
}

export type FileInput = string | Blob | Uint8Array | ArrayBuffer;

export interface StreamWord {
  word: string;
  start?: number;
  end?: number;
  probability?: number;
  is_final?: boolean;
  speaker_id?: string;
}

export interface StreamSegment {
  id: number;
  text: string;
  start?: number;
  end?: number;
  is_final?: boolean;
  words?: StreamWord[];
  speaker_id?: string;
  [extra: string]: unknown;
}

export declare class StreamTranscript {
  segments: Map<number, StreamSegment>;
  /** Ids of segments whose text changed after they were sent final (stays empty on a correct server). */
  changedAfterFinal: number[];
  static isFinal(seg: StreamSegment): boolean;
  apply(segments: StreamSegment[]): void;
  ordered(): StreamSegment[];
  readonly text: string;
  readonly finalText: string;
  readonly partialText: string;
  readonly state: Record<number, string>;
}

export type StreamUpdate =
  | { kind: 'segments'; segments: StreamSegment[]; transcript: StreamTranscript; raw: object }
  | { kind: 'checkpoint'; checkpointId: string; transcript: StreamTranscript; raw: object }
  | { kind: 'trace'; traceId: unknown; transcript: StreamTranscript; raw: object }
  | { kind: 'other'; transcript: StreamTranscript; raw: object };

export interface CheckpointItem { checkpointId: string }
export interface TraceItem { traceId: unknown; eventId?: unknown }
export type AudioChunk = Buffer | Int16Array | Float32Array | Uint8Array;
export type StreamItem = AudioChunk | CheckpointItem | TraceItem;
/** A file path (decoded with ffmpeg), whole-recording PCM16, or an (async) iterable of 16 kHz chunks. */
export type StreamSource = string | Buffer | Int16Array | Float32Array | Iterable<StreamItem> | AsyncIterable<StreamItem>;

export interface StreamParams {
  language?: string;
  prompt?: string;
  temperature?: number;
  model?: string;
  timestamp_granularities?: Granularity[];
  skip_vad?: boolean;
  vad_kwargs?: Record<string, number>;
  text_timeout_seconds?: number;
  /** speaker_id on segments and words (servers with a streaming speaker tracker). */
  diarize?: boolean;
  [extra: string]: unknown;
}

export interface StreamOptions {
  /** Frame length for whole-recording sources (default 100 ms). */
  frameMs?: number;
  /** 1 = real-time pace; null/0 = as fast as possible (default). */
  speed?: number | null;
  /** How long to wait for the final checkpoint after the audio ended (default 120000). */
  finalTimeoutMs?: number;
}

export declare class TranscriptionStream implements AsyncIterable<StreamUpdate> {
  transcript: StreamTranscript;
  [Symbol.asyncIterator](): AsyncIterator<StreamUpdate>;
  /** Run to the final checkpoint; every segment is final then. */
  result(): Promise<StreamTranscript>;
}

export interface ClientOptions {
  baseUrl?: string;
  apiKey?: string | null;
  /** Send the key as the `Authorization` query parameter on streams (as browsers must). */
  keyInQuery?: boolean;
}

export declare class AudioServiceClient {
  constructor(options?: ClientOptions);
  baseUrl: string;
  transcribe(file: FileInput, params: TranscribeParams & { response_format: 'text' | 'srt' | 'vtt' }): Promise<string>;
  transcribe(file: FileInput, params?: TranscribeParams): Promise<Transcription>;
  translate(file: FileInput, params: TranslateParams & { response_format: 'text' | 'srt' | 'vtt' }): Promise<string>;
  translate(file: FileInput, params?: TranslateParams): Promise<Transcription>;
  align(file: FileInput, text: string, params?: AlignParams): Promise<Transcription | string>;
  models(): Promise<Array<{ id: string; object: 'model'; [k: string]: unknown }>>;
  ready(): Promise<boolean>;
  stream(source: StreamSource, params?: StreamParams, options?: StreamOptions): TranscriptionStream;
}

export declare function checkpoint(checkpointId: string): CheckpointItem;
export declare function traceProbe(traceId: unknown, eventId?: unknown): TraceItem;
export declare function pcmFrames(pcm: Buffer | Int16Array | Float32Array, frameMs?: number): Generator<Buffer>;
export declare function decodeWithFfmpeg(path: string, options?: { ffmpeg?: string }): Promise<Buffer>;
export declare function parseWav(bytes: Uint8Array): Buffer;
