/**
 * An in-memory Matrix homeserver behind the `MatrixClient` port: sessions,
 * room state, MSC4140 delayed events that really fire under TestClock, OpenID
 * tokens (remembered so the test auth service can verify them), transports /
 * .well-known, room versions, power levels, room membership (kick, ban, leave),
 * `/versions` + `/capabilities` flags, injectable faults, and every call in the
 * shared `TestCallLog`.
 */
import { Clock, Context, Effect, FiberMap, Layer, Option, PubSub, Redacted, Ref, Scope, Stream } from "effect"
import type { DeviceId, RoomId, UserId } from "../Ids.ts"
import type {
  DelayedEventAction,
  MatrixClientService,
  OpenIdToken,
  RawCallEvent,
  ServerSupport,
  Session
} from "../MatrixClient.ts"
import { MatrixClient, MatrixError } from "../MatrixClient.ts"
import * as Membership from "../Membership.ts"
import type { FailFault, Fault, FaultQueue } from "./TestCallLog.ts"
import { makeFaultQueue, TestCallLog } from "./TestCallLog.ts"

export type HomeserverOp =
  | "whoami"
  | "openid"
  | "sendState"
  | "scheduleDelayed"
  | "delayed.restart"
  | "delayed.send"
  | "delayed.cancel"
  | "sendSticky"
  | "serverSupport"
  | "roomVersion"
  | "transports"
  | "wellKnown"

/** How the server words "delay too long" (protocol §3.1: all variants occur in the field). */
export type MaxDelayErrorVariant =
  /** `M_UNKNOWN` + `org.matrix.msc4140.errcode: M_MAX_DELAY_EXCEEDED` + `org.matrix.msc4140.max_delay` (what JS-SDK reads). */
  | "js-sdk"
  /** `ORG.MATRIX.MSC4140_MAX_DELAY_EXCEEDED` + `org.matrix.msc4140.max_delay` (MSC unstable). */
  | "msc-unstable"
  /** `M_MAX_DELAY_EXCEEDED` + `max_delay` (MSC stable). */
  | "stable"

export interface TestRoom {
  readonly roomId: string
  /** Default `"11"`; `org.matrix.msc3757.*` rooms take call-member state keys without the leading `_`. */
  readonly version?: string | undefined
  /** Power level needed for `org.matrix.msc3401.call.member` (default 0). */
  readonly callMemberPowerLevel?: number | undefined
  /** Users' power levels (default 0). */
  readonly users?: Readonly<Record<string, number>> | undefined
}

export interface TestHomeserverOptions {
  readonly serverName?: string | undefined
  /** The logged-in user; `null` = no session. Default `@alice:<serverName>` / `ALICEDEVICE`. */
  readonly session?: { readonly userId: string; readonly deviceId: string } | null | undefined
  readonly delayedEvents?: boolean | undefined
  readonly maxDelayMs?: number | undefined
  readonly maxDelayErrorVariant?: MaxDelayErrorVariant | undefined
  /** Whether `/capabilities` advertises the max delay (default true); false makes clients learn it from the error. */
  readonly advertiseMaxDelay?: boolean | undefined
  readonly stickyEvents?: boolean | undefined
  /** Entries of `rtc_transports`; `null` = the endpoint answers 404 M_UNRECOGNIZED. Default: the test auth service. */
  readonly transports?: ReadonlyArray<unknown> | null | undefined
  /** The `.well-known/matrix/client` JSON; `null` = 404. Default: none. */
  readonly wellKnown?: unknown | null | undefined
  readonly rooms?: ReadonlyArray<TestRoom> | undefined
}

export interface StateEntry {
  readonly roomId: string
  readonly type: string
  readonly stateKey: string
  readonly sender: string
  readonly content: Readonly<Record<string, unknown>>
  readonly eventId: string
  readonly originServerTs: number
}

export interface ScheduledDelayedEvent {
  readonly delayId: string
  readonly roomId: string
  readonly type: string
  readonly stateKey: string | undefined
  readonly sender: string
  readonly delayMs: number
  /** TestClock ms at which it fires unless restarted, sent or cancelled. */
  readonly dueAt: number
}

