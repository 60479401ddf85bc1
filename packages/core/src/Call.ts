/**
 * The call lifecycle: `join(roomId, options)` is one scoped program that
 * authenticates, fetches a LiveKit JWT, connects to the SFU while it publishes
 * the call membership, and keeps the membership alive (MSC4140 heartbeat,
 * expiry refresh, re-publish). Closing the scope leaves the call.
 *
 * Cleanup is the same for leave, failure and interruption, and is registered
 * before anything it undoes exists: stop the background fibers, disconnect
 * LiveKit, then end the membership (once a write still on its way has been
 * answered; send the scheduled delayed leave, else put `{}`), each step
 * bounded in time (effect-style.md §3), none skipped because another failed.
 */
import { Cause, Clock, Context, Deferred, Effect, Either, Exit, Fiber, Option, Predicate, Random, Scope, Stream, SubscriptionRef, Tracer } from "effect"
import type { LiveKitGrant } from "./AuthService.ts"
import { AuthService } from "./AuthService.ts"
import { ConnectFailed, joinFailure, JwtFetchFailed, MembershipFailed, NotAuthenticated } from "./CallError.ts"
import type { CallMember } from "./CallMember.ts"
import * as CallMembers from "./CallMembers.ts"
import type { RoomId } from "./Ids.ts"
import type { LiveKitConnection } from "./LiveKit.ts"
import { LiveKit } from "./LiveKit.ts"
import * as LiveKitAdapter from "./LiveKitAdapter.ts"
import type { MatrixClientService, RawCallEvent, ServerSupport, Session } from "./MatrixClient.ts"
import { MatrixClient, MatrixError } from "./MatrixClient.ts"
import * as Grant from "./Grant.ts"
import * as JoinCache from "./JoinCache.ts"
import * as MatrixErrors from "./MatrixErrors.ts"
import * as MatrixRetry from "./MatrixRetry.ts"
import * as Membership from "./Membership.ts"

export type Dialect = Grant.Dialect

/**
 * Every duration here (ms) must be a finite number above 0 when given: `join` dies otherwise (a defect, an
 * `IllegalArgumentException`), before any request. Such a value is a bug in the calling code, not a condition to
 * handle at run time (0 would make the heartbeat spin, NaN or Infinity would never fire); an app that takes these
 * from its users checks them itself.
 */
export interface JoinOptions {
  /** Delay of the MSC4140 delayed leave (ms, default 8 000); lowered to the server's maximum when it says so. */
  readonly delayMs?: number | undefined
  /** How often the delayed leave is restarted (ms, default 5 000). */
  readonly heartbeatMs?: number | undefined
  /** `expires` of the session membership (ms, default 14 400 000 = 4 h). */
  readonly membershipExpiryMs?: number | undefined
  /** `"session"` (default): per-device state event + `/sfu/get`; `"sticky"`: MSC4143 sticky event + `/get_token`. */
  readonly dialect?: Dialect | undefined
  /** Used when neither the transports endpoint nor `.well-known` names an auth service. */
  readonly authServiceUrl?: string | undefined
  /** `m.call.intent`, e.g. `"audio"` or `"video"`. */
  readonly callIntent?: string | undefined
  /**
   * Upper bound of the SFU connect (ms). Default: the LiveKit layer's own bound (`connectTimeoutMs` of
   * NodeLiveKit/BrowserLiveKit, 20 000 unless configured there).
   */
  readonly connectTimeoutMs?: number | undefined
  /**
   * Upper bound of each leave step (ms, default 3 000): SFU disconnect, waiting for a membership write still on its
   * way, each request that ends the membership.
   */
  readonly leaveStepTimeoutMs?: number | undefined
  /**
   * Upper bound of one homeserver request of the join and the call (ms, default 10 000): the OpenID token,
   * discovery, `/versions`, the room version, the membership and its heartbeat.
   */
  readonly requestTimeoutMs?: number | undefined
  /**
   * The result of an earlier `prepare` for this room: the join then starts at the membership and the SFU
   * connect. Ignored (with a log line) when it is for another room, dialect or session, older than 4 min,
   * or its JWT is about to expire.
   */
  readonly prepared?: PreparedJoin | undefined
}

export type PrepareOptions = Pick<JoinOptions, "dialect" | "authServiceUrl">

/**
 * Everything a join needs before it publishes anything: the auth service, a LiveKit JWT and what the
 * server supports. Made by `prepare` while nothing is visible to others yet (e.g. while the user is
 * in a lobby), then handed to `join` through `JoinOptions.prepared`.
 */
export interface PreparedJoin {
  readonly roomId: RoomId
  readonly dialect: Dialect
  readonly session: Session
  readonly memberId: string
  readonly authServiceUrl: string
  readonly grant: LiveKitGrant
  readonly support: ServerSupport
  readonly roomVersion: string
  /** Clock time (ms) when the grant was in hand. */
  readonly preparedAt: number
}

/** Our own membership as last written. */
export interface OwnMembership {
  readonly roomId: RoomId
  readonly dialect: Dialect
  readonly eventType: string
  /** The state key (session dialect). */
  readonly stateKey: string | undefined
  readonly memberId: string
  readonly content: Readonly<Record<string, unknown>>
  /** The scheduled delayed leave, when the server supports MSC4140. */
  readonly delayId: Option.Option<string>
  /** The delay in use (the configured one, or lower if the server capped it). */
  readonly delayMs: number
}

export interface Call {
  readonly roomId: RoomId
  readonly session: Session
  /** The auth-service base URL we advertise and took the JWT from. */
  readonly authServiceUrl: string
  /**
   * The LiveKit connection (identity, room, state, remote participants); its change streams end when the call
   * does. The platform's richer handle: `NodeLiveKit.nodeConnection(call.connection)` and the browser's equivalent.
   */
  readonly connection: LiveKitConnection
  readonly membership: Effect.Effect<OwnMembership>
  /** The current membership, then every change (delay id, refreshed content); ends when the call has ended. */
  readonly membershipChanges: Stream.Stream<OwnMembership>
  /**
   * Whether others can see our membership: the current health, then every change, until the call has ended
   * (JS-SDK's `probablyLeft`). `"ProbablyLeft"` once the delayed leave has gone unrestarted for its whole delay
   * (it has most likely fired), or the room shows our membership gone; `"Live"` again once the membership is
   * back and the delayed leave is restarted. The call mends itself meanwhile; this is for telling the user.
   */
  readonly membershipHealth: Stream.Stream<MembershipHealth>
  /**
   * The call's members (parsed, expired dropped, oldest first): the current list, then every change, until
   * the call has ended. The first list is the first one that shows our own membership: a client's view of the
   * room can lag behind our send (matrix-js-sdk learns of it with the next sync), and a list without us is not
   * the call we joined.
   */
  readonly members: Stream.Stream<ReadonlyArray<CallMember>>
  /** The current member list, once the room shows our own membership (see `members`). */
  readonly currentMembers: Effect.Effect<ReadonlyArray<CallMember>>
  /** Leaves now (the same cleanup the scope runs on close; idempotent). */
  readonly leave: Effect.Effect<void>
  /**
   * Completes when the call is over: `"Left"` (leave or scope close),
   * `"SfuDisconnected"` (the SFU connection ended for good, e.g. kicked or
   * server shutdown; the membership is then ended right away, so peers do not
   * see a member without media), `"TokenRejected"` (the homeserver refused
   * the access token mid-call, e.g. the session was logged out: the call could
   * no longer keep its membership, so it leaves the SFU too; sign in again and
   * join anew), `"RemovedFromRoom"` (our user is no longer joined to the room:
   * kicked, banned, or left it from another device; peers stop listing us at
   * once, so we must not stay on the SFU, listening unseen) or
   * `"MembershipRejected"` (the homeserver refused a mid-call membership write
   * with 403, e.g. the power levels changed: the membership would lapse for
   * peers while we stayed on the SFU). Every end leaves the SFU first.
   */
  readonly ended: Effect.Effect<CallEnd>
}

