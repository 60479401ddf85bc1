/**
 * For apps with one active call: `connect(roomId)` joins (leaving any previous
 * call first), `disconnect` leaves, `activeCall`/`activeCalls` tell which call
 * is on. Each call lives in its own scope, closed on disconnect, when the call
 * ends by itself (`Call.ended`), and when the layer is torn down. Programs that need several calls at once use
 * `Call.join` directly, each in its own scope.
 */
import { Context, Deferred, Effect, Exit, Layer, Option, Ref, Scope, Stream, SubscriptionRef } from "effect"
import type { AuthService } from "./AuthService.ts"
import type { Call, JoinOptions } from "./Call.ts"
import { join } from "./Call.ts"
import type { ConnectFailed, JwtFetchFailed, MembershipFailed, NotAuthenticated } from "./CallError.ts"
import type { RoomId } from "./Ids.ts"
import { JoinCache } from "./JoinCache.ts"
import type { LiveKit } from "./LiveKit.ts"
import type { MatrixClient } from "./MatrixClient.ts"

export interface CallServiceService {
  /** Joins `roomId`; an active call is left first. A `disconnect` meanwhile interrupts it (nothing is left behind). */
  readonly connect: (
    roomId: RoomId,
    options?: JoinOptions
  ) => Effect.Effect<Call, NotAuthenticated | JwtFetchFailed | ConnectFailed | MembershipFailed>
  /** Leaves the active call, if any, and interrupts every connect under way or waiting. */
  readonly disconnect: Effect.Effect<void>
  readonly activeCall: Effect.Effect<Option.Option<Call>>
  /** The active call now, then after every connect/disconnect. */
  readonly activeCalls: Stream.Stream<Option.Option<Call>>
}

export class CallService extends Context.Tag("@matrixrtc-effect/core/CallService")<CallService, CallServiceService>() {}

export const make: Effect.Effect<CallServiceService, never, Scope.Scope | MatrixClient | AuthService | LiveKit> = Effect
  .gen(function*() {
    const required = yield* Effect.context<MatrixClient | AuthService | LiveKit>()
    // A JoinCache beside the layer serves its joins too.
    const context = Option.match(yield* Effect.serviceOption(JoinCache), {
      onNone: () => required,
      onSome: (cache) => Context.add(required, JoinCache, cache)
    })
    const layerScope = yield* Effect.scope
    const active = yield* SubscriptionRef.make<Option.Option<{ readonly call: Call; readonly scope: Scope.CloseableScope }>>(
      Option.none()
    )
    // One connect/disconnect at a time, so two connects cannot both end up "active".
    const lock = yield* Effect.makeSemaphore(1)
    // Completed by the next disconnect: a connect started before it gives up, rather than make the hang-up wait
    // for the lock through a whole (possibly slow) join.
    const hangUp = yield* Ref.make(yield* Deferred.make<void>())
    // Set at teardown: a connect that gets the lock afterwards would make a call nobody is left to close.
    const closed = yield* Ref.make(false)

    const closeActive = Effect.flatMap(SubscriptionRef.getAndSet(active, Option.none()), (current) =>
      Option.match(current, {
        onNone: () => Effect.void,
        onSome: ({ scope }) => Scope.close(scope, Exit.void)
      }))

    const connectLocked: CallServiceService["connect"] = (roomId, options) =>
      lock.withPermits(1)(
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            if (yield* Ref.get(closed)) return yield* Effect.interrupt
            yield* closeActive
            const scope = yield* Scope.make()
            const exit = yield* restore(join(roomId, options)).pipe(
              Scope.extend(scope),
              Effect.provide(context),
              Effect.exit
            )
            if (Exit.isFailure(exit)) {
              yield* Scope.close(scope, exit)
              return yield* exit
            }
            const call = exit.value
            yield* SubscriptionRef.set(active, Option.some({ call, scope }))
            // A call can end by itself (the SFU dropped us): then it is no longer the active one.
            yield* call.ended.pipe(
              Effect.zipRight(SubscriptionRef.modify(active, (cur) =>
                Option.isSome(cur) && cur.value.call === call
                  ? [Scope.close(scope, Exit.void), Option.none()]
                  : [Effect.void, cur])),
              Effect.flatten,
              // forked inside the uninterruptible connect: make the watcher interruptible, or layer teardown waits on it
              Effect.interruptible,
              Effect.forkIn(layerScope)
            )
            return call
          })
        )
      )

    // Interrupted by the hang-up, the join's scope is closed as for any failed join (inside connectLocked).
    const connect: CallServiceService["connect"] = (roomId, options) =>
      Effect.flatMap(Ref.get(hangUp), (signal) =>
        Effect.raceFirst(connectLocked(roomId, options), Effect.zipRight(Deferred.await(signal), Effect.interrupt)))

    const disconnect = Effect.flatMap(Deferred.make<void>(), (next) => Ref.getAndSet(hangUp, next)).pipe(
      Effect.flatMap((signal) => Deferred.succeed(signal, undefined)),
      Effect.zipRight(lock.withPermits(1)(closeActive))
    )

    // As a disconnect: a connect under way at teardown is interrupted, not left to finish into a call whose
    // scope is no longer closed by anyone.
    yield* Effect.addFinalizer(() => Effect.zipRight(Ref.set(closed, true), disconnect))

    return CallService.of({
      connect,
      disconnect,
      activeCall: Effect.map(SubscriptionRef.get(active), Option.map((a) => a.call)),
      activeCalls: Stream.map(active.changes, Option.map((a) => a.call))
    })
  })

export const layer: Layer.Layer<CallService, never, MatrixClient | AuthService | LiveKit> = Layer.scoped(
  CallService,
  make
)
