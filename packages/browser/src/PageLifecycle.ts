/**
 * Leaving a call when the page goes away.
 *
 * Closing a tab, navigating away or the mobile OS discarding the page fires
 * `pagehide` (the one unload signal that is reliable across browsers and keeps
 * the back/forward cache usable, unlike `unload`/`beforeunload`). On it we start
 * the ordinary leave: disconnect from the SFU, then remove the membership.
 *
 * The page may be frozen or torn down before those requests finish. That case is
 * what the MSC4140 delayed leave is for: `join` scheduled a delayed `{}`
 * membership event and keeps restarting it while the call is alive, so once the
 * page stops restarting it the homeserver sends the leave itself after the
 * delay (8 s by default). Other members thus see us leave within about
 * "delay + one sync", whether or not the page got to finish.
 */
import type { Scope } from "effect"
import { Effect, Runtime } from "effect"

/**
 * Runs `leave` when the page fires `pagehide`, at most once, for as long as the
 * surrounding scope is open (the listener is removed when it closes).
 *
 * Typical use, with the call's scope as the surrounding scope:
 *
 * ```ts
 * const call = yield* join(options)                       // in a scope
 * yield* leaveOnPageHide(call.leave)                      // or Scope.close(callScope, Exit.void)
 * ```
 */
export const leaveOnPageHide = <E>(
  leave: Effect.Effect<void, E>,
  /** Where `pagehide` is dispatched; the window by default. */
  target: Pick<EventTarget, "addEventListener" | "removeEventListener"> = globalThis
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    // The DOM callback runs the leave through the caller's runtime (effect-style.md §9.1),
    // so logging and tracing services stay in place.
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    let started = false
    const onPageHide = (event: Event) => {
      if (started) return
      started = true
      runFork(
        Effect.logInfo("page hidden: leaving the call").pipe(
          Effect.annotateLogs({ persisted: (event as Partial<PageTransitionEvent>).persisted ?? false }),
          Effect.zipRight(leave),
          Effect.catchAll((e) => Effect.logWarning("leave on pagehide failed; the delayed leave will remove the membership", e))
        )
      )
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => target.addEventListener("pagehide", onPageHide)),
      () => Effect.sync(() => target.removeEventListener("pagehide", onPageHide))
    )
  })