export type CallEnd = "Left" | "SfuDisconnected" | "TokenRejected" | "RemovedFromRoom" | "MembershipRejected"

/** The ends that come from the homeserver: the membership can no longer be kept. */
type MembershipLost = Extract<CallEnd, "TokenRejected" | "RemovedFromRoom" | "MembershipRejected">

export type MembershipHealth = "Live" | "ProbablyLeft"

const defaults = {
  delayMs: 8_000,
  heartbeatMs: 5_000,
  membershipExpiryMs: Membership.DefaultExpiresMs,
  leaveStepTimeoutMs: 3_000,
  requestTimeoutMs: 10_000
}

const minHeartbeatMs = 100

// A delayed leave shorter than this cannot be kept up: every restart needs a round trip within the delay, and
// one that fires between restarts makes the call re-publish again and again. A server that caps delayed events
// below it is treated as one without them (the membership's expiry is then what ends a crashed call).
const minDelayMs = 1_000

/**
 * What the server supports, as the join can use it: a maximum delay of 0 or below (external JSON) cannot be met by
 * any delay and is ignored, as if not advertised; one below `minDelayMs` means no delayed leave.
 */
const usableSupport = (support: ServerSupport): Effect.Effect<ServerSupport> => {
  const maxDelayMs = Option.filter(support.maxDelayMs, (max) => max > 0)
  return Option.match(Option.filter(maxDelayMs, (max) => max < minDelayMs), {
    onNone: () => Effect.succeed({ ...support, maxDelayMs }),
    onSome: (max) =>
      Effect.as(
        Effect.logWarning(`the server caps delayed events at ${max} ms, too short to keep up; joining without a delayed leave`),
        { ...support, maxDelayMs, delayedEvents: false }
      )
  })
}

const durationOptions = [
  "delayMs",
  "heartbeatMs",
  "membershipExpiryMs",
  "connectTimeoutMs",
  "leaveStepTimeoutMs",
  "requestTimeoutMs"
] as const satisfies ReadonlyArray<keyof JoinOptions>

/** See `JoinOptions`: a duration that is not a finite number above 0 is a defect. */
const checkDurations = (options: JoinOptions): Effect.Effect<void> =>
  Effect.suspend(() => {
    const bad = durationOptions.filter((key) => {
      const ms = options[key]
      return ms !== undefined && !(Number.isFinite(ms) && ms > 0)
    })
    return bad.length === 0 ? Effect.void : Effect.die(
      new Cause.IllegalArgumentException(
        `JoinOptions: ${bad.map((key) => `${key} (${options[key]})`).join(", ")} must be a finite number of ms above 0`
      )
    )
  })

// ---------------------------------------------------------------------------
// join
// ---------------------------------------------------------------------------

export const join: (
  roomId: RoomId,
  options?: JoinOptions
) => Effect.Effect<
  Call,
  NotAuthenticated | JwtFetchFailed | ConnectFailed | MembershipFailed,
  Scope.Scope | MatrixClient | AuthService | LiveKit
