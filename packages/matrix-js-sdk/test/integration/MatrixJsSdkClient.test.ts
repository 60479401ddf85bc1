// The matrix-js-sdk adapter against the real local stack (Synapse with MSC4140/4143/4354 on).
import { assert, describe, it, layer } from "@effect/vitest"
import { Ids, MatrixClient } from "@matrixrtc-effect/core"
import type { RawCallEvent } from "@matrixrtc-effect/core"
import { readStack } from "@matrixrtc-effect/devstack"
import type { StackUser } from "@matrixrtc-effect/devstack"
import { Context, Deferred, Effect, Layer, Option, Redacted, Stream } from "effect"
import { createClient } from "matrix-js-sdk"
import { layerFromClient, layerLogin, MatrixSdkClient } from "../../src/index.ts"

const stack = readStack()
const [alice, bob] = stack.users as unknown as [StackUser, StackUser]
const roomId = stack.roomId as Ids.RoomId
const forbiddenRoomId = stack.forbiddenRoomId as Ids.RoomId
const CALL_MEMBER = "org.matrix.msc3401.call.member"

const loginAs = (user: StackUser) =>
  layerLogin({
    homeserverUrl: stack.homeserverUrl,
    accessToken: Redacted.make(user.accessToken),
    userId: user.userId,
    deviceId: user.deviceId
  })

/** Bob's client, built inside a test (the shared layer is Alice's). */
const asBob = <A, E>(f: (bob: MatrixClient["Type"]) => Effect.Effect<A, E>) =>
  Effect.flatMap(MatrixClient, f).pipe(Effect.provide(loginAs(bob)))

/** Unique per run, so reruns on a long-lived stack never see an older event for the same key. */
const run = Math.random().toString(36).slice(2, 8)
const stateKeyOf = (user: StackUser, tag: string) => `_${user.userId}_${user.deviceId}_test.${tag}.${run}`

const member = (user: StackUser) => ({
  application: "m.call",
  call_id: "",
  scope: "m.room",
  device_id: user.deviceId,
  focus_active: { type: "livekit", focus_selection: "oldest_membership" },
  foci_preferred: [{ type: "livekit", livekit_service_url: stack.authServiceUrl }]
})

/** `GET /account/whoami` with `token`, outside the adapter: the status and errcode. */
const whoamiWith = (token: string) =>
  Effect.promise(async () => {
    const res = await fetch(`${stack.homeserverUrl}/_matrix/client/v3/account/whoami`, {
      headers: { authorization: `Bearer ${token}` }
    })
    const body = (await res.json()) as { errcode?: string }
    return { status: res.status, errcode: body.errcode }
  })

/** A fresh device and token of `user`, logged in outside the adapter. */
const rawLogin = (user: StackUser) =>
  Effect.promise(async () => {
    const res = await fetch(`${stack.homeserverUrl}/_matrix/client/v3/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: user.userId },
        password: user.password
      })
    })
    if (!res.ok) throw new Error(`login: HTTP ${res.status}`)
    const body = (await res.json()) as { access_token: string; device_id: string }
    return { accessToken: body.access_token, deviceId: body.device_id }
  })

const devicesOf = (user: StackUser) =>
  Effect.promise(async () => {
    const res = await fetch(`${stack.homeserverUrl}/_matrix/client/v3/devices`, {
      headers: { authorization: `Bearer ${user.accessToken}` }
    })
    if (!res.ok) throw new Error(`devices: HTTP ${res.status}`)
    return ((await res.json()) as { devices: Array<{ device_id: string; display_name?: string }> }).devices
  })

const rawLogout = (token: string) =>
  Effect.promise(() =>
    fetch(`${stack.homeserverUrl}/_matrix/client/v3/logout`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` }
    }).then(() => undefined)
  )

/** The first event of `events` that satisfies `p`, bounded in time. */
const firstMatching = (events: Stream.Stream<RawCallEvent, unknown>, p: (e: RawCallEvent) => boolean) =>
  events.pipe(Stream.filter(p), Stream.runHead, Effect.map(Option.getOrThrow), Effect.timeout("20 seconds"))

/**
 * `firstMatching(events, p)` in a fiber, returned once that stream has passed on a marker event
 * Bob sent first: its listeners are on from then, so an event sent afterwards can only reach it
 * live, not through the replay of the room's current state.
 */
const watchingLive = (events: Stream.Stream<RawCallEvent, unknown>, p: (e: RawCallEvent) => boolean, tag: string) =>
  Effect.gen(function* () {
    const marker = stateKeyOf(bob, `ready-${tag}`)
    yield* asBob((b) => b.sendStateEvent(roomId, CALL_MEMBER, marker, {}))
    const ready = yield* Deferred.make<void>()
    const seen = yield* firstMatching(
      events.pipe(Stream.tap((e) => (e.stateKey === marker ? Deferred.succeed(ready, undefined) : Effect.void))),
      p
    ).pipe(Effect.fork)
    yield* Deferred.await(ready).pipe(Effect.timeout("20 seconds"))
    return seen
  })

