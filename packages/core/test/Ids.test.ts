import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Ids } from "../src/index.ts"

const ok = <A>(e: Effect.Effect<A, Ids.InvalidId>) => Effect.either(e).pipe(Effect.map(Either.isRight))

describe("Ids", () => {
  it.effect("room ids: v1–v11 with a server part, v12 as a bare event hash", () =>
    Effect.gen(function*() {
      assert.isTrue(yield* ok(Ids.roomId("!abc:example.org")))
      assert.isTrue(yield* ok(Ids.roomId("!abc:127.0.0.1:8448")))
      assert.isTrue(yield* ok(Ids.roomId("!abc:[::1]:8448")))
      // room version 12 (MSC4291): `!` + 43 url-safe unpadded base64 chars
      assert.isTrue(yield* ok(Ids.roomId("!LG5xQ0c3a1pbGt7lJ0Zqk2Vh_yNn-3xq0eQ9YpWm1sA")))
      assert.isFalse(yield* ok(Ids.roomId("!short")))
      assert.isFalse(yield* ok(Ids.roomId("#alias:example.org")))
      assert.isFalse(yield* ok(Ids.roomId("!a b:example.org")))
      assert.isFalse(yield* ok(Ids.roomId("")))
    }))

  it.effect("user ids and device ids", () =>
    Effect.gen(function*() {
      assert.isTrue(yield* ok(Ids.userId("@alice:localhost")))
      assert.isTrue(yield* ok(Ids.userId("@alice:localhost:8448")))
      assert.isFalse(yield* ok(Ids.userId("alice:localhost")))
      assert.isFalse(yield* ok(Ids.userId("@alice")))
      assert.isTrue(yield* ok(Ids.deviceId("ABCDEF")))
      assert.isFalse(yield* ok(Ids.deviceId("")))
      assert.isFalse(yield* ok(Ids.deviceId("A B")))
    }))

  it.effect("a bad id is a typed InvalidId naming the kind and value", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(Ids.roomId("not-a-room"))
      assert.strictEqual(e._tag, "InvalidId")
      assert.strictEqual(e.kind, "RoomId")
      assert.include(e.message, "not-a-room")
    }))
})