> = Effect.fn("MatrixRTC.join")(function*(roomId: RoomId, options: JoinOptions = {}) {
  yield* checkDurations(options)
  const mx = yield* MatrixClient
  const auth = yield* AuthService
  const lk = yield* LiveKit
  const dialect = options.dialect ?? "session"
  const cfg = {
    delayMs: options.delayMs ?? defaults.delayMs,
    heartbeatMs: options.heartbeatMs ?? defaults.heartbeatMs,
    membershipExpiryMs: options.membershipExpiryMs ?? defaults.membershipExpiryMs,
    leaveStepTimeoutMs: options.leaveStepTimeoutMs ?? defaults.leaveStepTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs ?? defaults.requestTimeoutMs
  }
  yield* Effect.annotateCurrentSpan({ roomId, dialect })
  const ownTrace = ownTraceLinkedTo(yield* Effect.option(Effect.currentSpan))

  // 1. session (local); then a usable prepared join, or steps 2–3 from the start (the JWT request runs on
  // while the delayed leave is scheduled below, once cleanup is in place)
  const session = yield* currentSession(mx)
  const prepared = yield* usablePrepared(options.prepared, roomId, dialect, session)
  const asker = yield* askerFor(mx, auth, roomId, dialect, session, options.authServiceUrl, cfg.requestTimeoutMs, prepared)
  const started = Option.isSome(prepared) ? fromPrepared(prepared.value) : yield* Grant.start(asker)
  // A join that fails before awaiting the JWT request must not leave it running (nor let it fill the cache).
  yield* Effect.addFinalizer(() => started.interrupt)
  const { memberId, serviceUrl } = started
  yield* Effect.annotateCurrentSpan("prepared", Option.isSome(prepared))
  const [advertised, roomVersion] = yield* started.facts
  const support = yield* usableSupport(advertised)
  yield* requireStickySupport(dialect, support)

  // the delayed leave ∥ the JWT, then 4. membership ∥ SFU connect; cleanup is registered before any of it
  const stateKey = dialect === "session"
    ? Membership.sessionStateKey(session.userId, session.deviceId, roomVersion)
    : undefined
  const eventType = dialect === "session" ? Membership.SessionEventType : Membership.StickyEventType
  const initialDelay = Option.match(support.maxDelayMs, {
    onNone: () => cfg.delayMs,
    onSome: (max) => Math.min(max, cfg.delayMs)
  })
  const contentFor = (createdTs: number | undefined, expiresMs: number) =>
    dialect === "session"
      ? Membership.sessionContent({
        userId: session.userId,
        deviceId: session.deviceId,
        roomId,
        livekitServiceUrl: serviceUrl,
        memberId,
        callIntent: options.callIntent,
        expiresMs,
        createdTs
      })
      : Membership.stickyContent({
        userId: session.userId,
        deviceId: session.deviceId,
        memberId,
        livekitServiceUrl: serviceUrl,
        callIntent: options.callIntent
      })
  const own = yield* SubscriptionRef.make<OwnMembership>({
    roomId,
    dialect,
    eventType,
    stateKey,
    memberId,
    content: contentFor(undefined, cfg.membershipExpiryMs),
    delayId: Option.none(),
    delayMs: initialDelay
  })
  const visibility = yield* SubscriptionRef.make<Visibility>({ fireAt: Number.POSITIVE_INFINITY, gone: false })
  // The first reason wins: a write refused after a removal must not turn RemovedFromRoom into MembershipRejected.
  const lost = yield* Deferred.make<MembershipLost>()
  const m: MembershipOps = makeMembershipOps(
    mx,
    own,
    visibility,
    contentFor,
    cfg,
    support,
    (why) => Deferred.succeed(lost, why),
    ownTrace
  )
  const members = yield* SubscriptionRef.make<ReadonlyArray<CallMember>>([])

  const connScope = yield* Scope.make()
  const bgScope = yield* Scope.make()
  const ended = yield* Deferred.make<CallEnd>()
  // One leave, whichever way in starts it first (leave, scope close, SFU gone); later callers wait for it. It is
  // uninterruptible, so a caller that interrupts `call.leave` cannot leave a half-done cleanup behind.
  let leaving = false
  const endWith = (why: CallEnd): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (leaving) return Effect.asVoid(Deferred.await(ended))
      leaving = true
      return leave(bgScope, connScope, m, cfg.leaveStepTimeoutMs, why).pipe(
        Effect.ensuring(Deferred.succeed(ended, why)),
        Effect.annotateLogs({ roomId }),
        ownTrace("MatrixRTC.leave", { roomId, why }),
        Effect.uninterruptible
      )
    })
  const leaveOnce = endWith("Left")
  yield* Effect.addFinalizer(() => leaveOnce)
  // A join that fails or is interrupted from here on leaves at once (the same leave), not when the caller's scope
  // closes: a failed join inside a long-lived scope (or retried in it) would otherwise keep its membership and
  // heartbeat alive meanwhile.
  return yield* Effect.gen(function*() {
    // The delayed leave (`{}` after the delay) is invisible to peers, so it can be scheduled while the JWT is
    // fetched; the membership itself is only sent once the JWT is in hand (as Element Call does), so a failing
    // auth service never advertises a member without media.
    // Both run to the end even when one fails: a JWT failure must not cut off a scheduling request the server
    // may already have accepted, or the cleanup would not know the delay id to cancel.
    // Without a delayed leave, no homeserver request before the SFU connect would show a dead access token.
    const [jwt, armed] = yield* Effect.all([
      started.grant({ verify: !support.delayedEvents, timeoutMs: cfg.requestTimeoutMs }),
      Effect.either(m.arm.pipe(Effect.withSpan("MatrixRTC.delayedLeave")))
    ], { concurrency: "unbounded" })
    const grant = yield* jwt
    yield* armed
    if (support.delayedEvents) {
      // From the moment the delayed leave exists, not once the join is done: an SFU connect slower than the
      // delay would otherwise let the leave fire mid-join. Every heartbeatMs, well inside a server-capped delay.
      // The first restart waits a period too: restarts share the membership lock, and one at once would hold
      // the membership send back by a round trip.
      // Floored: a server that caps the delay at a few ms (its MaxDelayExceeded answer) must not make the loop spin.
      const period = Effect.map(
        SubscriptionRef.get(own),
        (o) => Math.max(minHeartbeatMs, Math.min(cfg.heartbeatMs, Math.floor(o.delayMs * 0.75)))
      )
      yield* Effect.flatMap(period, (ms) => Effect.sleep(ms)).pipe(
        Effect.zipRight(m.heartbeat.pipe(goOnAfterDefects("the heartbeat"), ownTrace("MatrixRTC.heartbeat"))),
        Effect.forever,
        Effect.interruptible,
        detached,
        Effect.forkIn(bgScope)
      )
    }

    // Only a bound the caller chose is passed on: otherwise the LiveKit layer's own (configurable) bound applies.
    const connectTimeoutMs = options.connectTimeoutMs
    const connectWith = (g: LiveKitGrant) =>
      lk.connect(g.url, g.jwt, connectTimeoutMs === undefined ? undefined : { timeoutMs: connectTimeoutMs }).pipe(
        Scope.extend(connScope),
        (connecting) =>
          connectTimeoutMs === undefined ? connecting : Effect.timeoutFail(connecting, {
            duration: connectTimeoutMs,
            onTimeout: () => new ConnectFailed({ reason: "Timeout", url: g.url })
          }),
        Effect.withSpan("MatrixRTC.connect", { attributes: { url: g.url, identity: g.claims.identity } })
      )
    // A prepared grant can be stale in ways only the SFU knows (the room it was issued for has been closed, the
    // token revoked): one fresh JWT, then the same connect. Other failures would not change with a new JWT.
    const connect = Option.isNone(prepared) ? connectWith(grant) : connectWith(grant).pipe(
      Effect.catchTag("ConnectFailed", (e) =>
        e.reason === "RoomNotFound" || e.reason === "Rejected"
          ? Effect.logInfo("the SFU refused the prepared grant; fetching a fresh one", e.message).pipe(
            Effect.zipRight(Grant.grantFor(asker, serviceUrl)),
            Effect.flatMap(connectWith)
          )
          : Effect.fail(e))
    )
    const publish = m.publish.pipe(Effect.withSpan("MatrixRTC.membership", { attributes: { stateKey: stateKey ?? "" } }))
    const [connection] = yield* Effect.all([connect, publish], { concurrency: "unbounded" })
    yield* Effect.logDebug("joined the call").pipe(Effect.annotateLogs({ roomId, identity: connection.identity }))

    // 5. background: member list + re-publish watch, heartbeat, expiry refresh. Each fiber is made interruptible
    // explicitly: join may run in an uninterruptible region (e.g. an acquireRelease), and bgScope must still stop them.
    const firstList = yield* Deferred.make<void>()
    yield* watchMembers(mx.callMemberEvents(roomId), session, own, members, m, firstList).pipe(
      Effect.ensuring(Deferred.succeed(firstList, undefined)),
      Effect.interruptible,
      detached,
      Effect.forkIn(bgScope)
    )
    // The SFU connection ended without us: end the membership too. In a daemon, because the leave closes bgScope,
    // which would otherwise interrupt the very fiber running it.
    yield* connection.connectionStates.pipe(
      Stream.filter((state) => state === "disconnected"),
      Stream.runHead,
      Effect.zipRight(Effect.logWarning("the SFU connection ended; leaving the call")),
      Effect.zipRight(Effect.forkDaemon(endWith("SfuDisconnected"))),
      Effect.catchAllDefect((defect) =>
        Effect.logError("the SFU connection's state went wrong; its end will go unnoticed", defect)
      ),
      Effect.interruptible,
      detached,
      Effect.forkIn(bgScope)
    )
    // The membership can no longer be kept: a dead access token (e.g. the session was logged out; its delayed leave
    // will end it), our user removed from the room, or a membership write refused. Peers drop us (or soon will), so
    // the call ends, SFU first as in every leave.
    yield* Deferred.await(lost).pipe(
      Effect.flatMap((why) => Effect.forkDaemon(endWith(why))),
      Effect.interruptible,
      detached,
      Effect.forkIn(bgScope)
    )
    yield* m.refresh.pipe(
      goOnAfterDefects("the membership refresh"),
      ownTrace("MatrixRTC.refresh"),
      Effect.delay(refreshEveryMs(dialect, cfg.membershipExpiryMs)),
      Effect.forever,
      Effect.interruptible,
      detached,
      Effect.forkIn(bgScope)
    )

    // Nothing to tell before the room shows our own membership, or the watch has ended (then: what it last saw).
    const currentMembers = Effect.zipRight(Deferred.await(firstList), SubscriptionRef.get(members))
    // Nothing changes once the call has ended, so a reader waiting for the next change would wait forever.
    const untilEnded = <A>(changes: Stream.Stream<A>) => Stream.interruptWhen(changes, Deferred.await(ended))
    return {
      roomId,
      session,
      authServiceUrl: serviceUrl,
      // Its change streams end with the call too; adapters still find their handle by it (`viewOf`).
      connection: LiveKitAdapter.viewOf(connection, {
        ...connection,
        connectionStates: untilEnded(connection.connectionStates),
        remoteParticipantsChanges: untilEnded(connection.remoteParticipantsChanges),
        disconnectReasons: untilEnded(connection.disconnectReasons)
      }),
      membership: SubscriptionRef.get(own),
      membershipChanges: untilEnded(own.changes),
      membershipHealth: untilEnded(healthOf(visibility)),
      members: untilEnded(Stream.unwrap(Effect.as(Deferred.await(firstList), members.changes))),
      currentMembers,
      leave: leaveOnce,
      ended: Deferred.await(ended)
    } satisfies Call
  }).pipe(Effect.onError(() => leaveOnce))
})

