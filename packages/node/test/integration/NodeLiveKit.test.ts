// NodeLiveKit against the real stack: JWTs from the real auth service (`/sfu/get`, via the
// matrix-js-sdk adapter's OpenID token and core's AuthServiceHttp), media through livekit-server.
import { createHmac } from "node:crypto"
import { createServer } from "node:net"
import type { AddressInfo, Server } from "node:net"
import { FetchHttpClient } from "@effect/platform"
import { assert, describe, it, layer } from "@effect/vitest"
import { AuthService, AuthServiceHttp, MatrixClient } from "@matrixrtc-effect/core"
import type { LiveKitGrant } from "@matrixrtc-effect/core"
import { readStack } from "@matrixrtc-effect/devstack"
import type { StackUser } from "@matrixrtc-effect/devstack"
import { layerLogin } from "@matrixrtc-effect/matrix-js-sdk"
import { Effect, Fiber, FiberStatus, Layer, Option, Redacted, Stream } from "effect"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { encodeWav, isSilent, rms, toneFrame } from "../../src/Audio.ts"
import * as NodeLiveKit from "../../src/NodeLiveKit.ts"

const stack = readStack()
const [alice, bob] = stack.users as unknown as [StackUser, StackUser]

/**
 * Device ids of this file's participants. Other test files join the same room as the same users;
 * LiveKit would kick one of two equal identities (DUPLICATE_IDENTITY), so ours are unique per run.
 * `/sfu/get` trusts the claimed device id (the OpenID token only proves the user).
 */
const run = Math.random().toString(36).slice(2, 8).toUpperCase()
const deviceOf = (user: StackUser) => `NLK${run}${user.userId.slice(1, 4).toUpperCase()}`

/** A LiveKit grant for `user` the way `join` gets one: OpenID token → auth service `/sfu/get`. */
const grantFor = (user: StackUser): Effect.Effect<LiveKitGrant, unknown> =>
  Effect.gen(function* () {
    const openIdToken = yield* (yield* MatrixClient).requestOpenIdToken
    return yield* (yield* AuthService).sfuGet(stack.authServiceUrl, {
      roomId: stack.roomId,
      openIdToken,
      deviceId: deviceOf(user)
    })
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        layerLogin({
          homeserverUrl: stack.homeserverUrl,
          accessToken: Redacted.make(user.accessToken),
          userId: user.userId,
          deviceId: user.deviceId,
          sync: false
        }),
        AuthServiceHttp.layer.pipe(Layer.provide(FetchHttpClient.layer))
      )
    )
  )