layer(loginAs(alice), { timeout: "60 seconds", excludeTestServices: true })("matrix-js-sdk adapter on the real Synapse", (it) => {
  it.effect("session and whoami name the logged-in user and device", () =>
    Effect.gen(function* () {
      const mx = yield* MatrixClient
      const session = Option.getOrThrow(yield* mx.session)
      assert.strictEqual(session.userId, alice.userId)
      assert.strictEqual(session.deviceId, alice.deviceId)
      assert.strictEqual(session.homeserverUrl, stack.homeserverUrl)
      const me = yield* mx.whoami
      assert.strictEqual(me.userId, alice.userId)
      assert.strictEqual(me.deviceId, alice.deviceId)
    }))

  it.effect("requestOpenIdToken returns a Bearer token for the server name", () =>
    Effect.gen(function* () {
      const token = yield* (yield* MatrixClient).requestOpenIdToken
      assert.strictEqual(token.tokenType, "Bearer")
      assert.strictEqual(token.matrixServerName, stack.serverName)
      assert.isAbove(token.expiresIn, 0)
      assert.isAbove(Redacted.value(token.accessToken).length, 8)
      assert.notInclude(String(token.accessToken), Redacted.value(token.accessToken))
    }))

  it.effect("serverSupport sees MSC4140 (with its max delay) and MSC4354", () =>
    Effect.gen(function* () {
      const support = yield* (yield* MatrixClient).serverSupport
      assert.isTrue(support.delayedEvents)
      assert.isTrue(support.stickyEvents)
      // homeserver.yaml sets max_event_delay_duration: 24h
      assert.deepStrictEqual(support.maxDelayMs, Option.some(24 * 3600 * 1000))
    }))

  it.effect("rtcTransports and wellKnown return the raw JSON with the auth service", () =>
    Effect.gen(function* () {
      const mx = yield* MatrixClient
      const transports = (yield* mx.rtcTransports) as { rtc_transports: Array<Record<string, unknown>> }
      assert.deepStrictEqual(transports.rtc_transports[0], { type: "livekit", livekit_service_url: stack.authServiceUrl })
      const wk = (yield* mx.wellKnown) as Record<string, unknown>
      assert.deepStrictEqual(wk["org.matrix.msc4143.rtc_foci"], [
        { type: "livekit", livekit_service_url: stack.authServiceUrl }
      ])
    }))

  it.effect("roomVersion of the call room", () =>
    Effect.gen(function* () {
      const version = yield* (yield* MatrixClient).roomVersion(roomId)
      assert.match(version, /^[0-9a-z.]+$/)
    }))

  it.effect("delayed state event: schedule, restart, send; then the delay id is gone (M_NOT_FOUND kept)", () =>
    Effect.gen(function* () {
      const mx = yield* MatrixClient
      const sdk = yield* MatrixSdkClient
      const stateKey = stateKeyOf(alice, "delayed")
      const { delayId } = yield* mx.sendDelayedStateEvent(roomId, CALL_MEMBER, stateKey, {}, 60_000)
      assert.isAbove(delayId.length, 0)
      // Synapse answers `{delayed_events: [...]}`; matrix-js-sdk 43 types it as `{scheduled, finalised}`.
      const listed = (yield* Effect.promise(() => sdk._unstable_getDelayedEvents("scheduled"))) as {
        readonly delayed_events?: ReadonlyArray<{ readonly delay_id: string; readonly state_key?: string }>
      }
      const mine = listed.delayed_events?.find((d) => d.delay_id === delayId)
      assert.strictEqual(mine?.state_key, stateKey)
      yield* mx.updateDelayedEvent(delayId, "restart")
      // Watch for the leave before sending it, so it cannot slip past.
      const seen = yield* firstMatching(mx.callMemberEvents(roomId), (e) => e.stateKey === stateKey).pipe(
        Effect.fork
      )
      yield* mx.updateDelayedEvent(delayId, "send")
      const event = yield* seen
      assert.strictEqual(event.sender, alice.userId)
      assert.deepStrictEqual(event.content, {})
      const gone = yield* Effect.flip(mx.updateDelayedEvent(delayId, "cancel"))
      assert.strictEqual(gone.status, 404)
      assert.strictEqual(gone.errcode, "M_NOT_FOUND")
    }))

  it.effect("a cancelled delayed event is never sent", () =>
    Effect.gen(function* () {
      const mx = yield* MatrixClient
      const { delayId } = yield* mx.sendDelayedStateEvent(roomId, CALL_MEMBER, stateKeyOf(alice, "cancel"), {}, 60_000)
      yield* mx.updateDelayedEvent(delayId, "cancel")
      const again = yield* Effect.flip(mx.updateDelayedEvent(delayId, "restart"))
      assert.strictEqual(again.errcode, "M_NOT_FOUND")
    }))

  it.effect("callMemberEvents: current state first, then a membership another user sends", () =>
    Effect.gen(function* () {
      const mx = yield* MatrixClient
      const stateKey = stateKeyOf(bob, "member")
      // Alice's stream is running before Bob sends.
      const seen = yield* watchingLive(mx.callMemberEvents(roomId), (e) => e.stateKey === stateKey, "member")
      const { eventId } = yield* asBob((b) => b.sendStateEvent(roomId, CALL_MEMBER, stateKey, member(bob)))
      const event = yield* seen
      assert.strictEqual(event.eventId, eventId)
      assert.strictEqual(event.sender, bob.userId)
      assert.strictEqual(event.type, CALL_MEMBER)
      assert.deepStrictEqual(event.content, member(bob))
      // A new subscriber gets it from the current state.
      const replay = yield* firstMatching(mx.callMemberEvents(roomId), (e) => e.stateKey === stateKey)
      assert.strictEqual(replay.eventId, eventId)
      yield* asBob((b) => b.sendStateEvent(roomId, CALL_MEMBER, stateKey, {}))
    }))

  it.effect("callMemberEvents carries sticky rtc.member events with their duration", () =>
    Effect.gen(function* () {
      const mx = yield* MatrixClient
      const memberId = `test-${run}`
      const content = {
        application: { type: "m.call" },
        slot_id: "m.call#ROOM",
        rtc_transports: [{ type: "livekit", livekit_service_url: stack.authServiceUrl }],
        member: { user_id: bob.userId, device_id: bob.deviceId, id: memberId },
        versions: [],
        msc4354_sticky_key: memberId
      }
      const seen = yield* watchingLive(
        mx.callMemberEvents(roomId),
        (e) => e.type === "org.matrix.msc4143.rtc.member" && (e.content as typeof content).msc4354_sticky_key === memberId,
        "sticky"
      )
      const sent = yield* asBob((b) =>
        b.sendStickyEvent(roomId, "org.matrix.msc4143.rtc.member", content, { stickyDurationMs: 60_000 })
      )
      const event = yield* seen
      assert.strictEqual(event.eventId, sent.eventId)
      assert.strictEqual(event.sender, bob.userId)
      assert.isDefined(event.stickyDurationMs)
      assert.isAtMost(event.stickyDurationMs!, 60_000)
    }))

  it.effect("a delayed sticky event (the sticky leave) can be scheduled and cancelled", () =>
    Effect.gen(function* () {
      const mx = yield* MatrixClient
      const memberId = `leave-${run}`
      const sent = yield* mx.sendStickyEvent(
        roomId,
        "org.matrix.msc4143.rtc.member",
        { msc4354_sticky_key: memberId },
        { stickyDurationMs: 3_600_000, delayMs: 60_000 }
      )
      assert.isUndefined(sent.eventId)
      assert.isString(sent.delayId)
      yield* mx.updateDelayedEvent(sent.delayId!, "cancel")
    }))

  it.effect("M_FORBIDDEN in the forbidden room is kept as errcode", () =>
    Effect.gen(function* () {
      // users[0] created the rooms (level 100); Bob is a plain member, below call.member's 50 there.
      const e = yield* asBob((b) =>
        Effect.flip(b.sendStateEvent(forbiddenRoomId, CALL_MEMBER, stateKeyOf(bob, "forbidden"), member(bob)))
      )
      assert.strictEqual(e._tag, "MatrixError")
      assert.strictEqual(e.reason, "Http")
      assert.strictEqual(e.status, 403)
      assert.strictEqual(e.errcode, "M_FORBIDDEN")
      assert.isString(e.error)
      assert.strictEqual((e.body as { errcode?: string }).errcode, "M_FORBIDDEN")
    }))
})