/**
 * Steps 1–3 of a join ahead of time: the session, the auth service, the OpenID token and the LiveKit JWT,
 * plus what the server supports. Nothing is published and nothing needs cleaning up; pass the result to
 * `join` as `prepared` to start the join at the membership and the SFU connect.
 */
export const prepare: (
  roomId: RoomId,
  options?: PrepareOptions
) => Effect.Effect<PreparedJoin, NotAuthenticated | JwtFetchFailed | MembershipFailed, MatrixClient | AuthService> = Effect.fn(
  "MatrixRTC.prepare"
)(function*(roomId: RoomId, options: PrepareOptions = {}) {
  const mx = yield* MatrixClient
  const auth = yield* AuthService
  const dialect = options.dialect ?? "session"
  const session = yield* currentSession(mx)
  const started = yield* Grant.start(
    yield* askerFor(mx, auth, roomId, dialect, session, options.authServiceUrl, defaults.requestTimeoutMs)
  )
  return yield* Effect.gen(function*() {
    const [support, roomVersion] = yield* started.facts
    yield* requireStickySupport(dialect, support)
    // A kept OpenID token may have outlived the access token, and a prepared join publishes nothing to find out.
    const grant = yield* Effect.flatten(started.grant({ verify: true, timeoutMs: defaults.requestTimeoutMs }))
    return {
      roomId,
      dialect,
      session,
      memberId: started.memberId,
      authServiceUrl: started.serviceUrl,
      grant,
      support,
      roomVersion,
      preparedAt: yield* Clock.currentTimeMillis
    } satisfies PreparedJoin
  }).pipe(Effect.onError(() => started.interrupt))
})

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

const fromPrepared = (p: PreparedJoin): Grant.Started => ({
  memberId: p.memberId,
  serviceUrl: p.authServiceUrl,
  grant: () => Effect.succeed(Either.right(p.grant)),
  facts: Effect.succeed([p.support, p.roomVersion] as const),
  interrupt: Effect.void
})

/** Who asks for the JWT; a prepared join keeps its member id (the JWT was issued for it). */
const askerFor = (
  mx: MatrixClientService,
  auth: AuthService["Type"],
  roomId: RoomId,
  dialect: Dialect,
  session: Session,
  configuredUrl: string | undefined,
  requestTimeoutMs: number,
  prepared: Option.Option<PreparedJoin> = Option.none()
): Effect.Effect<Grant.Asker> =>
  Effect.gen(function*() {
    const memberId = Option.isSome(prepared)
      ? prepared.value.memberId
      : dialect === "session"
      ? `${session.userId}:${session.deviceId}`
      : yield* uuidV4
    const cache = yield* Effect.serviceOption(JoinCache.JoinCache)
    return { mx, auth, cache, session, roomId, dialect, memberId, configuredUrl, requestTimeoutMs }
  })

// lk-jwt-service creates the SFU room when it issues the JWT, and LiveKit closes a room nobody has joined
// after its empty timeout (300 s): an older grant would most likely be refused.
const preparedMaxAgeMs = 240_000
// Room for the connect itself: a JWT that lapses on the way to the SFU is refused.
const preparedGrantMarginMs = 30_000

const usablePrepared = (
  p: PreparedJoin | undefined,
  roomId: RoomId,
  dialect: Dialect,
  session: Session
): Effect.Effect<Option.Option<PreparedJoin>> =>
  Effect.gen(function*() {
    if (p === undefined) return Option.none()
    const now = yield* Clock.currentTimeMillis
    const expiresAt = p.grant.claims.expiresAt
    const unusable = p.roomId !== roomId
      ? "it is for another room"
      : p.dialect !== dialect
      ? "it is for another dialect"
      : p.session.userId !== session.userId || p.session.deviceId !== session.deviceId ||
          p.session.homeserverUrl !== session.homeserverUrl
      ? "it is for another session"
      : now - p.preparedAt > preparedMaxAgeMs
      ? "it is older than 4 minutes"
      : expiresAt !== undefined && expiresAt - now < preparedGrantMarginMs
      ? "its JWT is about to expire"
      : undefined
    if (unusable === undefined) return Option.some(p)
    yield* Effect.logInfo(`not using the prepared join: ${unusable}; joining from the start`)
    return Option.none()
  })

const requireStickySupport = (dialect: Dialect, support: ServerSupport) =>
  dialect === "sticky" && !support.stickyEvents
    ? Effect.fail(
      new MembershipFailed({ reason: "Rejected", error: "the homeserver does not support sticky events (org.matrix.msc4354)" })
    )
    : Effect.void

const currentSession = (mx: MatrixClientService) =>
  Effect.flatMap(mx.session, Option.match({
    onNone: () => Effect.fail(new NotAuthenticated({ reason: "NoSession" })),
    onSome: Effect.succeed
  }))

// JS-SDK refreshes at most hourly (sticky events live ≤ 1 h) and 5 s before due.
const refreshEveryMs = (dialect: Dialect, expiryMs: number) => {
  const period = dialect === "sticky" ? Membership.StickyDurationMs : Math.min(expiryMs, 3_600_000)
  return Math.max(1_000, period - Math.min(5_000, period / 10))
}

// ---------------------------------------------------------------------------
// Membership operations (serialised: heartbeat, refresh and re-publish share one lock)
// ---------------------------------------------------------------------------

interface MembershipOps {
  /** Schedules the delayed leave (if supported); it is sent ahead of the membership it will end. */
  readonly arm: Effect.Effect<void, MembershipFailed | NotAuthenticated>
  /** The membership (after `arm`). */
  readonly publish: Effect.Effect<void, MembershipFailed | NotAuthenticated>
  readonly heartbeat: Effect.Effect<void>
  /** Re-sends the membership before it expires, `expires` extended by the time elapsed since our join. */
  readonly refresh: Effect.Effect<void>
  /**
   * An event on our own state key, as the room shows it: remembers the `origin_server_ts` of our join event
   * (the base of `expires`), and re-publishes when an event after ours ended our membership.
   */
  readonly observedOwn: (event: RawCallEvent) => Effect.Effect<void>
  /** The `membership` of our user's `m.room.member` event, as the room delivers it (latest last). */
  readonly observedRoomMembership: (membership: string) => Effect.Effect<void>
  /** The leave has begun: no new membership attempts from here on. */
  readonly stopWriting: Effect.Effect<void>
  /** Ends the membership, after any write still on its way (see `unrecalled`); `why` the call ends. */
  readonly end: (timeoutMs: number, why: CallEnd) => Effect.Effect<void>
}

