/**
 * The in-memory backends hash LiveKit names synchronously (testing/Sha256.ts), so that a join against them runs on
 * the fiber runtime only and a test can move the TestClock right after forking one.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import { AuthService } from "../src/AuthService.ts"
import * as Call from "../src/Call.ts"
import * as LiveKitNaming from "../src/LiveKitNaming.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as Testing from "../src/testing/index.ts"
import * as Sha256 from "../src/testing/Sha256.ts"
import { roomId, TestHomeserver } from "./utils.ts"

/** Web Crypto's digest answers `ms` of real time late while the scope is open, as on a loaded machine. */
const slowWebCrypto = (ms: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const subtle = globalThis.crypto.subtle
      const digest = subtle.digest
      subtle.digest = ((...args: Parameters<typeof digest>) =>
        new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => digest.apply(subtle, args))) as typeof digest
      return digest
    }),
    (digest) =>
      Effect.sync(() => {
        globalThis.crypto.subtle.digest = digest
      })
  )

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")

describe("Sha256", () => {
  it("the FIPS 180-4 example", () => {
    assert.strictEqual(
      hex(Sha256.sha256(new TextEncoder().encode("abc"))),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
  })

  it.effect("equals Web Crypto for every length across the padding boundaries, and for UTF-8 text", () =>
    Effect.gen(function*() {
      const inputs = [
        ...Array.from({ length: 200 }, (_, n) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff)),
        new TextEncoder().encode("@ünïcødé:例え.org 🎉")
      ]
      for (const input of inputs) {
        const expected = new Uint8Array(yield* Effect.promise(() => crypto.subtle.digest("SHA-256", input)))
        assert.strictEqual(hex(Sha256.sha256(input)), hex(expected), `length ${input.length}`)
      }
    }))

  it.effect("hashJsonArray equals LiveKitNaming's", () =>
    Effect.gen(function*() {
      for (const parts of [[roomId, LiveKitNaming.legacySlotId], ["@alice:example.org", "ALICEDEVICE", "m-1"], ["é", "<&>"]]) {
        assert.strictEqual(Sha256.hashJsonArray(parts), yield* LiveKitNaming.hashJsonArray(parts))
      }
    }))

  it("the test auth service answers without leaving the fiber runtime (Effect.runSync)", () => {
    const both = Effect.gen(function*() {
      const mx = yield* MatrixClient
      const auth = yield* AuthService
      const openIdToken = yield* mx.requestOpenIdToken
      const url = (yield* Testing.TestAuthService.TestAuthService).url
      const legacy = yield* auth.sfuGet(url, { roomId, openIdToken, deviceId: "ALICEDEVICE" })
      const session = Option.getOrThrow(yield* mx.session)
      const sticky = yield* auth.getToken(url, {
        roomId,
        slotId: LiveKitNaming.legacySlotId,
        openIdToken: yield* mx.requestOpenIdToken,
        member: { id: "m-1", claimedUserId: session.userId, claimedDeviceId: session.deviceId }
      })
      return [legacy.claims, sticky.claims] as const
    })
    const [legacy, sticky] = Effect.runSync(Effect.provide(both, Testing.layer()))
    assert.strictEqual(legacy.room, Sha256.hashJsonArray([roomId, LiveKitNaming.legacySlotId]))
    assert.strictEqual(sticky.identity, Sha256.hashJsonArray(["@alice:example.org", "ALICEDEVICE", "m-1"]))
  })

  it.scoped("a join forked and the clock moved at once: the join got as far as the clock, however slow Web Crypto is", () =>
    Effect.gen(function*() {
      yield* slowWebCrypto(100)
      const hs = yield* TestHomeserver.TestHomeserver
      yield* Effect.forkScoped(Call.join(roomId))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* hs.activeMemberships(roomId)).length, 1)
    }).pipe(Effect.provide(Testing.layer())))
})