describe("logging in", () => {
  it.live("layerFromClient wraps an app's client; with start it syncs and stops it on scope close", () =>
    Effect.gen(function* () {
      const client = createClient({
        baseUrl: stack.homeserverUrl,
        accessToken: alice.accessToken,
        userId: alice.userId,
        deviceId: alice.deviceId
      })
      yield* Effect.scoped(
        Effect.gen(function* () {
          const ctx = yield* Layer.build(layerFromClient(client, { start: { initialSyncLimit: 1 } }))
          assert.strictEqual(Context.get(ctx, MatrixSdkClient), client)
          assert.isTrue(client.clientRunning)
          const version = yield* Context.get(ctx, MatrixClient).roomVersion(roomId)
          assert.isString(version)
        })
      )
      assert.isFalse(client.clientRunning)
    }))

  it.live("password login creates a working session; on scope close it stops and logs its new device out", () =>
    Effect.gen(function* () {
      const { sdk, token } = yield* Effect.scoped(
        Effect.gen(function* () {
          const ctx = yield* Layer.build(
            layerLogin({ homeserverUrl: stack.homeserverUrl, user: bob.userId, password: Redacted.make(bob.password) })
          )
          const mx = Context.get(ctx, MatrixClient)
          const me = yield* mx.whoami
          assert.strictEqual(me.userId, bob.userId)
          const session = Option.getOrThrow(yield* mx.session)
          assert.strictEqual(session.userId, bob.userId)
          const sdk = Context.get(ctx, MatrixSdkClient)
          const token = sdk.getAccessToken() ?? ""
          assert.deepStrictEqual(yield* whoamiWith(token), { status: 200, errcode: undefined })
          return { sdk, token }
        })
      )
      // Stopped: no sync loop left running once the scope closed.
      assert.isFalse(sdk.clientRunning)
      // Logged out: the homeserver no longer knows the device's token.
      assert.deepStrictEqual(yield* whoamiWith(token), { status: 401, errcode: "M_UNKNOWN_TOKEN" })
    }), { timeout: 60_000 })

  it.live("a failure after the password login still logs the new device out", () =>
    Effect.gen(function* () {
      // Named, so other runs adding devices to the same account at the same time cannot confuse the check.
      const name = `layerLogin failure ${run}`
      // The first sync cannot complete in 1 ms: the layer fails after the login succeeded.
      const e = yield* Effect.flip(
        Effect.scoped(
          Layer.build(
            layerLogin({
              homeserverUrl: stack.homeserverUrl,
              user: bob.userId,
              password: Redacted.make(bob.password),
              initialDeviceDisplayName: name,
              preparedTimeout: "1 millis"
            })
          )
        )
      )
      assert.strictEqual(e.reason, "Timeout")
      const left = (yield* devicesOf(bob)).filter((d) => d.display_name === name)
      assert.deepStrictEqual(left, [], "the device the failed layer created is gone")
    }), { timeout: 60_000 })

  it.live("access-token logins and password logins that reuse a device are not logged out", () =>
    Effect.gen(function* () {
      // A token of our own (not the stack's shared one), so a wrong logout cannot break other tests.
      const own = yield* Effect.acquireRelease(rawLogin(bob), (o) => rawLogout(o.accessToken))
      yield* Effect.scoped(
        Layer.build(
          layerLogin({ homeserverUrl: stack.homeserverUrl, accessToken: Redacted.make(own.accessToken), sync: false })
        )
      )
      assert.deepStrictEqual(yield* whoamiWith(own.accessToken), { status: 200, errcode: undefined })

      // Logging in again on that device (by id): the caller's device, not one the layer created.
      const again = yield* Effect.scoped(
        Effect.map(
          Layer.build(
            layerLogin({
              homeserverUrl: stack.homeserverUrl,
              user: bob.userId,
              password: Redacted.make(bob.password),
              deviceId: own.deviceId,
              sync: false
            })
          ),
          (ctx) => Context.get(ctx, MatrixSdkClient).getAccessToken() ?? ""
        )
      )
      assert.deepStrictEqual(yield* whoamiWith(again), { status: 200, errcode: undefined })
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a dead access token fails the layer with NotAuthenticated (401 M_UNKNOWN_TOKEN), and never shows the token", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(
        Effect.scoped(
          Layer.build(
            layerLogin({ homeserverUrl: stack.homeserverUrl, accessToken: Redacted.make("syt_not_a_real_token_123") })
          )
        )
      )
      assert.strictEqual(e._tag, "NotAuthenticated")
      assert.strictEqual(e.reason, "TokenRejected")
      assert.strictEqual(e.status, 401)
      assert.strictEqual(e.errcode, "M_UNKNOWN_TOKEN")
      assert.notInclude(JSON.stringify(e), "syt_not_a_real_token_123")
      assert.notInclude(String(e.cause), "syt_not_a_real_token_123")
    }))

  it.live("a wrong password fails the layer with NotAuthenticated (403 M_FORBIDDEN), and never shows the password", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(
        Effect.scoped(
          Layer.build(
            layerLogin({ homeserverUrl: stack.homeserverUrl, user: bob.userId, password: Redacted.make("not-bobs-password-123") })
          )
        )
      )
      assert.strictEqual(e._tag, "NotAuthenticated")
      assert.strictEqual(e.reason, "LoginRejected")
      assert.strictEqual(e.status, 403)
      assert.strictEqual(e.errcode, "M_FORBIDDEN")
      assert.notInclude(JSON.stringify(e), "not-bobs-password-123")
    }))
})
