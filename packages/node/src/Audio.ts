/**
 * 16-bit PCM in and out of the node LiveKit adapter: a tone generator, a WAV
 * (RIFF) reader, and level measures so tests can tell sound from silence.
 * Pure functions over `Int16Array`; file access is the only effect.
 */
import { readFile } from "node:fs/promises"
import { Effect, Schema } from "effect"

/** Interleaved signed 16-bit samples. */
export interface Pcm {
  readonly samples: Int16Array
  readonly sampleRate: number
  readonly channels: number
}

export class AudioFailed extends Schema.TaggedError<AudioFailed>()("AudioFailed", {
  reason: Schema.Literal("FileUnreadable", "NotWav", "UnsupportedWav", "Publish", "Subscribe"),
  path: Schema.optional(Schema.String),
  detail: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    const where = this.path !== undefined ? ` (${this.path})` : ""
    switch (this.reason) {
      case "FileUnreadable":
        return `cannot read the audio file${where}`
      case "NotWav":
        return `not a RIFF/WAVE file${where}${this.detail ? `: ${this.detail}` : ""}`
      case "UnsupportedWav":
        return `only 16-bit PCM WAV is supported${where}${this.detail ? `: ${this.detail}` : ""}`
      case "Publish":
        return `publishing audio to the SFU failed${this.detail ? `: ${this.detail}` : ""}`
      case "Subscribe":
        return `receiving remote audio failed${this.detail ? `: ${this.detail}` : ""}`
    }
  }
}

// ---------------------------------------------------------------------------------------
// Tone

/** Sample `index` of a sine at `toneHz` (continuous across frames when `index` keeps counting). */
export const toneSample = (index: number, toneHz: number, sampleRate: number, amplitude: number): number =>
  Math.round(Math.sin((2 * Math.PI * toneHz * index) / sampleRate) * amplitude * 32767)

/** `samplesPerChannel` samples of a sine starting at sample `offset`, same value on every channel. */
export const toneFrame = (options: {
  readonly toneHz: number
  readonly sampleRate: number
  readonly channels: number
  readonly samplesPerChannel: number
  readonly offset: number
  readonly amplitude: number
}): Int16Array => {
  const out = new Int16Array(options.samplesPerChannel * options.channels)
  for (let i = 0; i < options.samplesPerChannel; i++) {
    const v = toneSample(options.offset + i, options.toneHz, options.sampleRate, options.amplitude)
    for (let c = 0; c < options.channels; c++) out[i * options.channels + c] = v
  }
  return out
}

// ---------------------------------------------------------------------------------------
// WAV (RIFF): "RIFF" size "WAVE", then chunks; we need "fmt " (PCM, 16 bit) and "data".

const ascii = (view: DataView, at: number) =>
  String.fromCharCode(view.getUint8(at), view.getUint8(at + 1), view.getUint8(at + 2), view.getUint8(at + 3))

