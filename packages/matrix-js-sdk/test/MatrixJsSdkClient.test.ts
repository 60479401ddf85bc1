import { assert, describe, it } from "@effect/vitest"
import type { Ids } from "@matrixrtc-effect/core"
import { Effect } from "effect"
import { createClient } from "matrix-js-sdk"
import { keepAliveRequests, make, withKeepAlive } from "../src/MatrixJsSdkClient.ts"

/** A client whose fetch answers like a homeserver with MSC4140 and records each request's path and keepalive. */
const recordingClient = () => {
  const seen: Array<{ readonly method: string; readonly path: string; readonly keepalive: boolean }> = []
  const fetchFn = (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input))
    seen.push({ method: init?.method ?? "GET", path: url.pathname, keepalive: init?.keepalive === true })
    const body = url.pathname === "/_matrix/client/versions"
      ? { versions: ["v1.11"], unstable_features: { "org.matrix.msc4140": true } }
      : url.pathname.includes("/state/")
      ? { event_id: "$e" }
      : {}
    return Promise.resolve(new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } }))
  }
  const client = createClient({ baseUrl: "http://127.0.0.1:1", accessToken: "t", userId: "@a:b", deviceId: "D", fetchFn })
  return { mx: make(client), seen }
}

const roomId = "!room:b" as Ids.RoomId

describe("MatrixJsSdkClient: keepalive requests", () => {
  it.effect("sending the delayed leave always goes with keepalive; restart and cancel do not", () =>
    Effect.gen(function*() {
      const { mx, seen } = recordingClient()
      yield* mx.updateDelayedEvent("syd_1", "restart")
      yield* mx.updateDelayedEvent("syd_1", "cancel")
      yield* mx.updateDelayedEvent("syd_1", "send")
      const updates = seen.filter((r) => r.path.includes("/delayed_events/"))
      assert.deepStrictEqual(updates.map((r) => [r.path.split("/").pop(), r.keepalive]), [
        ["restart", false],
        ["cancel", false],
        ["send", true]
      ])
    }))

  it.effect("inside withKeepAlive, state writes and delayed-event updates go with keepalive; outside they do not", () =>
    Effect.gen(function*() {
      const { mx, seen } = recordingClient()
      yield* mx.sendStateEvent(roomId, "org.matrix.msc3401.call.member", "_@a:b_D_m.call", {})
      yield* withKeepAlive(
        Effect.all([
          mx.sendStateEvent(roomId, "org.matrix.msc3401.call.member", "_@a:b_D_m.call", {}),
          mx.updateDelayedEvent("syd_2", "cancel")
        ])
      )
      assert.isFalse(yield* keepAliveRequests, "the FiberRef is only on inside withKeepAlive")
      const writes = seen.filter((r) => r.method === "PUT" || r.path.includes("/delayed_events/"))
      assert.deepStrictEqual(writes.map((r) => [r.method, r.keepalive]), [
        ["PUT", false],
        ["PUT", true],
        ["POST", true]
      ])
    }))
})
