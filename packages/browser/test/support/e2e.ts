/**
 * Pieces of the browser end-to-end tests: the example app in Chromium, a Node
 * participant (NodeCall + core join, publishing a tone), and observers of the
 * room state. Every wait is on a condition with a deadline; nothing sleeps to
 * synchronise.
 */
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Call, Ids } from "@matrixrtc-effect/core"
import type { RawCallEvent } from "@matrixrtc-effect/core"
import { MatrixClient } from "@matrixrtc-effect/core"
import type { StackInfo, StackUser } from "@matrixrtc-effect/devstack"
import { NodeCall, NodeLiveKit } from "@matrixrtc-effect/node"
import type { NodeConnection } from "@matrixrtc-effect/node"
import { Clock, Duration, Effect, Option, Redacted, Schema, Stream, SubscriptionRef } from "effect"
import type { Scope } from "effect"
import type { Page } from "playwright-core"
import type { Chromium } from "./chromium.ts"


import { CALL_MEMBER_EVENT, freshDeviceId, userAt } from "@matrixrtc-effect/devstack"
export { freshDeviceId, userAt }


const fail = (message: string) => new Error(message)

// ---------------------------------------------------------------------------------------
// The example app in a Chromium tab

export interface AppPage {
  readonly page: Page
  /** Console errors and uncaught page errors, for failure messages. */
  readonly problems: () => string
  /** Local times at which the page sent the SFU a LeaveRequest on its signal websocket. */
  readonly sfuLeavesSent: () => ReadonlyArray<number>
  /** Everything the page wrote to its console (its Effect logs among it), oldest first. */
  readonly consoleLines: () => ReadonlyArray<string>
}

// A binary SignalRequest whose first field is `leave` (field 8, length-delimited): LiveKit's protocol.
const LEAVE_REQUEST_TAG = (8 << 3) | 2

export const openApp = (
  chromium: Chromium,
  url: string
): Effect.Effect<AppPage, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const page = await chromium.context.newPage()
      const problems: Array<string> = []
      const consoleLines: Array<string> = []
      page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`))
      page.on("console", (m) => {
        consoleLines.push(m.text())
        if (m.type() === "error") problems.push(`console.error: ${m.text().slice(0, 500)}`)
      })
      const sfuLeavesSent: Array<number> = []
      page.on("websocket", (ws) => {
        if (!new URL(ws.url()).pathname.startsWith("/rtc")) return
        ws.on("framesent", ({ payload }) => {
          if (typeof payload !== "string" && payload[0] === LEAVE_REQUEST_TAG) sfuLeavesSent.push(Date.now())
        })
      })
      await page.goto(url)
      return {
        page,
        problems: () => problems.join("\n"),
        sfuLeavesSent: () => sfuLeavesSent.slice(),
        consoleLines: () => consoleLines.slice()
      }
    }),
    ({ page }) => Effect.promise(() => page.close().catch(() => undefined))
  )

/** Waits until the page's `data-state` is one of `states`; returns it. */
export const waitForState = (app: AppPage, states: ReadonlyArray<string>, timeoutMs: number) =>
  Effect.tryPromise({
    try: async () => {
      await app.page.waitForFunction((s) => s.includes(document.body.dataset["state"] ?? ""), states, {
        timeout: timeoutMs
      })
      return await app.page.evaluate(() => document.body.dataset["state"] ?? "")
    },
    catch: async () => fail(`the page did not reach ${states.join("|")} in ${timeoutMs} ms`)
  }).pipe(
    Effect.catchAll(() =>
      Effect.flatMap(
        Effect.promise(() =>
          app.page.evaluate(() => ({
            state: document.body.dataset["state"],
            status: document.getElementById("status")?.textContent,
            error: document.getElementById("error-message")?.textContent
          }))
        ),
        (now) =>
          Effect.fail(
            fail(
              `the page did not reach ${states.join("|")} in ${timeoutMs} ms; it is ${JSON.stringify(now)}\n${app.problems()}`
            )
          )
      )
    )
  )

export const pageText = (app: AppPage, selector: string) =>
  Effect.promise(() => app.page.textContent(selector).then((t) => t ?? ""))

/** `@user:server:DEVICE`, the LiveKit identity of the page's own participant. */
export const pageIdentity = (app: AppPage) =>
  Effect.promise(() =>
    app.page.evaluate(() => document.querySelector<HTMLElement>(".tile[data-local=true]")?.dataset["identity"] ?? "")
  )

export const pageDevice = (app: AppPage) =>
  Effect.promise(() => app.page.evaluate(() => document.body.dataset["deviceId"] ?? ""))

export const inboundAudioBytes = (app: AppPage) =>
  Effect.promise(() =>
    app.page.evaluate(() =>
      (globalThis as unknown as { exampleDebug: { inboundAudioBytes: () => Promise<number> } }).exampleDebug.inboundAudioBytes()
    )
  )

/** How the page's last call ended (`Call.CallEnd`), "" while it has not. */
export const pageCallEnded = (app: AppPage) =>
  Effect.promise(() =>
    app.page.evaluate(() => (globalThis as unknown as { exampleDebug: { ended: () => string } }).exampleDebug.ended())
  )

/** Polls `probe` (every 200 ms) until `ok` holds; fails after `timeoutMs` with the last value seen. */
export const eventually = <A, E, R>(
  probe: Effect.Effect<A, E, R>,
  ok: (a: A) => boolean,
  timeoutMs: number,
  what: string
): Effect.Effect<A, E | Error, R> =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + timeoutMs
    for (;;) {
      const last = yield* probe
      if (ok(last)) return last
      if ((yield* Clock.currentTimeMillis) > deadline) {
        return yield* Effect.fail(fail(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`))
      }
      yield* Effect.sleep(Duration.millis(200))
    }
  })

