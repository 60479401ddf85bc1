import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as EventListeners from "../src/EventListeners.ts"

/** A minimal emitter that records who listens to what. */
const emitter = () => {
  const listeners = new Map<string, Set<(...args: Array<any>) => void>>()
  return {
    on: (e: string, f: (...args: Array<any>) => void) => listeners.set(e, (listeners.get(e) ?? new Set()).add(f)),
    off: (e: string, f: (...args: Array<any>) => void) => listeners.get(e)?.delete(f),
    emit: (e: string, ...args: Array<unknown>) => listeners.get(e)?.forEach((f) => f(...args)),
    count: () => [...listeners.values()].reduce((n, s) => n + s.size, 0)
  }
}

describe("EventListeners.scoped", () => {
  it.effect("listens while the scope is open and detaches every listener when it closes", () =>
    Effect.gen(function*() {
      const room = emitter()
      const heard: Array<string> = []
      const scope = yield* Scope.make()
      yield* EventListeners.scoped(room, [
        ["a", (x: string) => heard.push(`a:${x}`)],
        ["b", () => heard.push("b")]
      ]).pipe(Scope.extend(scope))
      room.emit("a", "1")
      room.emit("b")
      assert.deepStrictEqual(heard, ["a:1", "b"])
      assert.strictEqual(room.count(), 2)
      yield* Scope.close(scope, Exit.void)
      room.emit("a", "2")
      assert.deepStrictEqual(heard, ["a:1", "b"])
      assert.strictEqual(room.count(), 0)
    }))
})
