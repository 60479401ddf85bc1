// rtc-node's native runtime cannot be started again once disposed (a connect then never
// hears back). The adapter must say so at once, not hang until the connect timeout.
// This file disposes the runtime of its own worker process, so it holds nothing else.
import { assert, it } from "@effect/vitest"
import { LiveKit } from "@matrixrtc-effect/core"
import { Effect, Layer, Redacted } from "effect"
import * as NodeLiveKit from "../src/NodeLiveKit.ts"

it.live("after the last layer closed (runtime disposed), a connect fails at once with the reason", () =>
  Effect.gen(function* () {
    // The first layer's scope closes here, which disposes the runtime.
    yield* Effect.scoped(Layer.build(NodeLiveKit.layer()))
    const e = yield* Effect.flip(
      Effect.scoped(
        Effect.flatMap(LiveKit, (lk) => lk.connect("ws://127.0.0.1:9", Redacted.make("x.y.z"), { timeoutMs: 60_000 }))
      ).pipe(Effect.provide(NodeLiveKit.layer()), Effect.timeout("5 seconds"))
    )
    assert.strictEqual(e._tag, "ConnectFailed")
    if (e._tag !== "ConnectFailed") return
    assert.strictEqual(e.reason, "Transport")
    assert.include(e.error ?? "", "disposed")
  }))
