/**
 * SHA-256 (FIPS 180-4) computed synchronously, for the in-memory backends' LiveKit names. Web Crypto's `digest`
 * completes outside the fiber runtime (a promise answered from another thread), so a join whose auth service
 * hashed with it could still be waiting for that answer when a test moved the `TestClock`: with this, the
 * backends run entirely on the fiber runtime, and `TestClock.adjust` sees the join where it really is. Only for
 * tests: the inputs are a few ids long, and speed does not matter.
 */
import * as LiveKitNaming from "../LiveKitNaming.ts"

interface Utf8Encoder {
  encode(input: string): Uint8Array
}

// Core compiles without DOM or Node types; TextEncoder is a global on every platform core runs on.
const utf8 = (s: string): Uint8Array =>
  new (globalThis as unknown as { readonly TextEncoder: new() => Utf8Encoder }).TextEncoder().encode(s)

const primes = (n: number): ReadonlyArray<number> => {
  const out: Array<number> = []
  for (let c = 2; out.length < n; c++) if (out.every((p) => c % p !== 0)) out.push(c)
  return out
}

/** The first 32 bits of the fractional part: how FIPS 180-4 §4.2.2 and §5.3.3 define the constants. */
const fraction32 = (x: number) => Math.floor((x - Math.floor(x)) * 2 ** 32) >>> 0

const K = primes(64).map((p) => fraction32(Math.cbrt(p)))
const H0 = primes(8).map((p) => fraction32(Math.sqrt(p)))

const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n))

export const sha256 = (data: Uint8Array): Uint8Array => {
  // Message, 0x80, zeros, then the length in bits as a 64-bit big-endian number: a multiple of 64 bytes.
  const padded = new Uint8Array(Math.ceil((data.length + 9) / 64) * 64)
  padded.set(data)
  padded[data.length] = 0x80
  const view = new DataView(padded.buffer)
  const bits = data.length * 8
  view.setUint32(padded.length - 8, Math.floor(bits / 2 ** 32))
  view.setUint32(padded.length - 4, bits >>> 0)

  const h = [...H0]
  const w = new Uint32Array(64)
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + 4 * i)
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!
      const b = w[i - 2]!
      const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3)
      const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10)
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) >>> 0
    }
    let [a, b, c, d, e, f, g, hh] = h as [number, number, number, number, number, number, number, number]
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) >>> 0
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0
      hh = g
      g = f
      f = e
      e = (d + t1) >>> 0
      d = c
      c = b
      b = a
      a = (t1 + t2) >>> 0
    }
    ;[a, b, c, d, e, f, g, hh].forEach((x, i) => {
      h[i] = (h[i]! + x) >>> 0
    })
  }
  const out = new Uint8Array(32)
  const outView = new DataView(out.buffer)
  h.forEach((x, i) => outView.setUint32(4 * i, x))
  return out
}

/** `LiveKitNaming.hashJsonArray`, computed on the fiber runtime. */
export const hashJsonArray = (parts: ReadonlyArray<string>): string =>
  LiveKitNaming.base64StdNoPad(sha256(utf8(JSON.stringify(parts))))
