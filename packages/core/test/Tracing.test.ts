/**
 * The call's work after the join (each heartbeat, each refresh, the leave) has a trace of its own, linked to the
 * join's span, and the background fibers are outside the join's span: as the join span's children, an hours-long
 * call made one huge trace whose root closed at join time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Scope, Stream, TestClock, Tracer } from "effect"
import * as Call from "../src/Call.ts"
import { MatrixClient } from "../src/MatrixClient.ts"
import * as Testing from "../src/testing/index.ts"
import { roomId, settle } from "./utils.ts"

interface Recorded {
  readonly name: string
  readonly parent: string | undefined
  readonly links: ReadonlyArray<string>
}

const recordingTracer = (spans: Array<Recorded>) =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const nameOf = (s: Tracer.AnySpan) => (s._tag === "Span" ? s.name : "external")
      spans.push({ name, parent: Option.getOrUndefined(Option.map(parent, nameOf)), links: links.map((l) => nameOf(l.span)) })
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span${spans.length}`,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes: new Map(),
        links,
        sampled: true,
        kind,
        end: () => {},
        attribute: () => {},
        event: () => {},
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })

/** The adapter's requests in spans of their own, as a real adapter's would be. */
const spannedClient = Layer.provideMerge(
  Layer.effect(
    MatrixClient,
    Effect.map(MatrixClient, (mx) =>
      MatrixClient.of({
        ...mx,
        updateDelayedEvent: (id, action) => Effect.withSpan(mx.updateDelayedEvent(id, action), `MatrixClient.${action}`),
        sendStateEvent: (...args) => Effect.withSpan(mx.sendStateEvent(...args), "MatrixClient.sendStateEvent"),
        callMemberEvents: (r) => Stream.withSpan(mx.callMemberEvents(r), "MatrixClient.callMemberEvents")
      }))
  ),
  Testing.layer()
)

describe("tracing", () => {
  it.effect("heartbeats, refreshes and the leave are traces of their own, linked to the join", () => {
    const spans: Array<Recorded> = []
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Call.join(roomId, { membershipExpiryMs: 60_000 }).pipe(Scope.extend(scope))
      const afterJoin = spans.length
      assert.isTrue(spans.some((s) => s.name === "MatrixRTC.join" && s.parent === undefined))
      yield* TestClock.adjust(60_000)
      yield* settle
      yield* Scope.close(scope, Exit.void)
      const later = spans.slice(afterJoin)
      assert.deepStrictEqual(later.filter((s) => s.parent === "MatrixRTC.join"), [])
      for (const name of ["MatrixRTC.heartbeat", "MatrixRTC.refresh", "MatrixRTC.leave"]) {
        const own = later.filter((s) => s.name === name)
        assert.isNotEmpty(own, `no ${name} span`)
        for (const s of own) assert.deepStrictEqual(s, { name, parent: undefined, links: ["MatrixRTC.join"] })
      }
      const restarts = later.filter((s) => s.name === "MatrixClient.restart")
      assert.isNotEmpty(restarts)
      for (const s of restarts) assert.strictEqual(s.parent, "MatrixRTC.heartbeat")
      // The member watch lasts as long as the call: nothing in it is the join's either.
      assert.deepStrictEqual(spans.filter((s) => s.name === "MatrixClient.callMemberEvents").map((s) => s.parent), [undefined])
      const refreshes = later.filter((s) => s.name === "MatrixClient.sendStateEvent" && s.parent === "MatrixRTC.refresh")
      assert.isNotEmpty(refreshes)
    }).pipe(Effect.provide(spannedClient), Effect.withTracer(recordingTracer(spans)))
  })
})
