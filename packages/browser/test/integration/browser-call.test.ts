/**
 * End to end in real Chromium on the local stack: the example web app (alice)
 * and a Node participant (bob, NodeCall + core join, publishing a tone) in one
 * call. Runs in the root `integration` project, whose global setup brings the
 * stack up; Chromium is installed with apt-get when missing.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { assert, layer } from "@effect/vitest"
import { JwtFetchFailed } from "@matrixrtc-effect/core"
import { Audio } from "@matrixrtc-effect/node"
import { readStack, startService, stopService } from "@matrixrtc-effect/devstack"
import { faultProxy } from "@matrixrtc-effect/devstack/fault-proxy"
import type { StackInfo } from "@matrixrtc-effect/devstack"
import { Duration, Effect, Option, Stream } from "effect"
import { afterAll, beforeAll } from "vitest"
import { startExample } from "../../example/serve.ts"
import type { ExampleServer } from "../../example/serve.ts"
import { ensureChromium, launchChromium } from "../support/chromium.ts"
import type { Chromium } from "../support/chromium.ts"
import {
  createCallRoom,
  eventually,
  inboundAudioBytes,
  liveMembershipsOf,
  nodeLayer,
  nodeParticipant,
  openApp,
  pageDevice,
  pageIdentity,
  pageText,
  sfuLeftAt,
  userAt,
  waitForLeaveEvent,
  waitForMember,
  waitForState
} from "../support/e2e.ts"

const artifacts = join(import.meta.dirname, "..", "..", "..", "..", "test-artifacts", "browser")

// The global setup has brought the stack up before test files are loaded.
const stack: StackInfo = readStack()
let roomId: string
let server: ExampleServer & { readonly close: () => Promise<void> }
let chromium: Chromium

beforeAll(async () => {
  // Before the Node participant logs in (its layer is built after this hook), so its first sync has the room.
  roomId = await createCallRoom(stack, userAt(stack, 0), [userAt(stack, 1)])
  // A fresh CI machine has no chromium yet: apt-get takes a minute or two.
  await ensureChromium()
  server = await startExample({ config: { homeserverUrl: stack.homeserverUrl, roomId } })
  chromium = await launchChromium()
}, 600_000)

afterAll(async () => {
  await chromium?.close()
  await server?.close()
  if (chromium !== undefined && chromium.blocked.length > 0) {
    throw new Error(`Chromium tried to leave loopback: ${chromium.blocked.join(", ")}`)
  }
})

/** The app's URL that logs alice in (a new device) and joins our call room right away. */
const aliceJoins = (homeserverUrl = stack.homeserverUrl) => {
  const alice = userAt(stack, 0)
  return server.urlWith({ user: alice.userId, password: alice.password, roomId, autoJoin: "1", homeserverUrl })
}

// Call.join's default delayed-leave delay (the example does not change it). Restarted every 5 s, it
// fires 3–8 s after a page stops: a membership gone sooner was ended by the closing page itself.
const delayMs = 8_000

/** Opens the app at `url` and waits until alice is in the call as the Node participant sees it: member and on the SFU. */
const aliceInCall = (url: string) =>
  Effect.gen(function*() {
    const alice = userAt(stack, 0)
    const node = yield* nodeParticipant(roomId)
    const app = yield* openApp(chromium, url)
    assert.strictEqual(yield* waitForState(app, ["in-call", "error"], 45_000), "in-call")
    const identity = yield* pageIdentity(app)
    const device = yield* pageDevice(app)
    yield* waitForMember(node, alice.userId, device, true, 20_000)
    yield* eventually(
      Effect.map(node.connection.remoteParticipants, (ps) => ps.some((p) => p.identity === identity)),
      (b) => b,
      10_000,
      "the browser on the SFU"
    )
    return { alice, node, app, identity, device }
  })

/**
 * Opens the app at `url`, waits until alice is in the call (membership and SFU), closes the tab and
 * measures, from the Node participant, when the leave event arrived and the SFU participant went.
 */
