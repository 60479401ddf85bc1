import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Call from "../src/Call.ts"
import * as Testing from "../src/testing/index.ts"
import { ops, roomId } from "./utils.ts"

const openIdRequests = Effect.map(ops, (o) => o.filter((x) => x === "homeserver:openid").length)
const joinTwice = Effect.zipRight(Effect.scoped(Call.join(roomId)), Effect.scoped(Call.join(roomId)))

describe("Testing.layer's joinCache", () => {
  it.effect("by default every join asks for its own OpenID token", () =>
    Effect.gen(function*() {
      yield* joinTwice
      assert.strictEqual(yield* openIdRequests, 2)
    }).pipe(Effect.provide(Testing.layer())))

  it.effect("with joinCache: {} the second join reuses the first one's token, as on the platform layers", () =>
    Effect.gen(function*() {
      yield* joinTwice
      assert.strictEqual(yield* openIdRequests, 1)
    }).pipe(Effect.provide(Testing.layer({ joinCache: {} }))))
})
