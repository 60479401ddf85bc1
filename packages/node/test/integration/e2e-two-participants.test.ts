// Two Node participants (`matrixrtc join` processes, one playing a tone, the
// other a WAV file) in the stack's room: each sees the other as a call member, as
// a LiveKit participant publishing audio, and receives non-silent samples from it.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Audio from "../../src/Audio.ts"
import {
  type CliEvent,
  freshDeviceId,
  legacyIdentity,
  spawnJoin,
  stack,
  userAt
} from "./e2e-helpers.ts"

const membersOf = (e: CliEvent) => e["members"] as ReadonlyArray<{ userId: string; deviceId: string; rtcBackendIdentity: string }>
const participantsOf = (e: CliEvent) => e["participants"] as ReadonlyArray<{ identity: string; tracks: ReadonlyArray<string> }>

/** A one-second 660 Hz WAV in a temporary directory, removed with the scope. */
const wavFixture = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = mkdtempSync(join(tmpdir(), "matrixrtc-e2e-"))
    const path = join(dir, "tone-660.wav")
    const sampleRate = 48_000
    const samples = Audio.toneFrame({ toneHz: 660, sampleRate, channels: 1, samplesPerChannel: sampleRate, offset: 0, amplitude: 0.3 })
    writeFileSync(path, Audio.encodeWav({ samples, sampleRate, channels: 1 }))
    return { dir, path }
  }),
  ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("two Node participants on the real stack", () => {
  it.scopedLive("see each other as members and LiveKit participants, and hear each other (--tone, --play)", () =>
    Effect.gen(function*() {
      const s = stack()
      const wav = yield* wavFixture
      const peers = [
        { user: userAt(s, 0), deviceId: freshDeviceId("two-a"), media: ["--tone", "440"] },
        { user: userAt(s, 1), deviceId: freshDeviceId("two-b"), media: ["--play", wav.path] }
      ]
      const procs = yield* Effect.forEach(peers, (p) => spawnJoin(s, p.user, p.deviceId, p.media))
      const joined = yield* Effect.forEach(procs, (proc) => proc.waitForEvent((e) => e.event === "joined", 30_000, "joined"))

      for (const [i, proc] of procs.entries()) {
        const other = peers[1 - i]!
        const otherIdentity = legacyIdentity(other.user.userId, other.deviceId)
        // Our joined event tells the identity the SFU knows us by; the other side must see exactly that.
        assert.strictEqual(joined[1 - i]!["livekitIdentity"], otherIdentity)

        const member = yield* proc.waitForEvent(
          (e) => e.event === "member" && membersOf(e).some((m) => m.userId === other.user.userId && m.deviceId === other.deviceId),
          20_000,
          `${peers[i]!.deviceId} to list ${other.deviceId} as a call member`
        )
        assert.strictEqual(
          membersOf(member).find((m) => m.deviceId === other.deviceId)!.rtcBackendIdentity,
          otherIdentity
        )
        yield* proc.waitForEvent(
          (e) => e.event === "participants" && participantsOf(e).some((p) => p.identity === otherIdentity && p.tracks.includes("audio")),
          20_000,
          `${peers[i]!.deviceId} to see ${otherIdentity} on LiveKit with an audio track`
        )
        const audio = yield* proc.waitForEvent(
          (e) => e.event === "audio" && e["identity"] === otherIdentity && e["silent"] === false,
          20_000,
          `${peers[i]!.deviceId} to receive non-silent audio from ${otherIdentity}`
        )
        assert.isAbove(audio["rms"] as number, 0.05, "a tone at amplitude 0.3 has an RMS near 0.21")
      }

      // Both leave cleanly on SIGTERM.
      yield* Effect.forEach(procs, (proc) => proc.kill("SIGTERM"))
      for (const proc of procs) {
        yield* proc.waitForEvent((e) => e.event === "left", 15_000, "left")
        const exit = yield* proc.waitExit(15_000)
        assert.strictEqual(exit.code, 0)
      }
    }), { timeout: 120_000 })
})