export type RoomMembership = "join" | "leave" | "ban" | "invite" | "knock"

export interface TestHomeserverService {
  readonly serverName: string
  /** The default session's access token, exposed so tests can prove it never leaks into logs. */
  readonly accessToken: string
  /** A `MatrixClient` for another user/device on this server (for multi-user tests). */
  readonly clientFor: (userId: string, deviceId: string) => MatrixClientService
  readonly injectFault: (op: HomeserverOp, fault: Fault, times?: number) => Effect.Effect<void>
  readonly clearFaults: Effect.Effect<void>
  /** Current state of a room, optionally only one event type. */
  readonly roomState: (roomId: string, type?: string) => Effect.Effect<ReadonlyArray<StateEntry>>
  /** Call-member state events with non-empty content (= someone is in the call). */
  readonly activeMemberships: (roomId: string) => Effect.Effect<ReadonlyArray<StateEntry>>
  /** Write state as another actor (e.g. an admin deleting a membership). */
  readonly setState: (
    roomId: string,
    type: string,
    stateKey: string,
    content: Record<string, unknown>,
    sender?: string
  ) => Effect.Effect<void>
  /**
   * Changes `userId`'s room membership as `sender` (default `@admin:<serverName>`) does: a kick is `"leave"` by
   * someone else, leaving from another device `"leave"` by the user. The `m.room.member` event reaches
   * `callMemberEvents`; as on Synapse, the user's events into the room are then refused (403 M_FORBIDDEN), their
   * delayed events stay scheduled and are refused (and dropped) when they fire or are sent. A user the room has no
   * `m.room.member` for counts as joined.
   */
  readonly setMembership: (
    roomId: string,
    userId: string,
    membership: RoomMembership,
    sender?: string
  ) => Effect.Effect<void>
  readonly scheduledDelayedEvents: Effect.Effect<ReadonlyArray<ScheduledDelayedEvent>>
  /** Who an OpenID token was issued to, if this server issued it. */
  readonly verifyOpenIdToken: (token: string) => Effect.Effect<Option.Option<{ readonly sub: string }>>
  readonly issuedOpenIdTokens: Effect.Effect<ReadonlyArray<string>>
  readonly setMaxDelay: (maxDelayMs: number | undefined, variant?: MaxDelayErrorVariant) => Effect.Effect<void>
  readonly setTransports: (transports: ReadonlyArray<unknown> | null, wellKnown?: unknown | null) => Effect.Effect<void>
}

export class TestHomeserver extends Context.Tag("@matrixrtc-effect/core/testing/TestHomeserver")<
  TestHomeserver,
  TestHomeserverService
>() {}

export const defaultServerName = "example.org"
/** The auth-service URL the default transports advertise (see `TestAuthService`). */
export const defaultAuthServiceUrl = "https://rtc.example.org/livekit/jwt"

interface Room {
  readonly version: string
  readonly callMemberPowerLevel: number
  readonly users: Readonly<Record<string, number>>
  readonly state: ReadonlyMap<string, StateEntry>
  readonly sticky: ReadonlyArray<RawCallEvent & { readonly expiresAt: number }>
}

const stateId = (type: string, stateKey: string) => `${type}\u0000${stateKey}`

const summarize = (content: Readonly<Record<string, unknown>>): string => {
  if (Membership.isLeaveContent(content)) return "leave"
  const parts = ["join"]
  if (typeof content["expires"] === "number") parts.push(`expires=${content["expires"]}`)
  if (typeof content["created_ts"] === "number") parts.push(`created_ts=${content["created_ts"]}`)
  return parts.join(" ")
}