/** A JWT signed with the stack's LiveKit key (HS256), for cases the auth service would never issue. */
const mintJwt = (claims: Record<string, unknown>) => {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url")
  const now = Math.floor(Date.now() / 1000)
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iss: stack.livekitApiKey, nbf: now - 10, exp: now + 600, ...claims })}`
  return Redacted.make(`${body}.${createHmac("sha256", stack.livekitApiSecret).update(body).digest("base64url")}`)
}

const identityOf = (u: StackUser) => `${u.userId}:${deviceOf(u)}`

layer(NodeLiveKit.layer(), { timeout: "90 seconds", excludeTestServices: true })("NodeLiveKit on the real SFU", (it) => {
  it.scoped("two participants connect with auth-service JWTs, see each other, and the tone arrives non-silent", () =>
    Effect.gen(function* () {
      const lk = yield* NodeLiveKit.NodeLiveKit
      const [aliceGrant, bobGrant] = yield* Effect.all([grantFor(alice), grantFor(bob)], { concurrency: 2 })
      assert.strictEqual(aliceGrant.claims.identity, identityOf(alice))
      assert.strictEqual(aliceGrant.url, stack.livekitUrl)

      const a = yield* lk.connect(aliceGrant.url, aliceGrant.jwt, { timeoutMs: 20_000 })
      const b = yield* lk.connect(bobGrant.url, bobGrant.jwt, { timeoutMs: 20_000 })
      assert.strictEqual(a.identity, identityOf(alice))
      assert.strictEqual(a.roomName, aliceGrant.claims.room)
      assert.strictEqual(yield* a.connectionState, "connected")

      // Each sees the other.
      const sees = (c: NodeLiveKit.NodeConnection, who: string) =>
        c.remoteParticipantsChanges.pipe(
          Stream.takeUntil((ps) => ps.some((p) => p.identity === who)),
          Stream.runLast,
          Effect.timeout("15 seconds")
        )
      yield* Effect.all([sees(a, b.identity), sees(b, a.identity)], { concurrency: 2 })

      // Alice publishes a tone; Bob reads Alice's audio until it is clearly not silence.
      const published = yield* a.publishAudio({ _tag: "Tone", toneHz: 440, amplitude: 0.3 })
      assert.isAbove(published.trackSid.length, 0)
      const loud = yield* b.remoteAudio({ participant: a.identity }).pipe(
        Stream.filter((f) => !isSilent(f.samples)),
        Stream.take(20),
        Stream.runCollect,
        Effect.timeout("20 seconds")
      )
      const frames = [...loud]
      assert.strictEqual(frames.length, 20)
      assert.strictEqual(frames[0]!.participant, a.identity)
      assert.strictEqual(frames[0]!.sampleRate, 48_000)
      // The tone was sent at 0.3 of full scale (rms ≈ 0.21); Opus keeps it in that range.
      assert.isAbove(rms(frames.at(-1)!.samples), 0.05)
      assert.isAbove(yield* published.framesSent, 0)

      // Bob sees Alice's audio track in the participant list.
      const withTrack = yield* b.remoteParticipants
      assert.deepStrictEqual(withTrack.find((p) => p.identity === a.identity)?.tracks, ["audio"])

      // Alice leaves: Bob's list loses her; Alice's own state ends disconnected.
      yield* a.disconnect
      assert.strictEqual(yield* a.connectionState, "disconnected")
      yield* b.remoteParticipantsChanges.pipe(
        Stream.takeUntil((ps) => !ps.some((p) => p.identity === a.identity)),
        Stream.runDrain,
        Effect.timeout("15 seconds")
      )
    }))

  it.scoped("a WAV file plays out once and is heard; a client disconnect is reported as ClientInitiated", () =>
    Effect.gen(function* () {
      const lk = yield* NodeLiveKit.NodeLiveKit
      const [aliceGrant, bobGrant] = yield* Effect.all([grantFor(alice), grantFor(bob)], { concurrency: 2 })
      const a = yield* lk.connect(aliceGrant.url, aliceGrant.jwt)
      const b = yield* lk.connect(bobGrant.url, bobGrant.jwt)

      // 3 s of 880 Hz, stereo at 44.1 kHz, written as a real file (long enough to outlast the subscription).
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "nodelivekit-"))),
        (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
      )
      const path = join(dir, "tone.wav")
      const samples = toneFrame({ toneHz: 880, sampleRate: 44_100, channels: 2, samplesPerChannel: 132_300, offset: 0, amplitude: 0.4 })
      yield* Effect.promise(() => writeFile(path, encodeWav({ samples, sampleRate: 44_100, channels: 2 })))

      const published = yield* a.publishAudio({ _tag: "Wav", path, loop: false }, { name: "wav" })
      const loud = yield* b.remoteAudio({ participant: a.identity }).pipe(
        Stream.filter((f) => !isSilent(f.samples)),
        Stream.take(10),
        Stream.runCollect,
        Effect.timeout("20 seconds")
      )
      assert.strictEqual(loud.length, 10)
      yield* published.done.pipe(Effect.timeout("20 seconds"))
      // 3 s in 10 ms frames.
      assert.strictEqual(yield* published.framesSent, 300)

      const reason = yield* a.disconnectReasons.pipe(Stream.runHead, Effect.fork)
      // The reasons are a PubSub without replay: disconnect only once the fiber has subscribed, i.e. is suspended
      // waiting for the first reason.
      yield* Fiber.status(reason).pipe(Effect.repeat({ until: FiberStatus.isSuspended }), Effect.timeout("5 seconds"))
      yield* a.disconnect
      assert.deepStrictEqual(yield* reason.pipe(Effect.timeout("5 seconds")), Option.some("ClientInitiated"))
    }))

  it.scoped("NodeLiveKit.connection follows the open connection", () =>
    Effect.gen(function* () {
      const lk = yield* NodeLiveKit.NodeLiveKit
      const grant = yield* grantFor(bob)
      const c = yield* Effect.scoped(
        Effect.gen(function* () {
          const c = yield* lk.connect(grant.url, grant.jwt)
          assert.isTrue(Option.contains(yield* lk.connection, c))
          return c
        })
      )
      assert.isTrue(Option.isNone(yield* lk.connection))
      assert.strictEqual(yield* c.connectionState, "disconnected")
    }))

  it.scoped("a token with a bad signature is Rejected", () =>
    Effect.gen(function* () {
      const lk = yield* NodeLiveKit.NodeLiveKit
      const grant = yield* grantFor(alice)
      const [h, p] = Redacted.value(grant.jwt).split(".")
      const e = yield* Effect.flip(lk.connect(grant.url, Redacted.make(`${h}.${p}.AAAA`), { timeoutMs: 15_000 }))
      assert.strictEqual(e._tag, "ConnectFailed")
      assert.strictEqual(e.reason, "Rejected")
      assert.notInclude(e.message, p!)
    }))

  it.scoped("a room nobody created is RoomNotFound (auto_create is off)", () =>
    Effect.gen(function* () {
      const lk = yield* NodeLiveKit.NodeLiveKit
      const jwt = mintJwt({ sub: "nobody", video: { room: `missing-${Date.now()}`, roomJoin: true } })
      const e = yield* Effect.flip(lk.connect(stack.livekitUrl, jwt, { timeoutMs: 15_000 }))
      assert.strictEqual(e.reason, "RoomNotFound")
    }))

  it.scoped("an SFU that never answers is a Timeout, and the scope still closes", () =>
    Effect.gen(function* () {
      const lk = yield* NodeLiveKit.NodeLiveKit
      // Accepts TCP connections and never says a word.
      const server = yield* Effect.acquireRelease(
        Effect.async<Server>((resume) => {
          const s = createServer(() => {})
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.sync(() => s.close())
      )
      const port = (server.address() as AddressInfo).port
      const jwt = mintJwt({ sub: "nobody", video: { room: "x", roomJoin: true } })
      // The outer bound only catches a connect (or a scope close) that hangs: the error must be the connect's own.
      const e = yield* Effect.flip(Effect.scoped(lk.connect(`ws://127.0.0.1:${port}`, jwt, { timeoutMs: 1500 }))).pipe(
        Effect.timeoutFail({ duration: "12 seconds", onTimeout: () => new Error("connect + scope close still running after 12 s") })
      )
      assert.strictEqual(e.reason, "Timeout")
    }))
})

describe("process exit", () => {
  it("a node process that used NodeLiveKit exits by itself after the layer closes", async () => {
    const { spawnSync } = await import("node:child_process")
    const script = `
      import { Effect } from "effect"
      import * as NodeLiveKit from "${new URL("../../src/NodeLiveKit.ts", import.meta.url).pathname}"
      import { AudioSource } from "@livekit/rtc-node"
      await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
        yield* NodeLiveKit.NodeLiveKit
        new AudioSource(48000, 1) // starts the native runtime
      }).pipe(Effect.provide(NodeLiveKit.layer()))))
      console.log("closed")
    `
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: new URL("../..", import.meta.url).pathname,
      timeout: 20_000,
      encoding: "utf8"
    })
    assert.strictEqual(r.signal, null, `killed after 20 s: ${r.stderr}`)
    assert.strictEqual(r.status, 0, r.stderr)
    assert.include(r.stdout, "closed")
  }, 30_000)
})
