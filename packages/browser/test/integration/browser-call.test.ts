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
import type { FaultProxy, RecordedRequest } from "@matrixrtc-effect/devstack/fault-proxy"
import type { StackInfo } from "@matrixrtc-effect/devstack"
import { Duration, Effect, Option, Stream } from "effect"
import { afterAll, beforeAll } from "vitest"
import { startExample } from "../../example/serve.ts"
import type { ExampleServer } from "../../example/serve.ts"
import { ensureChromium, launchChromium } from "../support/chromium.ts"
import { removeParticipant } from "../support/livekitAdmin.ts"
import type { Chromium } from "../support/chromium.ts"
import {
  createCallRoom,
  eventually,
  inboundAudioBytes,
  liveMembershipsOf,
  nodeLayer,
  nodeParticipant,
  openApp,
  pageCallEnded,
  pageDevice,
  pageIdentity,
  pageText,
  sfuClosing,
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

// Generous deadlines for the leave: Call.join's default delayed leave (8 s, restarted every 5 s)
// would also end the membership by then, so the tests tell the two apart by what the page sent.
const delayMs = 8_000

const leaveSent = (device: string) => (r: RecordedRequest) =>
  (r.method === "POST" && /\/delayed_events\/[^/?]+\/send(?:\?|$)/.test(r.target)) ||
  (r.method === "PUT" && r.path.includes("/state/org.matrix.msc3401.call.member/") && r.path.includes(device))

/**
 * The earliest time the homeserver could fire the page's delayed leave on its own: the delay of
 * the last scheduling request plus the time the proxy received the last scheduling or restart.
 */
const earliestDelayedLeave = (before: ReadonlyArray<RecordedRequest>) => {
  const scheduled = before.filter((r) => /msc4140[^=&]*delay=\d+/.test(r.target))
  const delay = Number(/msc4140[^=&]*delay=(\d+)/.exec(scheduled.at(-1)?.target ?? "")?.[1])
  const renewed = before.filter((r) => scheduled.includes(r) || (r.method === "POST" && /\/delayed_events\/[^/?]+\/restart(?:\?|$)/.test(r.target)))
  assert.isAbove(delay, 0, `the page scheduled no delayed leave through the proxy: ${before.map((r) => `${r.method} ${r.path}`).join(", ")}`)
  return Math.max(...renewed.map((r) => r.receivedAt)) + delay
}

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
 * Opens the app with the homeserver behind `proxy`, waits until alice is in the call (membership
 * and SFU), closes the tab, and checks that the page itself ended both: the proxy passed the leave
 * it sent after closing on to the homeserver, which answered 2xx; the leave event is older than
 * the earliest moment the delayed leave could have fired; and the page sent the SFU a
 * LeaveRequest. The durations are logged, not asserted.
 */
const closeTabMidCall = (proxy: FaultProxy) =>
  Effect.gen(function*() {
    const { alice, app, device, identity, node } = yield* aliceInCall(aliceJoins(proxy.url))

    assert.deepStrictEqual(app.sfuLeavesSent(), [], "no LeaveRequest to the SFU before the tab closes")
    const since = proxy.nextSeq()
    const closedAt = Date.now()
    yield* Effect.promise(() => app.page.close({ runBeforeUnload: true }))
    // The leave event itself, as the Node participant's client receives it (not only a member list change).
    const leave = yield* waitForLeaveEvent(node, alice.userId, device, delayMs + 5_000)
    yield* waitForMember(node, alice.userId, device, false, 5_000)
    const sfuLeft = yield* eventually(sfuLeftAt(node, identity), Option.isSome, delayMs + 5_000, "the browser leaving the SFU")
    yield* Effect.logInfo("tab closed").pipe(
      Effect.annotateLogs({
        leaveEventAfterMs: leave.at - closedAt,
        leaveStampedAfterMs: leave.event.originServerTs - closedAt,
        sfuGoneAfterMs: Option.getOrThrow(sfuLeft) - closedAt
      })
    )

    // The page's own leave, passed on to the homeserver and answered 2xx (recorded once the answer is written).
    yield* eventually(
      Effect.sync(() =>
        proxy.requests()
          .filter((r) => r.seq >= since && leaveSent(device)(r))
          .map(({ handling, method, path, status }) => ({ method, path, handling, status }))
      ),
      (leaves) => leaves.some((r) => r.handling === "forward" && r.status !== undefined && r.status < 300),
      5_000,
      "the closing page's leave, passed on to the homeserver and answered 2xx"
    )
    const requests = proxy.requests()
    assert.isBelow(
      leave.event.originServerTs,
      earliestDelayedLeave(requests.filter((r) => r.seq < since)),
      "the leave event is from the page's own leave: the delayed leave could not have fired yet"
    )
    // A LeaveRequest from the closing page, as the SFU saw it (the page's websocket record ends with the page).
    const closed = yield* eventually(sfuClosing(identity, closedAt), Option.isSome, 5_000, "livekit-server closing the browser's session")
    assert.deepStrictEqual(Option.map(closed, (c) => c.reason), Option.some("CLIENT_REQUEST_LEAVE"), "the closing page sent the SFU a LeaveRequest")
    assert.deepStrictEqual(yield* liveMembershipsOf(stack, userAt(stack, 0), roomId, device), [])
    // The closed page's debug hook is gone; its last log lines tell who ended the call: its own
    // pagehide leave, not an SFU disconnect before it (livekit-client's own, on beforeunload).
    const log = app.consoleLines()
    assert.isTrue(log.some((l) => l.includes("page hidden: leaving the call")), `no pagehide leave in the page's log:\n${log.join("\n")}`)
    assert.isFalse(log.some((l) => l.includes("the SFU connection ended")), `the SFU connection ended first:\n${log.join("\n")}`)
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

      const clicked = Date.now()
      yield* Effect.promise(() => app.page.click("#leave-button"))
      assert.strictEqual(yield* waitForState(app, ["rooms"], 15_000), "rooms")

      const leave = yield* waitForLeaveEvent(node, alice.userId, device, 15_000)
      yield* waitForMember(node, alice.userId, device, false, 15_000)
      yield* eventually(sfuLeftAt(node, identity), Option.isSome, 10_000, "the other participant seeing the browser leave the SFU")
      // The SFU closed our session (on our LeaveRequest) before the homeserver stamped the leave event: both times
      // are the servers' own, on one clock. (When the other participant noticed comes later by a variable delay.)
      const closed = Option.getOrThrow(yield* eventually(sfuClosing(identity, clicked), Option.isSome, 5_000, "livekit-server closing the browser's session"))
      yield* Effect.logInfo("leave order").pipe(Effect.annotateLogs({ sfuClosedAt: closed.at, leaveEventTs: leave.event.originServerTs }))
      assert.strictEqual(closed.reason, "CLIENT_REQUEST_LEAVE")
      assert.isBelow(closed.at, leave.event.originServerTs)
      assert.deepStrictEqual(yield* liveMembershipsOf(stack, userAt(stack, 0), roomId, device), [])
    }), 120_000)

  it.scoped("closing the tab mid-call leaves at once: the page itself ends its membership and leaves the SFU, not the delayed leave", () =>
    Effect.gen(function*() {
      // A proxy without faults: it only records what the page sends the homeserver.
      yield* closeTabMidCall(yield* faultProxy({ target: stack.homeserverUrl }))
    }), 120_000)

  it.scoped("closing the tab with the homeserver 2 × 200 ms away still leaves at once: the keepalive leave outlives the page", () =>
    Effect.gen(function*() {
      // The page reaches Synapse over an emulated wide-area link. Its renderer is gone well before the leave's
      // CORS preflight comes back, so only a request the browser carries on after the page (keepalive) arrives.
      yield* closeTabMidCall(yield* faultProxy({ target: stack.homeserverUrl, latencyMs: 200 }))
    }), 120_000)

  it.scoped("a beforeunload alone (the user stays) keeps the call; a pagehide into the back/forward cache leaves it: ended Left, the page back at the room list", () =>
    Effect.gen(function*() {
      const { alice, app, device, node } = yield* aliceInCall(aliceJoins())

      // What a cancelled unload leaves behind ("Leave the call?" → Stay): beforeunload ran, nothing else.
      yield* Effect.promise(() => app.page.evaluate(() => void window.dispatchEvent(new Event("beforeunload", { cancelable: true }))))
      const before = yield* inboundAudioBytes(app)
      yield* eventually(inboundAudioBytes(app), (n) => n > before + 4000, 10_000, "the page still receiving bob's audio after beforeunload")
      assert.strictEqual(yield* pageCallEnded(app), "", "the call did not end on beforeunload")
      assert.deepStrictEqual(app.sfuLeavesSent(), [], "no LeaveRequest to the SFU on beforeunload")

      // A pagehide of a page that lives on (the back/forward cache): it leaves, and the UI follows.
      yield* Effect.promise(() =>
        app.page.evaluate(() => void window.dispatchEvent(new PageTransitionEvent("pagehide", { persisted: true })))
      )
      assert.strictEqual(yield* waitForState(app, ["rooms"], 15_000), "rooms")
      assert.strictEqual(yield* pageCallEnded(app), "Left")
      yield* waitForLeaveEvent(node, alice.userId, device, 15_000)
      assert.isAbove(app.sfuLeavesSent().length, 0, "the page sent the SFU a LeaveRequest")
      assert.deepStrictEqual(yield* liveMembershipsOf(stack, userAt(stack, 0), roomId, device), [])
    }), 120_000)

  it.scoped("kicked off the SFU, the page shows the call ended (SfuDisconnected) and is back at the room list", () =>
    Effect.gen(function*() {
      const { alice, app, device, identity, node } = yield* aliceInCall(aliceJoins())
      yield* Effect.promise(() => removeParticipant(stack, node.connection.roomName, identity))
      assert.strictEqual(yield* waitForState(app, ["rooms"], 15_000), "rooms")
      assert.strictEqual(yield* pageCallEnded(app), "SfuDisconnected")
      assert.include(yield* pageText(app, "#status"), "the connection to the media server was lost")
      yield* waitForLeaveEvent(node, alice.userId, device, 15_000)
      assert.deepStrictEqual(yield* liveMembershipsOf(stack, userAt(stack, 0), roomId, device), [])
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
