/**
 * SDK event listeners tied to a scope: attached now, detached when the scope
 * closes. Both LiveKit adapters bridge their SDK's room events this way; the
 * emitter is typed by shape (`on`/`off`), so core needs no SDK types.
 */
import type { Scope } from "effect"
import { Effect } from "effect"

export interface Emitter<E> {
  readonly on: (event: E, listener: (...args: Array<any>) => void) => unknown
  readonly off: (event: E, listener: (...args: Array<any>) => void) => unknown
}

export type Listener<E> = readonly [event: E, listener: (...args: Array<any>) => void]

/** Attaches every `[event, listener]` to `emitter` until the scope closes. */
export const scoped = <E>(emitter: Emitter<E>, listeners: ReadonlyArray<Listener<E>>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      for (const [event, listener] of listeners) emitter.on(event, listener)
    }),
    () =>
      Effect.sync(() => {
        for (const [event, listener] of listeners) emitter.off(event, listener)
      })
  )