/** Parses a 16-bit PCM WAV file image. WAVE_FORMAT_EXTENSIBLE is accepted when its sub-format is PCM. */
export const parseWav = (bytes: Uint8Array, path?: string): Effect.Effect<Pcm, AudioFailed> =>
  Effect.suspend(() => {
    const fail = (reason: "NotWav" | "UnsupportedWav", detail: string) =>
      Effect.fail(new AudioFailed({ reason, detail, ...(path !== undefined ? { path } : {}) }))
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (bytes.byteLength < 12 || ascii(view, 0) !== "RIFF" || ascii(view, 8) !== "WAVE") {
      return fail("NotWav", "missing RIFF/WAVE header")
    }
    let fmt: { format: number; channels: number; sampleRate: number; bits: number } | undefined
    let at = 12
    while (at + 8 <= bytes.byteLength) {
      const id = ascii(view, at)
      const size = view.getUint32(at + 4, true)
      const body = at + 8
      if (id === "fmt ") {
        if (size < 16 || body + 16 > bytes.byteLength) return fail("NotWav", "short fmt chunk")
        let format = view.getUint16(body, true)
        // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
        if (format === 0xfffe && size >= 40) format = view.getUint16(body + 24, true)
        fmt = {
          format,
          channels: view.getUint16(body + 2, true),
          sampleRate: view.getUint32(body + 4, true),
          bits: view.getUint16(body + 14, true)
        }
      } else if (id === "data") {
        if (fmt === undefined) return fail("NotWav", "data chunk before fmt chunk")
        if (fmt.format !== 1) return fail("UnsupportedWav", `format tag ${fmt.format} is not PCM`)
        if (fmt.bits !== 16) return fail("UnsupportedWav", `${fmt.bits} bits per sample`)
        if (fmt.channels < 1 || fmt.sampleRate < 1) return fail("UnsupportedWav", "no channels or sample rate")
        // Writers in the wild put 0 or 0xFFFFFFFF into a streamed data size; take what is there.
        const end = Math.min(body + size, bytes.byteLength)
        const frames = Math.floor((end - body) / (2 * fmt.channels))
        const samples = new Int16Array(frames * fmt.channels)
        for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(body + 2 * i, true)
        return Effect.succeed({ samples, sampleRate: fmt.sampleRate, channels: fmt.channels })
      }
      at = body + size + (size % 2) // chunks are word-aligned
    }
    return fail("NotWav", "no data chunk")
  })

/** Builds a 16-bit PCM WAV image (tests and demos write their fixtures with it). */
export const encodeWav = (pcm: Pcm): Uint8Array => {
  const dataBytes = pcm.samples.length * 2
  const out = new Uint8Array(44 + dataBytes)
  const view = new DataView(out.buffer)
  const put = (at: number, s: string) => {
    for (let i = 0; i < 4; i++) view.setUint8(at + i, s.charCodeAt(i))
  }
  put(0, "RIFF")
  view.setUint32(4, 36 + dataBytes, true)
  put(8, "WAVE")
  put(12, "fmt ")
  view.setUint32(16, 16, true)
  view.setUint16(20, 1, true)
  view.setUint16(22, pcm.channels, true)
  view.setUint32(24, pcm.sampleRate, true)
  view.setUint32(28, pcm.sampleRate * pcm.channels * 2, true)
  view.setUint16(32, pcm.channels * 2, true)
  view.setUint16(34, 16, true)
  put(36, "data")
  view.setUint32(40, dataBytes, true)
  for (let i = 0; i < pcm.samples.length; i++) view.setInt16(44 + 2 * i, pcm.samples[i]!, true)
  return out
}

// node:fs directly: @effect/platform's FileSystem would need @effect/platform-node, which this package avoids.
export const readWav = (path: string): Effect.Effect<Pcm, AudioFailed> =>
  Effect.tryPromise({
    try: (signal) => readFile(path, { signal }),
    catch: (cause) => new AudioFailed({ reason: "FileUnreadable", path, cause })
  }).pipe(Effect.flatMap((bytes) => parseWav(bytes, path)))

// ---------------------------------------------------------------------------------------
// Levels

/** Root mean square, 0..1 of full scale. */
export const rms = (samples: Int16Array): number => {
  if (samples.length === 0) return 0
  let sum = 0
  for (const s of samples) sum += s * s
  return Math.sqrt(sum / samples.length) / 32768
}

/** Largest absolute sample, 0..1 of full scale. */
export const peak = (samples: Int16Array): number => {
  let max = 0
  for (const s of samples) max = Math.max(max, Math.abs(s))
  return max / 32768
}

/** The RMS below which audio counts as silence: about -60 dBFS. */
export const silenceRms = 0.001

/** Silence as the tests mean it: nothing above about -60 dBFS. */
export const isSilent = (samples: Int16Array, threshold = silenceRms): boolean => rms(samples) < threshold