/** What decides the membership's health: when the delayed leave fires unless restarted, and whether the room lost it. */
interface Visibility {
  /** Clock time; infinite without a delayed leave. */
  readonly fireAt: number
  /** Our membership is gone from the room (the delayed leave fired, or someone removed it) until the next send. */
  readonly gone: boolean
}

/** The health now, then on every change of `visibility` and when an unrestarted delayed leave comes due. */
const healthOf = (visibility: SubscriptionRef.SubscriptionRef<Visibility>): Stream.Stream<MembershipHealth> =>
  visibility.changes.pipe(
    Stream.flatMap(({ fireAt, gone }) =>
      gone ? Stream.succeed<MembershipHealth>("ProbablyLeft") : Stream.unwrap(
        Effect.map(Clock.currentTimeMillis, (now) =>
          now >= fireAt
            ? Stream.succeed<MembershipHealth>("ProbablyLeft")
            : Stream.concat(
              Stream.succeed<MembershipHealth>("Live"),
              fireAt === Number.POSITIVE_INFINITY
                ? Stream.empty
                : Stream.fromEffect(Effect.as(Effect.sleep(fireAt - now), "ProbablyLeft" as const))
            ))
      ), { switch: true }),
    Stream.changes
  )

const makeMembershipOps = (
  mx: MatrixClientService,
  own: SubscriptionRef.SubscriptionRef<OwnMembership>,
  visibility: SubscriptionRef.SubscriptionRef<Visibility>,
  /** Our membership content, given the `created_ts` to carry (none on a join) and `expires`. */
  content: (createdTs: number | undefined, expiresMs: number) => Record<string, unknown>,
  cfg: { readonly membershipExpiryMs: number; readonly requestTimeoutMs: number },
  support: ServerSupport,
  /** The membership can no longer be kept (the token is dead, we are not in the room, or writes are refused). */
  onLost: (why: MembershipLost) => Effect.Effect<void>,
  ownTrace: OwnTrace
): MembershipOps => {
  const lock = Effect.unsafeMakeSemaphore(1)
  // Whether a membership may exist on the server: set before the first send, since it may land even if we are interrupted.
  let written = false
  let lastEventId: string | undefined
  let createdTs: number | undefined
  // When this participation's first write was sent: the created_ts a refresh falls back to when we never saw our
  // own membership come back (the member stream ended), so that every refresh carries the same one. A created_ts
  // that moves makes peers take us for a new joiner (key rotation, member order; protocol §1.3, §5.2).
  let participationSentAt: number | undefined
  // When the last membership send that the server accepted was started (it landed no earlier).
  let landedSince = Number.NEGATIVE_INFINITY
  // The events we wrote, and every event seen on our state key (id → its created_ts or origin_server_ts). Until
  // the room has shown one of ours, its view of our state key predates this join (matrix-js-sdk learns of our send
  // with the next sync, which can also come before the send's answer), so a `{}` there is an earlier session's
  // leave, not someone ending this membership.
  const sentIds = new Set<string>()
  const seenOnKey = new Map<string, number>()
  let shown = false
  // Our user's room membership as the room last delivered it; a room that said nothing counts as joined.
  let roomMembership = "join"
  // Membership writes and delayed-leave schedulings on their way (see `unrecalled`), and whether the membership is
  // being ended (no new membership attempts).
  const inflight = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  let ending = false

  const withRequestTimeout = MatrixRetry.timeoutAfter(cfg.requestTimeoutMs)

  /**
   * The request's answer and when it was sent: the server starts a delay's countdown on receipt, so counting from
   * the send never puts the fire time later than the server's.
   */
  const timed = <A>(request: Effect.Effect<A, MatrixError>) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.map(request, (a) => [a, at] as const))

  /**
   * Runs a write (the membership, or the scheduling of its delayed leave) to its end even when the caller stops
   * waiting (a leave, an interrupted join): a request on the wire cannot be recalled, so `end` waits for it rather
   * than end a membership the write then brings back, or miss a delayed leave it schedules.
   */
  const unrecalled = <A, E>(write: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.forkDaemon(Effect.interruptible(write)), (fiber) => {
        inflight.add(fiber)
        fiber.addObserver(() => inflight.delete(fiber))
        return restore(Fiber.join(fiber))
      })
    )

  /** No new attempt once the membership is being ended: a retry would only leave behind what the leave removes. */
  const unlessEnding = <A>(attempt: Effect.Effect<A, MatrixError>) =>
    Effect.suspend(() =>
      ending ? Effect.fail(new MatrixError({ reason: "Unsupported", error: "the call is leaving" })) : attempt
    )

  /**
   * A dead access token or a 403 (we may no longer write our membership: it would lapse for peers) ends the call;
   * other failures are logged, and the next round tries again. A 403 once the room has shown us removed is the
   * removal (the kick, not the refusal that follows from it, is what the user needs to hear).
   */
  const failed = (what: string) => (e: MatrixError) =>
    MatrixRetry.isTokenRejected(e)
      ? Effect.zipRight(Effect.logWarning(`${what}: the access token was rejected; ending the call`, e.message), onLost("TokenRejected"))
      : MatrixErrors.classify(e)._tag === "Forbidden"
      ? Effect.zipRight(
        Effect.logWarning(`${what}: refused by the homeserver; ending the call`, e.message),
        onLost(roomMembership === "join" ? "MembershipRejected" : "RemovedFromRoom")
      )
      : Effect.logWarning(`${what} failed`, e.message)

  /**
   * Whether the room's latest word on our user, as it was delivered, is not `join`; acted on only once the room has
   * shown this participation's membership. Until then the room's view may predate our join (a client learns of
   * its own events with a later sync): an old `leave` there is not a removal, and the `join` after it comes before
   * our membership does. A server refuses invite and knock for a joined user, so those, too, can only follow a
   * removal the stream did not deliver on its own (e.g. a gappy sync).
   */
  const endIfRemoved = Effect.suspend(() =>
    shown && roomMembership !== "join"
      ? Effect.zipRight(
        Effect.logWarning(`our user is no longer joined to the room (${roomMembership}); ending the call`),
        onLost("RemovedFromRoom")
      )
      : Effect.void
  )

  const observedRoomMembership = (membership: string) =>
    Effect.suspend(() => {
      roomMembership = membership
      return endIfRemoved
    })

  /** Schedules the delayed leave; on a max-delay error lowers the delay and tries again. */
  const scheduleLeave: Effect.Effect<readonly [string, number], MatrixError> = Effect.gen(function*() {
    const o = yield* SubscriptionRef.get(own)
    const attempt = o.dialect === "session"
      ? Effect.map(
        mx.sendDelayedStateEvent(o.roomId, o.eventType, o.stateKey!, Membership.sessionLeaveContent(), o.delayMs),
        (r) => r.delayId
      )
      : Effect.flatMap(
        mx.sendStickyEvent(o.roomId, o.eventType, Membership.stickyLeaveContent(o.memberId), {
          stickyDurationMs: Membership.StickyDurationMs,
          delayMs: o.delayMs
        }),
        (r) =>
          r.delayId !== undefined
            ? Effect.succeed(r.delayId)
            : Effect.fail(new MatrixError({ reason: "Unsupported", error: "no delay_id in the answer" }))
      )
    return yield* MatrixRetry.withRetry(timed(withRequestTimeout(unlessEnding(attempt)))).pipe(
      Effect.catchTag("MatrixError", (e) => {
        const kind = MatrixErrors.classify(e)
        const max = kind._tag === "MaxDelayExceeded" ? Option.getOrElse(kind.maxDelayMs, () => 0) : 0
        // Only a lower maximum helps; without one (or with one we already use) trying again would loop, and one
        // below minDelayMs could not be kept up.
        return max >= minDelayMs && max < o.delayMs
          ? Effect.logInfo(`the server caps delayed events at ${max} ms; lowering the delayed leave`).pipe(
            Effect.zipRight(SubscriptionRef.update(own, (x) => ({ ...x, delayMs: max }))),
            Effect.zipRight(scheduleLeave)
          )
          : Effect.fail(e)
      })
    )
  })

  const send = (content: Record<string, unknown>) =>
    Effect.suspend(() => {
      written = true
      return unrecalled(write(content))
    })

  const write = (content: Record<string, unknown>) =>
    Effect.gen(function*() {
      const o = yield* SubscriptionRef.get(own)
      const startedAt = yield* Clock.currentTimeMillis
      participationSentAt ??= startedAt
      const request: Effect.Effect<{ readonly eventId?: string | undefined }, MatrixError> = o.dialect === "session"
        ? mx.sendStateEvent(o.roomId, o.eventType, o.stateKey!, content)
        : mx.sendStickyEvent(o.roomId, o.eventType, content, { stickyDurationMs: Membership.StickyDurationMs })
      const r = yield* MatrixRetry.withRetry(withRequestTimeout(unlessEnding(request)))
      landedSince = startedAt
      if (r.eventId !== undefined) {
        sentIds.add(r.eventId)
        const seen = seenOnKey.get(r.eventId)
        if (seen !== undefined) {
          const first = !shown
          shown = true
          createdTs ??= seen
          // A removal the room delivered while the answer to our membership was still on its way.
          if (first) yield* endIfRemoved
        }
      }
      lastEventId = r.eventId
      yield* SubscriptionRef.update(own, (x) => ({ ...x, content }))
      yield* SubscriptionRef.update(visibility, (v) => ({ ...v, gone: false }))
    })

  /** The delayed leave was scheduled or restarted by a request sent at `requestedAt`: it fires a delay after that. */
  const restarted = (requestedAt: number) =>
    Effect.flatMap(SubscriptionRef.get(own), (o) =>
      SubscriptionRef.update(visibility, (v) => ({ ...v, fireAt: requestedAt + o.delayMs })))

  /**
   * A delayed leave for the membership about to be (re)sent; failures other than "forbidden" mean going without.
   * Unrecalled, like a membership write: the leave must learn the delay id of a scheduling still on its way, or it
   * could not cancel (or send) that delayed leave.
   */
  const armLeave = unrecalled(Effect.gen(function*() {
    if (!support.delayedEvents) return
    const scheduled = yield* scheduleLeave.pipe(
      Effect.map(Option.some),
      Effect.catchTag("MatrixError", (e) =>
        ["Forbidden", "UnknownToken"].includes(MatrixErrors.classify(e)._tag)
          ? Effect.fail(e)
          : Effect.as(
            Effect.logWarning("could not schedule the delayed leave; going on without one", e.message),
            Option.none<readonly [string, number]>()
          ))
    )
    yield* SubscriptionRef.update(own, (x) => ({ ...x, delayId: Option.map(scheduled, ([id]) => id) }))
    yield* Option.match(scheduled, {
      onSome: ([, requestedAt]) => restarted(requestedAt),
      onNone: () => SubscriptionRef.update(visibility, (v) => ({ ...v, fireAt: Number.POSITIVE_INFINITY }))
    })
  }))

  const arm = lock.withPermits(1)(armLeave).pipe(Effect.mapError(joinFailure))

  /**
   * Sends the membership again when a fired delayed leave ended it and the member watch has not done so yet. A
   * send already under way restores it anyway, so this does not wait for one (the heartbeat must go on).
   */
  const resendIfGone = Effect.asVoid(lock.withPermitsIfAvailable(1)(
    Effect.flatMap(Effect.zip(SubscriptionRef.get(own), SubscriptionRef.get(visibility)), ([o, v]) =>
      o.dialect === "sticky" && v.gone
        ? Effect.zipRight(Effect.logInfo("our membership ended; publishing it again"), send(o.content))
        : Effect.void)
  ))

  const publish = lock.withPermits(1)(
    Effect.flatMap(SubscriptionRef.get(own), (o) => send(o.content))
  ).pipe(Effect.mapError(joinFailure))

  /**
   * The server no longer knows the delayed leave `delayId` (fired, or restarted too late): schedule a new one,
   * unless a re-publish has replaced it meanwhile. In the session dialect the membership itself is re-sent once
   * the room shows it gone (watchMembers).
   */
  const replaceLostLeave = (delayId: string) =>
    lock.withPermits(1)(Effect.gen(function*() {
      const o = yield* SubscriptionRef.get(own)
      if (!Option.contains(o.delayId, delayId)) return
      yield* Effect.logInfo("delayed leave not found; scheduling a new one")
      // Fired if its time had come (before that it was cancelled or lost), and then only gone if no membership send
      // started after it.
      const { fireAt } = yield* SubscriptionRef.get(visibility)
      const fired = (yield* Clock.currentTimeMillis) >= fireAt
      if (fired && landedSince < fireAt) yield* SubscriptionRef.update(visibility, (v) => ({ ...v, gone: true }))
      yield* armLeave
    }))

  /**
   * Restarts the delayed leave, or schedules a new one when there is none or the server forgot it. A restart does
   * not depend on the membership's content, so it does not wait for a membership send that may be retrying: the
   * delayed leave must not fire under it.
   */
  const renewLeave: Effect.Effect<void, MatrixError> = Effect.flatMap(SubscriptionRef.get(own), (o) => {
    if (Option.isNone(o.delayId)) {
      // The delayed leave was lost earlier (e.g. a failed re-arm): try to get one again.
      return lock.withPermits(1)(
        Effect.flatMap(SubscriptionRef.get(own), (now) => Option.isNone(now.delayId) ? armLeave : Effect.void)
      )
    }
    const delayId = o.delayId.value
    // A restart that takes a quarter of the delay is given up and retried (JS-SDK: 2 s of 8 s), so that
    // a slow request cannot use up the whole delay.
    const restart = MatrixRetry.timeoutAfter(
      Math.min(cfg.requestTimeoutMs, Math.max(500, Math.floor(o.delayMs / 4))),
      "restart took too long"
    )(mx.updateDelayedEvent(delayId, "restart"))
    return MatrixRetry.withRetry(timed(restart)).pipe(
      // A re-publish may have replaced the delayed leave while this restart was on its way.
      Effect.flatMap(([, requestedAt]) =>
        Effect.flatMap(SubscriptionRef.get(own), (now) =>
          Option.contains(now.delayId, delayId) ? restarted(requestedAt) : Effect.void)
      ),
      Effect.catchTag("MatrixError", (e) =>
        MatrixErrors.classify(e)._tag === "NotFound" ? replaceLostLeave(delayId) : Effect.fail(e))
    )
  })

  const heartbeat = Effect.zipRight(renewLeave, resendIfGone).pipe(Effect.catchTag("MatrixError", failed("heartbeat")))

  const refresh = lock.withPermits(1)(
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const base = createdTs ?? participationSentAt ?? now
      // `expires` counts from created_ts: extend it by what has elapsed, so validity stays ≈ membershipExpiryMs
      // after each refresh instead of growing by n × expiry (js-sdk#5522).
      yield* send(content(base, now - base + cfg.membershipExpiryMs))
    }).pipe(Effect.catchTag("MatrixError", failed("membership refresh")))
  )

  const republish: Effect.Effect<void> = lock.withPermits(1)(
    Effect.gen(function*() {
      yield* Effect.logInfo("our membership vanished from the room; publishing it again")
      yield* SubscriptionRef.update(visibility, (v) => ({ ...v, gone: true }))
      const o = yield* SubscriptionRef.get(own)
      if (Option.isSome(o.delayId)) {
        yield* mx.updateDelayedEvent(o.delayId.value, "cancel").pipe(withRequestTimeout, Effect.ignore)
        yield* SubscriptionRef.update(own, (x) => ({ ...x, delayId: Option.none() }))
      }
      yield* armLeave
      // A new participation: the server stamps a new origin_server_ts, so created_ts starts over, and `expires`
      // counts from it again (a refreshed one also covers the time since the first join).
      createdTs = undefined
      participationSentAt = undefined
      yield* send(content(undefined, cfg.membershipExpiryMs))
    }).pipe(Effect.catchTag("MatrixError", failed("re-publishing the membership")))
  ).pipe(ownTrace("MatrixRTC.republish"))

  const observedOwn = (event: RawCallEvent) =>
    Effect.suspend(() => {
      const content = Predicate.isRecord(event.content) ? event.content : undefined
      const created = typeof content?.["created_ts"] === "number" ? content["created_ts"] : event.originServerTs
      seenOnKey.set(event.eventId, created)
      if (sentIds.has(event.eventId)) {
        const first = !shown
        shown = true
        const removal = first ? endIfRemoved : Effect.void
        if (event.eventId !== lastEventId) return removal
        createdTs ??= created
        // The client passes a sticky event on again when it drops it (redacted, or expired as a refresh failed):
        // our current membership is then gone for everyone, though no leave event came.
        return event.stickyExpiresAt === undefined
          ? removal
          : Effect.flatMap(Clock.currentTimeMillis, (now) => event.stickyExpiresAt! <= now ? republish : removal)
      }
      return shown && (content === undefined || Membership.isLeaveContent(content)) ? republish : Effect.void
    })

  /** One bounded step of the leave; a failure or timeout is logged (the leave goes on), the result says whether it worked. */
  const step = <A>(what: string, eff: Effect.Effect<A, MatrixError>, timeoutMs: number) =>
    bound(eff, timeoutMs).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.as(Effect.logWarning(`${what} timed out`), false),
        onSome: () => Effect.succeed(true)
      })),
      Effect.catchTag("MatrixError", (e) => Effect.as(Effect.logWarning(`${what} failed`, e.message), false))
    )

  /**
   * Ends the membership with its leave content (no delayed leave to send). Transient failures are retried within
   * the step's time: without MSC4140 nothing else would remove the membership before it expires (up to 4 h).
   */
  const putLeave = (o: OwnMembership, timeoutMs: number) =>
    o.dialect === "session"
      ? step(
        "putting {} to end the membership",
        MatrixRetry.withRetry(
          withRequestTimeout(mx.sendStateEvent(o.roomId, o.eventType, o.stateKey!, Membership.sessionLeaveContent()))
        ),
        timeoutMs
      )
      : step(
        "sending the sticky leave",
        MatrixRetry.withRetry(withRequestTimeout(
          mx.sendStickyEvent(o.roomId, o.eventType, Membership.stickyLeaveContent(o.memberId), {
            stickyDurationMs: Membership.StickyDurationMs
          })
        )),
        timeoutMs
      )

  const cancelLeave = (delayId: string, timeoutMs: number) =>
    bound(mx.updateDelayedEvent(delayId, "cancel"), timeoutMs).pipe(Effect.ignore)

  /**
   * Ends the membership as it stands: sends the delayed leave, else puts the leave content. `barred`: we may no
   * longer write to the room, so both will most likely be refused (each is bounded, and a refusal is not retried);
   * a delayed leave still scheduled then goes too, as it could only be refused when it fires.
   */
  const endNow = (o: OwnMembership, timeoutMs: number, barred: boolean) =>
    Effect.gen(function*() {
      if (!written) {
        // Interrupted between scheduling the delayed leave and sending the membership: nothing to leave.
        if (Option.isSome(o.delayId)) yield* cancelLeave(o.delayId.value, timeoutMs)
        return
      }
      const sentDelayed = Option.isSome(o.delayId)
        ? yield* step("sending the delayed leave", mx.updateDelayedEvent(o.delayId.value, "send"), timeoutMs)
        : false
      if (sentDelayed) return
      yield* putLeave(o, timeoutMs)
      if (barred && Option.isSome(o.delayId)) yield* cancelLeave(o.delayId.value, timeoutMs)
    })

  /** From the start of a leave: no new membership attempt (a retry in backoff would otherwise start one). */
  const stopWriting = Effect.sync(() => {
    ending = true
  })

  const end = (timeoutMs: number, why: CallEnd) =>
    Effect.gen(function*() {
      ending = true
      // A write still on its way would bring the membership back after the leave, or schedule a delayed leave the
      // leave does not know of: wait for it first.
      if (inflight.size > 0) {
        const answered = yield* bound(Fiber.awaitAll([...inflight]), timeoutMs)
        if (Option.isNone(answered)) yield* Effect.logWarning("a homeserver write is still unanswered; leaving anyway")
      }
      const o = yield* SubscriptionRef.get(own)
      const landedBefore = landedSince
      // Taken before ending it, so that a write answered while the leave requests are out is undone too.
      const late = [...inflight]
      yield* endNow(o, timeoutMs, why === "RemovedFromRoom" || why === "MembershipRejected")
      if (late.length === 0) return
      // One still unanswered may yet land: once it has, undo it. For one more leave step within the leave, which a
      // process that exits once the leave returns (or a logout on scope close) would otherwise cut short; after
      // that in the background, bounded as each write is (its request timeout, no new attempt once ending).
      const undo = Effect.gen(function*() {
        const after = yield* SubscriptionRef.get(own)
        if (Option.isSome(after.delayId) && !Option.contains(o.delayId, after.delayId.value)) {
          yield* Effect.logInfo("a delayed leave was scheduled after the leave; cancelling it")
          yield* cancelLeave(after.delayId.value, timeoutMs)
        }
        if (landedSince !== landedBefore) {
          yield* Effect.logInfo("a membership write landed after the leave; ending the membership again")
          yield* putLeave(after, timeoutMs)
        }
      })
      const settled = yield* bound(Fiber.awaitAll(late), timeoutMs)
      if (Option.isSome(settled)) yield* undo
      else yield* Fiber.awaitAll(late).pipe(Effect.zipRight(undo), Effect.forkDaemon)
    })

  return { arm, publish, heartbeat, refresh, observedOwn, observedRoomMembership, stopWriting, end }
}