// ---------------------------------------------------------------------------------------
// A Node participant in the same call

export interface NodeParticipant {
  readonly call: Call.Call
  readonly connection: NodeConnection
  readonly deviceId: string
  /** Every call-member event the participant's client has seen, with the local time it arrived. */
  readonly events: SubscriptionRef.SubscriptionRef<ReadonlyArray<{ readonly event: RawCallEvent; readonly at: number }>>
  /** Remote participant identities on the SFU, with the local time of each change. */
  readonly sfu: SubscriptionRef.SubscriptionRef<ReadonlyArray<{ readonly identities: ReadonlyArray<string>; readonly at: number }>>
}

/**
 * The Node side's services: `user` logged in on a fresh device. Build it once per
 * test file (rtc-node's native runtime is disposed when its last layer closes and
 * is not meant to be started again in the same process).
 */
export const nodeLayer = (stack: StackInfo, user: StackUser) =>
  NodeCall.layer({
    matrix: {
      homeserverUrl: stack.homeserverUrl,
      user: user.userId,
      password: Redacted.make(user.password),
      deviceId: freshDeviceId("node"),
      // A device of this test file only: logged out again when the file's layer closes.
      logoutOnClose: true
    }
  })

/** Joins `roomId` from Node and publishes a 440 Hz tone until the scope closes (then leaves). */
export const nodeParticipant = (
  roomId: string
): Effect.Effect<NodeParticipant, unknown, Scope.Scope | NodeCall.NodeCallServices> =>
  Effect.gen(function*() {
    const id = yield* Ids.roomId(roomId)
    const mx = yield* MatrixClient
    const events = yield* SubscriptionRef.make<ReadonlyArray<{ readonly event: RawCallEvent; readonly at: number }>>([])
    yield* mx.callMemberEvents(id).pipe(
      Stream.runForEach((event) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) => SubscriptionRef.update(events, (all) => [...all, { event, at }]))
      ),
      Effect.forkScoped
    )
    const call = yield* Call.join(id)
    const lk = yield* NodeLiveKit.NodeLiveKit
    const connection = Option.getOrThrowWith(yield* lk.connection, () => fail("NodeLiveKit has no open connection after join"))
    const sfu = yield* SubscriptionRef.make<ReadonlyArray<{ readonly identities: ReadonlyArray<string>; readonly at: number }>>([])
    yield* connection.remoteParticipantsChanges.pipe(
      Stream.runForEach((ps) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) =>
          SubscriptionRef.update(sfu, (all) => [...all, { identities: ps.map((p) => p.identity), at }])
        )
      ),
      Effect.forkScoped
    )
    yield* connection.publishAudio({ _tag: "Tone", toneHz: 440, amplitude: 0.3 })
    return { call, connection, deviceId: call.session.deviceId, events, sfu }
  })

/** Waits until the Node participant's member list contains (or no longer contains) `userId`/`deviceId`. */
export const waitForMember = (p: NodeParticipant, userId: string, deviceId: string, present: boolean, timeoutMs: number) =>
  p.call.members.pipe(
    Stream.filter((ms) => ms.some((m) => m.userId === userId && m.deviceId === deviceId) === present),
    Stream.runHead,
    Effect.flatMap(Option.match({ onNone: () => Effect.fail(fail("member stream ended")), onSome: Effect.succeed })),
    Effect.timeoutFail({
      duration: Duration.millis(timeoutMs),
      onTimeout: () => fail(`node participant: ${userId}/${deviceId} ${present ? "never joined" : "never left"} within ${timeoutMs} ms`)
    })
  )