const closeTabMidCall = (url: string) =>
  Effect.gen(function*() {
    const { alice, app, device, identity, node } = yield* aliceInCall(url)

    const closedAt = Date.now()
    yield* Effect.promise(() => app.page.close({ runBeforeUnload: true }))
    // The leave event itself, as the Node participant's client receives it (not only a member list change).
    const leave = yield* waitForLeaveEvent(node, alice.userId, device, delayMs + 5_000)
    yield* waitForMember(node, alice.userId, device, false, 5_000)
    const goneAfterMs = Date.now() - closedAt
    const sfuLeft = yield* eventually(sfuLeftAt(node, identity), Option.isSome, delayMs + 5_000, "the browser leaving the SFU")
    const sfuGoneAfterMs = Option.getOrThrow(sfuLeft) - closedAt
    yield* Effect.logInfo(`tab closed: membership gone after ${goneAfterMs} ms, SFU participant after ${sfuGoneAfterMs} ms`).pipe(
      Effect.annotateLogs({ leaveEventAfterMs: leave.at - closedAt })
    )
    assert.deepStrictEqual(yield* liveMembershipsOf(stack, userAt(stack, 0), roomId, device), [])
    return { goneAfterMs, sfuGoneAfterMs }
  })

// One Node participant (bob) for the whole file; each test joins and leaves with it.
// Live clock throughout (excludeTestServices): these tests wait on real servers.
layer(nodeLayer(stack, userAt(stack, 1)), { timeout: 60_000, excludeTestServices: true })("browser ↔ node call in Chromium", (it) => {
  it.scoped("each receives the other's media and sees the other as a member", () =>
    Effect.gen(function*() {
      const alice = userAt(stack, 0)
      const bob = userAt(stack, 1)
      const node = yield* nodeParticipant(roomId)

      const app = yield* openApp(chromium, aliceJoins())
      yield* waitForState(app, ["in-call", "error"], 45_000).pipe(
        Effect.filterOrElse((s) => s === "in-call", () =>
          Effect.flatMap(pageText(app, "#error-message"), (m) => Effect.fail(new Error(`the page failed to join: ${m}`))))
      )
      const identity = yield* pageIdentity(app)
      const browserDevice = yield* pageDevice(app)
      assert.strictEqual(identity, `${alice.userId}:${browserDevice}`)
      // The lobby made the join ready (Call.prepare) before "Join", and the join used it.
      assert.strictEqual(yield* Effect.promise(() => app.page.evaluate(() => document.body.dataset["joinPrepared"])), "yes")

      // Membership both ways.
      yield* Effect.tryPromise(() =>
        app.page.waitForSelector(`#members li[data-user-id="${bob.userId}"][data-device-id="${node.deviceId}"]`, {
          timeout: 20_000
        })
      )
      yield* waitForMember(node, alice.userId, browserDevice, true, 20_000)

      // Browser receives node audio: inbound-rtp bytes keep growing.
      const first = yield* eventually(inboundAudioBytes(app), (n) => n > 0, 20_000, "inbound-rtp audio bytes in the page")
      const later = yield* eventually(inboundAudioBytes(app), (n) => n > first + 1000, 10_000, "inbound-rtp audio bytes growing")
      assert.isAbove(later, first)

      // Node receives the browser's (fake device) microphone: non-silent samples.
      const loud = yield* node.connection.remoteAudio({ participant: identity }).pipe(
        Stream.filter((f) => !Audio.isSilent(f.samples)),
        Stream.runHead,
        Effect.timeoutFail({
          duration: Duration.seconds(20),
          onTimeout: () => new Error("the node participant got no non-silent audio from the browser in 20 s")
        })
      )
      assert.isTrue(Option.isSome(loud))

      // Two tiles (ours with the fake camera, bob's audio-only), then a screenshot.
      yield* Effect.tryPromise(() =>
        app.page.waitForFunction(() => document.querySelectorAll("#tiles .tile").length === 2, undefined, { timeout: 10_000 })
      )
      yield* Effect.tryPromise(() =>
        app.page.waitForFunction(
          () => {
            const v = document.querySelector<HTMLVideoElement>(".tile[data-local=true] video")
            return v !== null && v.readyState >= 2
          },
          undefined,
          { timeout: 10_000 }
        )
      )
      mkdirSync(artifacts, { recursive: true })
      yield* Effect.promise(() => app.page.screenshot({ path: join(artifacts, "call-two-tiles.png") }))
    }), 120_000)

  it.scoped("leaving from the browser disconnects from the SFU first, then removes the membership", () =>
    Effect.gen(function*() {
      const { alice, app, device, identity, node } = yield* aliceInCall(aliceJoins())

      yield* Effect.promise(() => app.page.click("#leave-button"))
      assert.strictEqual(yield* waitForState(app, ["rooms"], 15_000), "rooms")

      const leave = yield* waitForLeaveEvent(node, alice.userId, device, 15_000)
      yield* waitForMember(node, alice.userId, device, false, 15_000)
      const sfuLeft = yield* eventually(sfuLeftAt(node, identity), Option.isSome, 10_000, "the browser leaving the SFU")
      // The SFU saw us go before the homeserver stamped the leave event.
      yield* Effect.logInfo("leave order").pipe(
        Effect.annotateLogs({ sfuLeftAt: Option.getOrThrow(sfuLeft), leaveEventTs: leave.event.originServerTs })
      )
      assert.isAtMost(Option.getOrThrow(sfuLeft), leave.event.originServerTs)
      assert.deepStrictEqual(yield* liveMembershipsOf(stack, userAt(stack, 0), roomId, device), [])
    }), 120_000)

  it.scoped("closing the tab mid-call leaves at once: membership and SFU participant gone in under 2 s, long before the delayed leave", () =>
    Effect.gen(function*() {
      const { goneAfterMs, sfuGoneAfterMs } = yield* closeTabMidCall(aliceJoins())
      assert.isBelow(goneAfterMs, 2_000, "the closing page ended its membership itself (not the delayed leave)")
      assert.isBelow(sfuGoneAfterMs, 2_000, "the closing page left the SFU")
    }), 120_000)

  it.scoped("closing the tab with the homeserver 2 × 200 ms away still leaves at once: the keepalive leave outlives the page", () =>
    Effect.gen(function*() {
      // The page reaches Synapse over an emulated wide-area link. Its renderer is gone well before the leave's
      // CORS preflight comes back, so only a request the browser carries on after the page (keepalive) arrives.
      const slow = yield* faultProxy({ target: stack.homeserverUrl, latencyMs: 200 })
      const { goneAfterMs } = yield* closeTabMidCall(aliceJoins(slow.url))
      assert.isBelow(goneAfterMs, 2_500, "the closing page ended its membership itself (not the delayed leave)")
    }), 120_000)

  it.scoped("with the auth service stopped the page shows the JwtFetchFailed message and leaves no membership", () =>
    Effect.gen(function*() {
      yield* Effect.acquireRelease(
        Effect.promise(() => stopService("auth")),
        () => Effect.promise(() => startService("auth"))
      )
      const authAnswers = Effect.promise(() =>
        fetch(`${stack.authServiceUrl}/healthz`).then(() => true, () => false)
      )
      assert.isFalse(yield* authAnswers, "the auth service still answers after stopService")
      const app = yield* openApp(chromium, aliceJoins())
      const state = yield* waitForState(app, ["in-call", "error"], 60_000)
      if (state !== "error" && (yield* authAnswers)) {
        // The stack is shared: another test run may start the service again while we wait.
        assert.fail("the auth service was started again (by another run on the shared stack) during this test")
      }
      assert.strictEqual(state, "error")
      const tag = yield* Effect.promise(() =>
        app.page.evaluate(() => document.getElementById("error-view")?.dataset["tag"] ?? "")
      )
      assert.strictEqual(tag, "JwtFetchFailed / Unreachable")
      // The sentence the error class itself writes, e.g. "the MatrixRTC auth service at … is unreachable".
      assert.strictEqual(
        yield* pageText(app, "#error-message"),
        new JwtFetchFailed({ reason: "Unreachable", endpoint: `${stack.authServiceUrl}/sfu/get` }).message
      )
      const device = yield* pageDevice(app)
      assert.deepStrictEqual(yield* liveMembershipsOf(stack, userAt(stack, 0), roomId, device), [])
    }), 120_000)
})