/**
 * Folds the room's membership events into `members`, and completes `firstList` once a list shows our own
 * membership; hands events on our own membership (the session dialect's state key, the sticky dialect's sticky key
 * from us) to `observedOwn`, which re-publishes ours if someone or something removed it, and our user's room
 * membership to `observedRoomMembership`, which ends the call once we are no longer joined.
 */
const watchMembers = (
  events: Stream.Stream<RawCallEvent, MatrixError>,
  self: Session,
  own: SubscriptionRef.SubscriptionRef<OwnMembership>,
  members: SubscriptionRef.SubscriptionRef<ReadonlyArray<CallMember>>,
  m: MembershipOps,
  firstList: Deferred.Deferred<void>
) =>
  events.pipe(
    Stream.tap((event) =>
      Effect.gen(function*() {
        if (event.type === Membership.RoomMemberEventType && event.stateKey === self.userId) {
          const membership = Predicate.isRecord(event.content) ? event.content["membership"] : undefined
          if (typeof membership === "string") yield* m.observedRoomMembership(membership)
          return
        }
        const o = yield* SubscriptionRef.get(own)
        if (event.type !== o.eventType) return
        const ours = o.dialect === "session"
          ? event.stateKey === o.stateKey
          : event.sender === self.userId && Option.contains(Membership.stickyKeyOf(event.content), o.memberId)
        if (ours) yield* m.observedOwn(event)
      })
    ),
    (s) => CallMembers.changes(s),
    Stream.runForEach((list) =>
      Effect.gen(function*() {
        yield* SubscriptionRef.set(members, list)
        // Only until the first list that shows us.
        if (yield* Deferred.isDone(firstList)) return
        const o = yield* SubscriptionRef.get(own)
        const ours = list.some((x) => x.memberId === o.memberId && x.userId === self.userId && x.deviceId === self.deviceId)
        if (ours) yield* Deferred.succeed(firstList, undefined)
      })
    ),
    Effect.catchTag("MatrixError", (e) => Effect.logWarning("the member stream ended", e.message)),
    // A bug (in the adapter, say) ends the watch as a failed stream does, but must not go unnoticed.
    Effect.catchAllDefect((defect) => Effect.logError("the member watch went wrong; it has stopped", defect))
  )

