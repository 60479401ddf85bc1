import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { encodeWav, isSilent, parseWav, peak, rms, toneFrame } from "../src/Audio.ts"

describe("Audio", () => {
  it("a tone frame is loud, a zero frame is silent", () => {
    const tone = toneFrame({ toneHz: 440, sampleRate: 48000, channels: 1, samplesPerChannel: 480, offset: 0, amplitude: 0.3 })
    assert.isFalse(isSilent(tone))
    assert.approximately(rms(tone), 0.3 / Math.SQRT2, 0.01)
    assert.approximately(peak(tone), 0.3, 0.01)
    assert.isTrue(isSilent(new Int16Array(480)))
  })

  it("duplicates the tone on every channel", () => {
    const stereo = toneFrame({ toneHz: 1000, sampleRate: 48000, channels: 2, samplesPerChannel: 48, offset: 7, amplitude: 0.5 })
    for (let i = 0; i < 48; i++) assert.strictEqual(stereo[2 * i], stereo[2 * i + 1])
  })

  it.effect("WAV round trip", () =>
    Effect.gen(function* () {
      const samples = Int16Array.from([0, 1, -1, 32767, -32768, 1234])
      const pcm = yield* parseWav(encodeWav({ samples, sampleRate: 16000, channels: 2 }))
      assert.strictEqual(pcm.sampleRate, 16000)
      assert.strictEqual(pcm.channels, 2)
      assert.deepStrictEqual([...pcm.samples], [...samples])
    }))

  it.effect("skips unknown chunks and rejects non-PCM or non-16-bit files", () =>
    Effect.gen(function* () {
      const wav = encodeWav({ samples: Int16Array.from([5, 6]), sampleRate: 8000, channels: 1 })
      // Insert a LIST chunk (odd size, padded) between fmt and data.
      const list = Uint8Array.from([0x4c, 0x49, 0x53, 0x54, 3, 0, 0, 0, 1, 2, 3, 0])
      const withList = new Uint8Array(wav.length + list.length)
      withList.set(wav.subarray(0, 36))
      withList.set(list, 36)
      withList.set(wav.subarray(36), 36 + list.length)
      const pcm = yield* parseWav(withList)
      assert.deepStrictEqual([...pcm.samples], [5, 6])

      const float = wav.slice()
      float[20] = 3 // IEEE float format tag
      const e1 = yield* Effect.flip(parseWav(float))
      assert.strictEqual(e1.reason, "UnsupportedWav")
      assert.include(e1.message, "format tag 3")
      const eightBit = wav.slice()
      eightBit[34] = 8
      const e2 = yield* Effect.flip(parseWav(eightBit))
      assert.strictEqual(e2.reason, "UnsupportedWav")
      const junk = yield* Effect.flip(parseWav(new Uint8Array(40)))
      assert.strictEqual(junk.reason, "NotWav")
    }))
})
