/**
 * Joining a room the homeserver will not show us (session dialect; the version is not at hand locally): Synapse
 * answers the room-version lookup with 403, and the join fails there, as MembershipFailed Forbidden, before the JWT
 * request (the auth service would create a LiveKit room for it) and before anything is published. A room whose
 * version is at hand (synced, left, world-readable) is refused later, at the membership write.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, TestClock } from "effect"
import * as Call from "../src/Call.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as Testing from "../src/testing/index.ts"
import { assertNothingLeft, ops, roomId, settle, TestHomeserver } from "./utils.ts"

const { fail } = Testing.TestCallLog
const notInRoom = fail({ status: 403, errcode: "M_FORBIDDEN", error: "User @alice:example.org not in room" })

/** The room-version answer comes a second after everything else: the JWT request does not go out meanwhile. */
const slowRoomVersion = Layer.provideMerge(
  Layer.effect(
    MatrixClient,
    Effect.map(MatrixClient, (mx) => MatrixClient.of({ ...mx, roomVersion: (r) => Effect.delay(mx.roomVersion(r), "1 second") }))
  ),
  Testing.layer()
)

describe("a room we are not joined to", () => {
  it.effect("join: MembershipFailed Forbidden before the JWT, nothing published", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("roomVersion", notInRoom)
      const joining = yield* Effect.fork(Effect.flip(Effect.scoped(Call.join(roomId))))
      yield* settle
      assert.notInclude(yield* ops, "auth:sfuGet")
      yield* TestClock.adjust("1 second")
      const e = yield* Fiber.join(joining)
      assert.strictEqual(e._tag, "MembershipFailed")
      if (e._tag !== "MembershipFailed") return
      assert.strictEqual(e.reason, "Forbidden")
      assert.strictEqual(e.status, 403)
      assert.strictEqual(e.errcode, "M_FORBIDDEN")
      assert.include(e.message, "not joined to the room")
      const log = yield* ops
      for (const op of ["auth:sfuGet", "homeserver:scheduleDelayed", "homeserver:sendState", "sfu:connect"]) {
        assert.notInclude(log, op)
      }
      yield* assertNothingLeft
    }).pipe(Effect.provide(slowRoomVersion)))

  it.effect("prepare fails the same way, without a JWT", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("roomVersion", notInRoom)
      const e = yield* Effect.flip(Call.prepare(roomId))
      assert.strictEqual(e._tag, "MembershipFailed")
      assert.notInclude(yield* ops, "auth:sfuGet")
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("another room-version failure still falls back to version 1 and joins", () =>
    Effect.gen(function*() {
      const hs = yield* TestHomeserver.TestHomeserver
      yield* hs.injectFault("roomVersion", fail({ status: 500 }))
      yield* Effect.scoped(Call.join(roomId))
      assert.include(yield* ops, "homeserver:sendState")
    }).pipe(Effect.provide(Testing.layer())))
})
