// Pieces shared by the live view (live.js) and the file view (file.js).
export const $ = (id) => document.getElementById(id);

const apiKeyInput = $('api-key');
apiKeyInput.value = localStorage.getItem('audio-service-key') ?? '';
apiKeyInput.addEventListener('change', () => localStorage.setItem('audio-service-key', apiKeyInput.value));

/** The API key typed into the page ('' on an open server). */
export const apiKey = () => apiKeyInput.value;

/** "m:ss.s" for a time in seconds. */
export function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, '0')}`;
}

// One colour per speaker id, in order of appearance, the same in both views (style.css: .spk-N).
const PALETTE_SIZE = 8;
const speakerIndex = new Map();

/** CSS class of a speaker's colour. */
export function speakerClass(speaker) {
  const key = String(speaker);
  if (!speakerIndex.has(key)) speakerIndex.set(key, speakerIndex.size % PALETTE_SIZE);
  return `spk-${speakerIndex.get(key)}`;
}

/** The speaker of a segment: its own speaker_id, else the first word's. */
export function segmentSpeaker(seg) {
  if (seg.speaker_id != null) return String(seg.speaker_id);
  const w = (seg.words ?? []).find((x) => x.speaker_id != null);
  return w ? String(w.speaker_id) : null;
}

/**
 * Fill a transcript row (an <li>) for one segment: time range, speaker chip, text.
 * `final` picks the text's style; the row keeps its element so live updates patch it in place.
 */
export function fillRow(li, seg, final) {
  const speaker = segmentSpeaker(seg);
  li.className = `seg ${final ? 'is-final' : 'is-partial'}`;
  li.dataset.segmentId = String(seg.id);
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = `${clock(seg.start)}–${clock(seg.end)}`;
  const parts = [time];
  if (speaker !== null) {
    const chip = document.createElement('span');
    chip.className = `speaker ${speakerClass(speaker)}`;
    chip.dataset.speaker = speaker;
    chip.textContent = speaker;
    parts.push(chip);
  }
  const text = document.createElement('span');
  text.className = final ? 'final' : 'partial';
  text.textContent = seg.text.trim();
  parts.push(text);
  li.replaceChildren(...parts);
}

/** Show (or hide, with null) an error box's message. */
export function showError(box, message) {
  box.hidden = message == null;
  box.textContent = message ?? '';
}