/** The call-member state event of `deviceId` whose content is empty (the leave), once it arrives. */
export const waitForLeaveEvent = (p: NodeParticipant, userId: string, deviceId: string, timeoutMs: number) =>
  p.events.changes.pipe(
    Stream.filterMap((all) =>
      Option.fromNullable(
        all.find(
          ({ event }) =>
            event.type === CALL_MEMBER_EVENT &&
            event.sender === userId &&
            (event.stateKey ?? "").includes(deviceId) &&
            typeof event.content === "object" &&
            event.content !== null &&
            Object.keys(event.content).length === 0
        )
      )
    ),
    Stream.runHead,
    Effect.flatMap(Option.match({ onNone: () => Effect.fail(fail("event stream ended")), onSome: Effect.succeed })),
    Effect.timeoutFail({
      duration: Duration.millis(timeoutMs),
      onTimeout: () => fail(`no leave event ({}) for ${userId}/${deviceId} within ${timeoutMs} ms`)
    })
  )

/** The first time the Node participant's SFU view lost `identity` after having had it. */
export const sfuLeftAt = (p: NodeParticipant, identity: string) =>
  Effect.map(SubscriptionRef.get(p.sfu), (all) => {
    const seen = all.findIndex((x) => x.identities.includes(identity))
    if (seen < 0) return Option.none<number>()
    return Option.map(
      Option.fromNullable(all.slice(seen).find((x) => !x.identities.includes(identity))),
      (x) => x.at
    )
  })

// ---------------------------------------------------------------------------------------
// The SFU's own record

const livekitLog = join(import.meta.dirname, "..", "..", "..", "..", ".stack", "logs", "livekit.log")

// livekit-server logs tab-separated: time, level, logger, caller, message, JSON fields.
const ParticipantClosing = Schema.parseJson(Schema.Struct({ participant: Schema.String, reason: Schema.String }))

/**
 * When and why livekit-server closed `identity`'s session, from its log, once it has ("CLIENT_REQUEST_LEAVE":
 * the client sent a LeaveRequest). The page's own record of what it sent ends when the page closes, so for a
 * closed tab this is where a LeaveRequest shows; and the time is the SFU's own (same clock as the homeserver's
 * `origin_server_ts`), not when another participant happened to notice. Only closings at or after `sinceMs`
 * count, so an earlier session of the same identity cannot answer for this one.
 */
export const sfuClosing = (identity: string, sinceMs: number) =>
  Effect.sync(() => {
    const closings = readFileSync(livekitLog, "utf8")
      .split("\n")
      .map((line) => line.split("\t"))
      .filter((fields) => fields[4] === "participant closing" && fields[5]?.includes(identity) === true)
      .flatMap((fields) =>
        Option.toArray(Option.map(Schema.decodeUnknownOption(ParticipantClosing)(fields[5]), (f) => ({ ...f, at: Date.parse(fields[0] ?? "") })))
      )
      .filter((f) => f.participant === identity && f.at >= sinceMs)
    return Option.map(Option.fromNullable(closings.at(-1)), ({ at, reason }) => ({ at, reason }))
  })

// ---------------------------------------------------------------------------------------
// Room state straight from the homeserver (independent of both participants)

/** Non-empty call-member state events of `deviceId` in the room, read with `observer`'s token. */
export const liveMembershipsOf = (stack: StackInfo, observer: StackUser, roomId: string, deviceId: string) =>
  Effect.promise(async () => {
    const res = await fetch(`${stack.homeserverUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`, {
      headers: { authorization: `Bearer ${observer.accessToken}` }
    })
    if (!res.ok) throw new Error(`GET room state: HTTP ${res.status}`)
    const events = (await res.json()) as Array<{ type: string; state_key: string; content: Record<string, unknown> }>
    return events.filter(
      (e) => e.type === CALL_MEMBER_EVENT && e.state_key.includes(deviceId) && Object.keys(e.content).length > 0
    )
  })

/**
 * A call room of our own, so that other test files and benchmarks using the
 * stack's shared room cannot add participants to ours: `creator` creates it
 * with call-member events allowed at power 0 (as Element Call's rooms do) and
 * every one of `members` joins.
 */
export const createCallRoom = async (stack: StackInfo, creator: StackUser, members: ReadonlyArray<StackUser>) => {
  const request = async (user: StackUser, method: string, path: string, body: unknown) => {
    const res = await fetch(`${stack.homeserverUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${user.accessToken}`, "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    const json = (await res.json()) as Record<string, unknown>
    if (!res.ok) throw new Error(`${method} ${path} as ${user.userId}: HTTP ${res.status} ${JSON.stringify(json)}`)
    return json
  }
  const created = await request(creator, "POST", "/_matrix/client/v3/createRoom", {
    name: `browser e2e ${randomBytes(3).toString("hex")}`,
    preset: "private_chat",
    invite: members.map((m) => m.userId),
    power_level_content_override: { events: { [CALL_MEMBER_EVENT]: 0, "org.matrix.msc4143.rtc.member": 0 } }
  })
  const roomId = String(created["room_id"])
  for (const m of members) await request(m, "POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {})
  return roomId
}