/**
 * A background round (heartbeat, refresh) that went wrong in an unforeseen way (a defect, e.g. a bug in an adapter):
 * logged as an error, and the loop goes on. The next round may well work (one odd answer), and without the loop
 * the delayed leave would fire and the membership lapse for peers while we stayed on the SFU, unseen; ending the
 * call instead would throw away working media over what the next round may not repeat.
 */
const goOnAfterDefects = (what: string) => <A, E, R>(eff: Effect.Effect<A, E, R>): Effect.Effect<void, E, R> =>
  Effect.catchAllDefect(Effect.asVoid(eff), (defect) => Effect.logError(`${what} went wrong; going on`, defect))

type OwnTrace = (
  name: string,
  attributes?: Record<string, unknown>
) => <A, E, R>(eff: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * Work of the call after the join (each heartbeat, refresh, re-publish, the leave) gets a trace of its own, linked
 * to the join's span: as children of the join, an hours-long call would make one huge trace whose root closed when
 * the join returned.
 */
const ownTraceLinkedTo = (joinSpan: Option.Option<Tracer.Span>): OwnTrace => {
  const links: ReadonlyArray<Tracer.SpanLink> = Option.match(joinSpan, {
    onNone: () => [],
    onSome: (span) => [{ _tag: "SpanLink", span, attributes: {} }]
  })
  return (name, attributes) => Effect.withSpan(name, { root: true, links, attributes })
}

/**
 * A background fiber outside the join's span: what it does between its own traces (log lines, an adapter's spans)
 * must not land on the join span either.
 */
const detached = <A, E>(eff: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.mapInputContext(eff, (context: Context.Context<never>) => Context.omit(Tracer.ParentSpan)(context))

/** A leave step that went wrong in an unforeseen way (a defect) must not keep the later steps from running. */
const despiteDefects = (what: string) => <A>(eff: Effect.Effect<A>): Effect.Effect<void> =>
  Effect.catchAllCause(Effect.asVoid(eff), (cause) => Effect.logWarning(`${what} went wrong`, cause))

const leave = (
  bgScope: Scope.CloseableScope,
  connScope: Scope.CloseableScope,
  m: MembershipOps,
  timeoutMs: number,
  why: CallEnd
) =>
  Effect.gen(function*() {
    // Heartbeat and re-publish must not race the leave.
    yield* m.stopWriting
    yield* bound(Scope.close(bgScope, Exit.void), timeoutMs).pipe(despiteDefects("stopping the background work"))
    // SFU first: once we stop publishing media, peers may drop us from the member list.
    yield* bound(Scope.close(connScope, Exit.void), timeoutMs).pipe(
      Effect.flatMap((done) => Option.isNone(done) ? Effect.logWarning("LiveKit disconnect timed out") : Effect.void),
      despiteDefects("the LiveKit disconnect")
    )
    yield* m.end(timeoutMs, why).pipe(despiteDefects("ending the membership"))
    yield* Effect.logDebug("left the call")
  })

/**
 * Runs a cleanup step with an upper bound, also inside a finalizer of a fiber
 * that is being interrupted. The step and its timer run as daemons, not as
 * children: an interrupted fiber passes the interrupt on to its children even
 * while it is itself uninterruptible, which would cut every cleanup step
 * short (and `Effect.timeout` races with children). The step runs
 * interruptibly, so on timeout it is interrupted in the background.
 */
const bound = <A, E>(eff: Effect.Effect<A, E>, ms: number): Effect.Effect<Option.Option<A>, E> =>
  Effect.gen(function*() {
    const step = yield* Effect.forkDaemon(Effect.interruptible(eff))
    const timer = yield* Effect.forkDaemon(Effect.sleep(ms))
    return yield* Effect.async<Option.Option<A>, E>((resume) => {
      step.addObserver((exit) => resume(Exit.map(exit, Option.some)))
      timer.addObserver(() => resume(Effect.succeed(Option.none())))
    }).pipe(Effect.ensuring(Effect.zipRight(Fiber.interruptFork(step), Fiber.interruptFork(timer))))
  })

// ---------------------------------------------------------------------------
// Matrix error classification and retries
// ---------------------------------------------------------------------------

const hex = "0123456789abcdef"
/** A random UUIDv4 for the sticky dialect's member id, through `Random` so tests can seed it. */
const uuidV4 = Effect.gen(function*() {
  let out = ""
  for (let i = 0; i < 32; i++) {
    const n = yield* Random.nextIntBetween(0, 16)
    out += i === 12 ? "4" : i === 16 ? hex[(n & 3) | 8] : hex[n]
  }
  return `${out.slice(0, 8)}-${out.slice(8, 12)}-${out.slice(12, 16)}-${out.slice(16, 20)}-${out.slice(20)}`
})
