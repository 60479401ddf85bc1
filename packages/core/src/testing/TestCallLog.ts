/**
 * One ordered log shared by the in-memory homeserver, auth service and SFU, so
 * a test can assert who saw what and in which order (e.g. "SFU disconnect
 * before membership end"). Entries never hold secrets: tokens are not logged,
 * contents only as a short summary.
 */
import { Clock, Context, Effect, Fiber, Layer, Ref } from "effect"

export type Actor = "homeserver" | "auth" | "sfu"

export interface CallLogEntry {
  /** TestClock time of the call. */
  readonly at: number
  readonly actor: Actor
  readonly op: string
  readonly roomId?: string | undefined
  readonly stateKey?: string | undefined
  /** Who made the call (user id or LiveKit identity), when known. */
  readonly who?: string | undefined
  /** A content summary, e.g. `leave`, `join expires=14400000`, `fault 403 M_FORBIDDEN`. */
  readonly detail?: string | undefined
}

export interface TestCallLogService {
  readonly append: (entry: Omit<CallLogEntry, "at">) => Effect.Effect<void>
  readonly entries: Effect.Effect<ReadonlyArray<CallLogEntry>>
  /** `actor:op` strings, handy for order assertions. */
  readonly ops: Effect.Effect<ReadonlyArray<string>>
  readonly clear: Effect.Effect<void>
}

export class TestCallLog extends Context.Tag("@matrixrtc-effect/core/testing/TestCallLog")<
  TestCallLog,
  TestCallLogService
>() {}

export const make: Effect.Effect<TestCallLogService> = Effect.gen(function*() {
  const ref = yield* Ref.make<ReadonlyArray<CallLogEntry>>([])
  const entries = Ref.get(ref)
  return TestCallLog.of({
    append: (entry) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => Ref.update(ref, (xs) => [...xs, { at, ...entry }])),
    entries,
    ops: Effect.map(entries, (xs) => xs.map((e) => `${e.actor}:${e.op}`)),
    clear: Ref.set(ref, [])
  })
})

export const layer: Layer.Layer<TestCallLog> = Layer.effect(TestCallLog, make)

/** A fault the in-memory backends inject into the next call(s) of an operation. */
export type Fault =
  | {
    readonly _tag: "Fail"
    /** HTTP status; omit for a transport (network) failure. */
    readonly status?: number | undefined
    readonly errcode?: string | undefined
    readonly error?: string | undefined
    /** Extra JSON body keys (e.g. the MSC4140 max-delay variants). */
    readonly body?: Readonly<Record<string, unknown>> | undefined
    readonly retryAfterMs?: number | undefined
  }
  | { readonly _tag: "Hang" }
  /** The operation takes `ms` (on the Effect clock) and then goes ahead normally. */
  | { readonly _tag: "Delay"; readonly ms: number }
  /**
   * The request reaches the server `ms` later (on the Effect clock) even when the caller has stopped waiting by
   * then: a request already on the wire, which interrupting the caller cannot recall.
   */
  | { readonly _tag: "Late"; readonly ms: number }

export const fail = (f: Omit<Extract<Fault, { _tag: "Fail" }>, "_tag"> = {}): Fault => ({ _tag: "Fail", ...f })
export const hang: Fault = { _tag: "Hang" }
export const delay = (ms: number): Fault => ({ _tag: "Delay", ms })
export const late = (ms: number): Fault => ({ _tag: "Late", ms })

/** A per-operation queue of faults; each call of the operation consumes one. */
export interface FaultQueue<Op extends string> {
  readonly inject: (op: Op, fault: Fault, times?: number) => Effect.Effect<void>
  readonly clear: Effect.Effect<void>
  /**
   * Plays the fault queued for this call of `op`, if any: a `Delay` (or `Late`) waits and lets the call go on, a
   * `Hang` never returns, a `Fail` fails with what `toError` makes of it. Hangs and failures go into the call log.
   */
  readonly play: <E>(
    op: Op,
    where: Omit<CallLogEntry, "at" | "actor" | "op" | "detail">,
    toError: (fault: FailFault) => E
  ) => Effect.Effect<void, E>
  /** `play`, then `body`; a `Late` runs both apart from the caller, so they finish even if the caller is interrupted. */
  readonly run: <A, E>(
    op: Op,
    where: Omit<CallLogEntry, "at" | "actor" | "op" | "detail">,
    toError: (fault: FailFault) => E,
    body: Effect.Effect<A, E>
  ) => Effect.Effect<A, E>
}

export type FailFault = Extract<Fault, { _tag: "Fail" }>

/** The fault queue of one in-memory backend; what it plays is logged under `actor`. */
export const makeFaultQueue = <Op extends string>(log: TestCallLogService, actor: Actor): Effect.Effect<FaultQueue<Op>> =>
  Effect.map(Ref.make<ReadonlyArray<{ readonly op: Op; readonly fault: Fault }>>([]), (ref) => {
    const take = (op: Op) =>
      Ref.modify(ref, (xs): [Fault | undefined, ReadonlyArray<{ readonly op: Op; readonly fault: Fault }>] => {
        const i = xs.findIndex((x) => x.op === op)
        return i < 0 ? [undefined, xs] : [xs[i]!.fault, [...xs.slice(0, i), ...xs.slice(i + 1)]]
      })
    /** Plays one fault: a `Delay` (or `Late`) waits, a `Hang` never returns, a `Fail` fails; all but delays are logged. */
    const playFault = <E>(
      fault: Fault | undefined,
      op: Op,
      where: Omit<CallLogEntry, "at" | "actor" | "op" | "detail">,
      toError: (fault: FailFault) => E
    ): Effect.Effect<void, E> => {
      if (fault === undefined) return Effect.void
      switch (fault._tag) {
        case "Delay":
          return Effect.sleep(fault.ms)
        case "Late":
          return Effect.zipRight(log.append({ ...where, actor, op, detail: `fault late ${fault.ms}` }), Effect.sleep(fault.ms))
        case "Hang":
          return Effect.zipRight(log.append({ ...where, actor, op, detail: "fault hang" }), Effect.never)
        case "Fail":
          return Effect.zipRight(
            log.append({ ...where, actor, op, detail: describeFault(fault) }),
            Effect.fail(toError(fault))
          )
      }
    }
    return {
      inject: (op, fault, times = 1) =>
        Ref.update(ref, (xs) => [...xs, ...Array.from({ length: times }, () => ({ op, fault }))]),
      clear: Ref.set(ref, []),
      play: (op, where, toError) => Effect.flatMap(take(op), (fault) => playFault(fault, op, where, toError)),
      run: (op, where, toError, body) =>
        Effect.flatMap(take(op), (fault) => {
          const call = Effect.zipRight(playFault(fault, op, where, toError), body)
          return fault?._tag === "Late" ? Effect.flatMap(Effect.forkDaemon(call), Fiber.join) : call
        })
    }
  })

const describeFault = (f: FailFault): string =>
  ["fault", f.status ?? "network", f.errcode].filter((x) => x !== undefined).join(" ")