export const make = (
  options: TestHomeserverOptions = {}
): Effect.Effect<readonly [MatrixClientService, TestHomeserverService], never, TestCallLog | Scope.Scope> =>
  Effect.gen(function*() {
    const log = yield* TestCallLog
    const serverName = options.serverName ?? defaultServerName
    const accessToken = `syt_test_access_secret_${serverName}`
    const faults: FaultQueue<HomeserverOp> = yield* makeFaultQueue<HomeserverOp>(log, "homeserver")
    const counter = yield* Ref.make(0)
    const next = (prefix: string) => Effect.map(Ref.updateAndGet(counter, (n) => n + 1), (n) => `${prefix}${n}`)
    const config = yield* Ref.make({
      delayedEvents: options.delayedEvents ?? true,
      maxDelayMs: options.maxDelayMs,
      variant: options.maxDelayErrorVariant ?? ("js-sdk" as MaxDelayErrorVariant),
      transports: options.transports === undefined
        ? [{ type: "livekit", livekit_service_url: defaultAuthServiceUrl }] as ReadonlyArray<unknown> | null
        : options.transports,
      wellKnown: options.wellKnown === undefined ? null : options.wellKnown
    })
    const rooms = yield* Ref.make<ReadonlyMap<string, Room>>(
      new Map((options.rooms ?? []).map((r) => [r.roomId, newRoom(r)]))
    )
    const openIdTokens = yield* Ref.make<ReadonlyMap<string, string>>(new Map())
    const delayed = yield* Ref.make<ReadonlyMap<string, ScheduledDelayedEvent & { content: Record<string, unknown> }>>(
      new Map()
    )
    const timers = yield* FiberMap.make<string>()
    const changes = yield* PubSub.unbounded<{ readonly roomId: string; readonly event: RawCallEvent }>()

    const room = (roomId: string) =>
      Ref.modify(rooms, (m): [Room, ReadonlyMap<string, Room>] => {
        const r = m.get(roomId)
        if (r) return [r, m]
        const fresh = newRoom({ roomId })
        return [fresh, new Map(m).set(roomId, fresh)]
      })

    /** A queued failure as the server would answer it. */
    const toMatrixError = (fault: FailFault) =>
      new MatrixError({
        reason: fault.status === undefined ? "Transport" : "Http",
        status: fault.status,
        errcode: fault.errcode,
        error: fault.error,
        body: { errcode: fault.errcode, error: fault.error, ...fault.body },
        retryAfterMs: fault.retryAfterMs
      })

    const writeState = (roomId: string, type: string, stateKey: string, content: Record<string, unknown>, sender: string) =>
      Effect.gen(function*() {
        const eventId = yield* next("$event")
        const originServerTs = yield* Clock.currentTimeMillis
        const entry: StateEntry = { roomId, type, stateKey, sender, content, eventId, originServerTs }
        yield* room(roomId)
        yield* Ref.update(rooms, (m) => {
          const r = m.get(roomId)!
          return new Map(m).set(roomId, { ...r, state: new Map(r.state).set(stateId(type, stateKey), entry) })
        })
        if (type === Membership.SessionEventType || type === Membership.RoomMemberEventType) {
          yield* PubSub.publish(changes, { roomId, event: toRaw(entry) })
        }
        // As Synapse (since #17810): a state write cancels other users' delayed events for the same key, not the
        // writer's own (local-stack.md §1.6); their next restart then finds nothing (404).
        const superseded = yield* Ref.modify(delayed, (m) => {
          const gone = [...m.values()].filter((d) =>
            d.roomId === roomId && d.type === type && d.stateKey === stateKey && d.sender !== sender
          )
          const rest = new Map(m)
          for (const d of gone) rest.delete(d.delayId)
          return [gone, rest]
        })
        for (const d of superseded) {
          yield* FiberMap.remove(timers, d.delayId)
          yield* log.append({ actor: "homeserver", op: "delayed.superseded", roomId, stateKey, who: d.sender })
        }
        return eventId
      })

    /** As Synapse refuses an event from a user who is not joined (`m.room.member` other than `join`). */
    const checkJoined = (roomId: string, op: HomeserverOp | "delayed.fire", sender: string, stateKey?: string) =>
      Effect.flatMap(room(roomId), (r) => {
        const membership = membershipOf(r, sender)
        return membership === "join"
          ? Effect.void
          : Effect.zipRight(
            log.append({ actor: "homeserver", op, roomId, stateKey, who: sender, detail: "403 M_FORBIDDEN" }),
            Effect.fail(
              new MatrixError({
                reason: "Http",
                status: 403,
                errcode: "M_FORBIDDEN",
                error: `User ${sender} not in room ${roomId} (${membership})`,
                body: { errcode: "M_FORBIDDEN" }
              })
            )
          )
      })

    const checkPower = (roomId: string, type: string, sender: string, stateKey: string) =>
      Effect.flatMap(room(roomId), (r) => {
        const needed = type === Membership.SessionEventType ? r.callMemberPowerLevel : 0
        return (r.users[sender] ?? 0) >= needed
          ? Effect.void
          : Effect.zipRight(
            log.append({ actor: "homeserver", op: "sendState", roomId, stateKey, who: sender, detail: "403 M_FORBIDDEN" }),
            Effect.fail(
              new MatrixError({
                reason: "Http",
                status: 403,
                errcode: "M_FORBIDDEN",
                error: `You don't have permission to post that to the room. user_level (${
                  r.users[sender] ?? 0
                }) < send_level (${needed})`,
                body: { errcode: "M_FORBIDDEN" }
              })
            )
          )
      })

    const maxDelayError = (max: number, variant: MaxDelayErrorVariant) => {
      const body: Record<string, unknown> = variant === "js-sdk"
        ? { errcode: "M_UNKNOWN", "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED", "org.matrix.msc4140.max_delay": max }
        : variant === "msc-unstable"
        ? { errcode: "ORG.MATRIX.MSC4140_MAX_DELAY_EXCEEDED", "org.matrix.msc4140.max_delay": max }
        : { errcode: "M_MAX_DELAY_EXCEEDED", max_delay: max }
      return new MatrixError({
        reason: "Http",
        status: 403, // as Synapse 1.157 answers it (local-stack.md §1.6)
        errcode: body["errcode"] as string,
        error: `The requested delay exceeds the allowed maximum of ${max}ms`,
        body
      })
    }

    /**
     * Fires (or sends now) a delayed event: the scheduled content becomes real state. Dropped either way, also when
     * the event is refused (its sender has left the room): Synapse deletes a processed delayed event whatever came
     * of sending it.
     */
    const fire = (delayId: string, op: "delayed.fire" | "delayed.send") =>
      Effect.gen(function*() {
        const d = yield* Ref.modify(delayed, (m) => {
          const found = m.get(delayId)
          if (!found) return [undefined, m]
          const rest = new Map(m)
          rest.delete(delayId)
          return [found, rest]
        })
        if (!d) return
        yield* checkJoined(d.roomId, op, d.sender, d.stateKey)
        yield* log.append({
          actor: "homeserver",
          op,
          roomId: d.roomId,
          stateKey: d.stateKey,
          who: d.sender,
          detail: summarize(d.content)
        })
        if (d.stateKey !== undefined) yield* writeState(d.roomId, d.type, d.stateKey, d.content, d.sender)
        else yield* publishSticky(d.roomId, d.type, d.content, d.sender, Membership.StickyDurationMs)
      })

    const arm = (delayId: string, delayMs: number) =>
      FiberMap.run(timers, delayId, Effect.zipRight(Effect.sleep(delayMs), Effect.ignore(fire(delayId, "delayed.fire"))))

    const publishSticky = (roomId: string, type: string, content: Record<string, unknown>, sender: string, durationMs: number) =>
      Effect.gen(function*() {
        const eventId = yield* next("$sticky")
        const now = yield* Clock.currentTimeMillis
        const event: RawCallEvent = {
          type,
          stateKey: undefined,
          sender,
          eventId,
          originServerTs: now,
          content,
          stickyDurationMs: durationMs
        }
        yield* room(roomId)
        yield* Ref.update(rooms, (m) => {
          const r = m.get(roomId)!
          return new Map(m).set(roomId, { ...r, sticky: [...r.sticky, { ...event, expiresAt: now + durationMs }] })
        })
        yield* PubSub.publish(changes, { roomId, event })
        return eventId
      })

    const schedule = (
      sender: string,
      roomId: string,
      type: string,
      stateKey: string | undefined,
      content: Record<string, unknown>,
      delayMs: number,
      op: HomeserverOp
    ) =>
      Effect.gen(function*() {
        const cfg = yield* Ref.get(config)
        if (!cfg.delayedEvents) {
          yield* log.append({ actor: "homeserver", op, roomId, stateKey, who: sender, detail: "400 M_UNRECOGNIZED" })
          return yield* Effect.fail(
            new MatrixError({ reason: "Http", status: 400, errcode: "M_UNRECOGNIZED", error: "Unrecognized request" })
          )
        }
        if (cfg.maxDelayMs !== undefined && delayMs > cfg.maxDelayMs) {
          yield* log.append({ actor: "homeserver", op, roomId, stateKey, who: sender, detail: `max delay ${cfg.maxDelayMs}` })
          return yield* Effect.fail(maxDelayError(cfg.maxDelayMs, cfg.variant))
        }
        const delayId = yield* next("syd_")
        const now = yield* Clock.currentTimeMillis
        yield* Ref.update(delayed, (m) =>
          new Map(m).set(delayId, { delayId, roomId, type, stateKey, sender, delayMs, dueAt: now + delayMs, content }))
        yield* arm(delayId, delayMs)
        yield* log.append({
          actor: "homeserver",
          op,
          roomId,
          stateKey,
          who: sender,
          detail: `${summarize(content)} delay=${delayMs}`
        })
        return delayId
      })

    const callMemberEvents = (roomId: string): Stream.Stream<RawCallEvent, MatrixError> =>
      Stream.unwrapScoped(
        Effect.gen(function*() {
          // Subscribe before the snapshot: an event in both is harmless for a fold keyed by state key.
          const sub = yield* PubSub.subscribe(changes)
          const r = yield* room(roomId)
          const now = yield* Clock.currentTimeMillis
          const snapshot: Array<RawCallEvent> = [
            ...[...r.state.values()]
              .filter((e) => e.type === Membership.SessionEventType || e.type === Membership.RoomMemberEventType)
              .map(toRaw),
            // What is left of each TTL, as a server's `unsigned.msc4354_sticky_duration_ttl_ms` says, not the
            // full duration again.
            ...r.sticky.filter((e) => e.expiresAt > now).map(({ expiresAt, ...e }) => ({
              ...e,
              stickyDurationMs: expiresAt - now
            }))
          ]
          return Stream.concat(
            Stream.fromIterable(snapshot),
            Stream.fromQueue(sub).pipe(Stream.filter((c) => c.roomId === roomId), Stream.map((c) => c.event))
          )
        })
      )

    const clientFor = (userId: string, deviceId: string): MatrixClientService => {
      const session: Session = {
        userId: userId as UserId,
        deviceId: deviceId as DeviceId,
        homeserverUrl: `https://${serverName}`
      }
      const call = <A>(
        op: HomeserverOp,
        body: Effect.Effect<A, MatrixError>,
        where: { roomId?: string; stateKey?: string | undefined } = {}
      ) => faults.run(op, { roomId: where.roomId, stateKey: where.stateKey, who: userId }, toMatrixError, body)
      return MatrixClient.of({
        session: Effect.succeed(Option.some(session)),
        whoami: call("whoami", Effect.as(log.append({ actor: "homeserver", op: "whoami", who: userId }), { userId, deviceId })),
        requestOpenIdToken: call(
          "openid",
          Effect.gen(function*() {
            const token = yield* next(`openid_secret_${serverName}_`)
            yield* Ref.update(openIdTokens, (m) => new Map(m).set(token, userId))
            yield* log.append({ actor: "homeserver", op: "openid", who: userId })
            return {
              accessToken: Redacted.make(token),
              tokenType: "Bearer",
              matrixServerName: serverName,
              expiresIn: 3600
            } satisfies OpenIdToken
          })
        ),
        sendStateEvent: (roomId: RoomId, type, stateKey, content) =>
          call(
            "sendState",
            Effect.gen(function*() {
              yield* checkJoined(roomId, "sendState", userId, stateKey)
              yield* checkPower(roomId, type, userId, stateKey)
              const eventId = yield* writeState(roomId, type, stateKey, content, userId)
              yield* log.append({ actor: "homeserver", op: "sendState", roomId, stateKey, who: userId, detail: summarize(content) })
              return { eventId }
            }),
            { roomId, stateKey }
          ),
        sendDelayedStateEvent: (roomId, type, stateKey, content, delayMs) =>
          call(
            "scheduleDelayed",
            Effect.gen(function*() {
              yield* checkPower(roomId, type, userId, stateKey)
              const delayId = yield* schedule(userId, roomId, type, stateKey, content, delayMs, "scheduleDelayed")
              return { delayId }
            }),
            { roomId, stateKey }
          ),
        updateDelayedEvent: (delayId: string, action: DelayedEventAction) => {
          const op: HomeserverOp = `delayed.${action}`
          return call(
            op,
            Effect.gen(function*() {
              const d = (yield* Ref.get(delayed)).get(delayId)
              if (!d || d.sender !== userId) {
                yield* log.append({ actor: "homeserver", op, who: userId, detail: "404 M_NOT_FOUND" })
                return yield* Effect.fail(
                  new MatrixError({ reason: "Http", status: 404, errcode: "M_NOT_FOUND", error: "Delayed event not found" })
                )
              }
              if (action === "send") {
                yield* FiberMap.remove(timers, delayId)
                return yield* fire(delayId, "delayed.send")
              }
              yield* log.append({ actor: "homeserver", op, roomId: d.roomId, stateKey: d.stateKey, who: userId })
              if (action === "cancel") {
                yield* FiberMap.remove(timers, delayId)
                yield* Ref.update(delayed, (m) => {
                  const rest = new Map(m)
                  rest.delete(delayId)
                  return rest
                })
              } else {
                const now = yield* Clock.currentTimeMillis
                yield* Ref.update(delayed, (m) => new Map(m).set(delayId, { ...d, dueAt: now + d.delayMs }))
                yield* arm(delayId, d.delayMs)
              }
            })
          )
        },
        sendStickyEvent: (roomId, type, content, opts) =>
          call(
            "sendSticky",
            Effect.gen(function*() {
              const cfg = yield* Ref.get(config)
              if (!options.stickyEvents) {
                return yield* Effect.fail(
                  new MatrixError({ reason: "Unsupported", error: "org.matrix.msc4354 is not supported" })
                )
              }
              if (opts.delayMs !== undefined) {
                if (!cfg.delayedEvents) {
                  return yield* Effect.fail(new MatrixError({ reason: "Unsupported", error: "org.matrix.msc4140 is not supported" }))
                }
                const delayId = yield* schedule(userId, roomId, type, undefined, content, opts.delayMs, "sendSticky")
                return { delayId }
              }
              yield* checkJoined(roomId, "sendSticky", userId)
              const eventId = yield* publishSticky(roomId, type, content, userId, opts.stickyDurationMs)
              yield* log.append({ actor: "homeserver", op: "sendSticky", roomId, who: userId, detail: summarize(content) })
              return { eventId }
            }),
            { roomId }
          ),
        serverSupport: call(
          "serverSupport",
          Effect.map(Effect.zipRight(log.append({ actor: "homeserver", op: "serverSupport", who: userId }), Ref.get(config)), (cfg): ServerSupport => ({
            delayedEvents: cfg.delayedEvents,
            maxDelayMs: options.advertiseMaxDelay === false ? Option.none() : Option.fromNullable(cfg.maxDelayMs),
            stickyEvents: options.stickyEvents ?? false
          }))
        ),
        roomVersion: (roomId) =>
          call(
            "roomVersion",
            Effect.zipRight(log.append({ actor: "homeserver", op: "roomVersion", roomId, who: userId }), Effect.map(room(roomId), (r) => r.version)),
            { roomId }
          ),
        rtcTransports: call(
          "transports",
          Effect.flatMap(Effect.zipRight(log.append({ actor: "homeserver", op: "transports", who: userId }), Ref.get(config)), (cfg) =>
            cfg.transports === null
              ? Effect.fail(new MatrixError({ reason: "Http", status: 404, errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }))
              : Effect.succeed({ rtc_transports: cfg.transports }))
        ),
        wellKnown: call(
          "wellKnown",
          Effect.flatMap(Effect.zipRight(log.append({ actor: "homeserver", op: "wellKnown", who: userId }), Ref.get(config)), (cfg) =>
            cfg.wellKnown === null
              ? Effect.fail(new MatrixError({ reason: "Http", status: 404 }))
              : Effect.succeed(cfg.wellKnown))
        ),
        callMemberEvents
      })
    }

    const defaultSession = options.session === undefined
      ? { userId: `@alice:${serverName}`, deviceId: "ALICEDEVICE" }
      : options.session
    const client: MatrixClientService = defaultSession === null
      ? {
        ...clientFor(`@nobody:${serverName}`, "NODEVICE"),
        session: Effect.succeed(Option.none()),
        whoami: Effect.fail(new MatrixError({ reason: "Http", status: 401, errcode: "M_MISSING_TOKEN" }))
      }
      : clientFor(defaultSession.userId, defaultSession.deviceId)

    const control = TestHomeserver.of({
      serverName,
      accessToken,
      clientFor,
      injectFault: faults.inject,
      clearFaults: faults.clear,
      roomState: (roomId, type) =>
        Effect.map(Ref.get(rooms), (m) => [...(m.get(roomId)?.state.values() ?? [])].filter((e) => type === undefined || e.type === type)),
      activeMemberships: (roomId) =>
        Effect.map(Ref.get(rooms), (m) =>
          [...(m.get(roomId)?.state.values() ?? [])].filter((e) =>
            e.type === Membership.SessionEventType && !Membership.isLeaveContent(e.content)
          )),
      setState: (roomId, type, stateKey, content, sender = `@admin:${serverName}`) =>
        Effect.zipRight(
          writeState(roomId, type, stateKey, content, sender),
          log.append({ actor: "homeserver", op: "sendState", roomId, stateKey, who: sender, detail: summarize(content) })
        ),
      setMembership: (roomId, userId, membership, sender = `@admin:${serverName}`) =>
        Effect.zipRight(
          writeState(roomId, Membership.RoomMemberEventType, userId, { membership }, sender),
          log.append({ actor: "homeserver", op: "member", roomId, stateKey: userId, who: sender, detail: membership })
        ),
      scheduledDelayedEvents: Effect.map(Ref.get(delayed), (m) =>
        [...m.values()].map(({ content: _content, ...rest }) => rest)),
      verifyOpenIdToken: (token) =>
        Effect.map(Ref.get(openIdTokens), (m) => Option.map(Option.fromNullable(m.get(token)), (sub) => ({ sub }))),
      issuedOpenIdTokens: Effect.map(Ref.get(openIdTokens), (m) => [...m.keys()]),
      setMaxDelay: (maxDelayMs, variant) =>
        Ref.update(config, (c) => ({ ...c, maxDelayMs, variant: variant ?? c.variant })),
      setTransports: (transports, wellKnown) =>
        Ref.update(config, (c) => ({ ...c, transports, wellKnown: wellKnown === undefined ? c.wellKnown : wellKnown }))
    })
    return [client, control] as const
  })

const newRoom = (r: TestRoom): Room => ({
  version: r.version ?? "11",
  callMemberPowerLevel: r.callMemberPowerLevel ?? 0,
  users: r.users ?? {},
  state: new Map(),
  sticky: []
})

const membershipOf = (r: Room, userId: string): string => {
  const member = r.state.get(stateId(Membership.RoomMemberEventType, userId))?.content["membership"]
  return typeof member === "string" ? member : "join"
}

const toRaw = (e: StateEntry): RawCallEvent => ({
  type: e.type,
  stateKey: e.stateKey,
  sender: e.sender,
  eventId: e.eventId,
  originServerTs: e.originServerTs,
  content: e.content
})

/** `MatrixClient` (the logged-in user) plus the `TestHomeserver` control. */
export const layer = (
  options: TestHomeserverOptions = {}
): Layer.Layer<MatrixClient | TestHomeserver, never, TestCallLog> =>
  Layer.scopedContext(
    Effect.map(make(options), ([client, control]) =>
      Context.make(MatrixClient, client).pipe(Context.add(TestHomeserver, control)))
  )
