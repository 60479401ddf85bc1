/**
 * Leaving a call when the page goes away.
 *
 * Closing a tab, reloading or navigating away fires `pagehide` (the one unload
 * signal that is reliable across browsers and keeps the back/forward cache
 * usable, unlike `unload`/`beforeunload`; `beforeunload` can also still be
 * cancelled by the page). On it we start the ordinary leave: disconnect from the
 * SFU, then remove the membership. A page the browser or mobile OS freezes in the
 * background and then discards gets no `pagehide` (at most a `freeze` event, after
 * which it runs nothing): only the delayed leave (below) ends its membership.
 *
 * Once `pagehide` has run, the page is torn down within tens of milliseconds
 * (measured in Chromium: 70–110 ms): a timer or network answer it waits for may
 * never arrive, and requests still in flight are cancelled. So the leave must get
 * its homeserver request out without waiting for anything, and that request must
 * survive the teardown:
 *
 * - `BrowserLiveKit`'s disconnect stops waiting for the SFU at `pagehide` (it
 *   could never finish here), whether it started before or after it; the
 *   disconnect itself, which sends the SFU leave first, carries on. livekit-client's
 *   own `disconnectOnPageLeave` is off by default, so a `beforeunload` the app
 *   cancels does not end the call: this leave is the one that runs on page close;
 * - the leave runs with the matrix-js-sdk adapter's `keepAliveRequests` on, so
 *   sending the delayed leave (or writing `{}`) goes out with fetch's `keepalive`,
 *   which the browser completes after the page is gone.
 *
 * Should that still fail (the browser crashed, the network was down), the MSC4140
 * delayed leave remains: `join` keeps restarting a delayed `{}` membership while
 * the page lives, so the homeserver ends the membership itself after the delay
 * (8 s by default).
 */
import type { Scope } from "effect"
import { Effect, Runtime } from "effect"
import { MatrixJsSdkClient } from "@matrixrtc-effect/matrix-js-sdk"

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
          Effect.zipRight(MatrixJsSdkClient.withKeepAlive(leave)),
          Effect.catchAll((e) => Effect.logWarning("leave on pagehide failed; the delayed leave will remove the membership", e))
        )
      )
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => target.addEventListener("pagehide", onPageHide)),
      () => Effect.sync(() => target.removeEventListener("pagehide", onPageHide))
    )
  })
