/**
 * Observers and process handles for the end-to-end tests on the real stack.
 *
 * Everything waits on events (CLI output lines, matrix-js-sdk session events,
 * LiveKit room events) with a timeout; nothing sleeps to synchronise. Each
 * handle is a scoped resource, so a failing test still kills its processes and
 * stops its clients.
 */
import { type StackInfo, type StackUser, loginNewDevice, logoutDevice, readStack } from "@matrixrtc-effect/devstack"
import { hasMember, type Sfu, sfuClient, startRtcObserver } from "@matrixrtc-effect/devstack/observers"
import { Room, RoomEvent } from "@livekit/rtc-node"
import { Deferred, Duration, Effect, Option, Schema, Scope, Stream, SubscriptionRef } from "effect"
import { AccessToken } from "livekit-server-sdk"
import type { CallMembership, MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import * as readline from "node:readline"
import { liveMemberships } from "./faults/observer.ts"

export const binPath = fileURLToPath(new URL("../../src/bin.ts", import.meta.url))

export const stack = (): StackInfo => readStack()

import { freshDeviceId, userAt } from "@matrixrtc-effect/devstack"
export { freshDeviceId, userAt }


/** What the state-mode LiveKit identity of a member is (`/sfu/get`): `@user:server:DEVICE`. */
export const legacyIdentity = (userId: string, deviceId: string) => `${userId}:${deviceId}`

/** Waits until `ref` holds a value that `pick` maps to Some; fails with a message after `timeoutMs`. */
export const waitFor = <A, B>(
  ref: SubscriptionRef.SubscriptionRef<A>,
  pick: (a: A) => Option.Option<B>,
  timeoutMs: number,
  what: string
): Effect.Effect<B, Error> =>
  ref.changes.pipe(
    Stream.filterMap(pick),
    Stream.runHead,
    Effect.flatMap(Option.match({
      onNone: () => Effect.fail(new Error(`${what}: stream ended`)),
      onSome: Effect.succeed
    })),
    Effect.timeoutFail({ duration: Duration.millis(timeoutMs), onTimeout: () => new Error(`timed out after ${timeoutMs} ms waiting for ${what}`) })
  )

// ---------------------------------------------------------------------------------------
// The `matrixrtc` CLI as a child process

export type CliEvent = Record<string, unknown> & { readonly event: string }

export interface CliProcess {
  readonly pid: number
  readonly child: ChildProcess
  /** Every JSON line printed so far. */
  readonly events: SubscriptionRef.SubscriptionRef<ReadonlyArray<CliEvent>>
  readonly stderr: () => string
  readonly waitForEvent: (
    pred: (e: CliEvent) => boolean,
    timeoutMs: number,
    what: string
  ) => Effect.Effect<CliEvent, Error>
  /** Resolves with the exit code (or the signal) when the process ends. */
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly waitExit: (timeoutMs: number) => Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }, Error>
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/** Spawns `node bin.ts ...args`; killed (SIGKILL) when the scope closes if still running. */
export const spawnCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {}
): Effect.Effect<CliProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const events = yield* SubscriptionRef.make<ReadonlyArray<CliEvent>>([])
    const exit = yield* Deferred.make<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>()
    let stderr = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const c = spawn(process.execPath, [binPath, ...args], {
          env: { ...process.env, ...env, NO_COLOR: "1" },
          stdio: ["ignore", "pipe", "pipe"]
        })
        c.stderr!.setEncoding("utf8").on("data", (d: string) => {
          stderr += d
        })
        readline.createInterface({ input: c.stdout! }).on("line", (line) => {
          let parsed: CliEvent | undefined
          try {
            parsed = JSON.parse(line) as CliEvent
          } catch {
            stderr += `[non-JSON stdout] ${line}\n`
          }
          if (parsed !== undefined) {
            const e = parsed
            Effect.runSync(SubscriptionRef.update(events, (all) => [...all, e]))
          }
        })
        c.on("exit", (code, signal) => Effect.runSync(Deferred.succeed(exit, { code, signal })))
        return c
      }),
      (c) =>
        Deferred.isDone(exit).pipe(
          Effect.flatMap((done) =>
            done ? Effect.void : Effect.sync(() => c.kill("SIGKILL")).pipe(Effect.zipRight(Deferred.await(exit)))
          )
        )
    )
    const waitExit = (timeoutMs: number) =>
      Deferred.await(exit).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(timeoutMs),
          onTimeout: () => new Error(`matrixrtc ${args[0]} did not exit within ${timeoutMs} ms; stderr:\n${stderr}`)
        })
      )
    return {
      pid: child.pid!,
      child,
      events,
      stderr: () => stderr,
      waitForEvent: (pred, timeoutMs, what) =>
        Effect.raceFirst(
          waitFor(events, (all) => Option.fromNullable(all.find(pred)), timeoutMs, what),
          Deferred.await(exit).pipe(
            Effect.flatMap((x) =>
              // Lines may still be queued in readline when the exit arrives: look once more.
              SubscriptionRef.get(events).pipe(
                Effect.flatMap((all) => {
                  const hit = all.find(pred)
                  return hit !== undefined
                    ? Effect.succeed(hit)
                    : Effect.fail(new Error(`matrixrtc exited (${x.code ?? x.signal}) before ${what}; stderr:\n${stderr}`))
                })
              )
            ),
            Effect.delay(Duration.millis(50))
          )
        ),
      exited: Deferred.await(exit),
      waitExit,
      kill: (signal) => Effect.sync(() => void child.kill(signal))
    } satisfies CliProcess
  })

/** CLI arguments for a password login of a stack user on a fresh device (the password stays out of argv). */
export const loginArgs = (s: StackInfo, user: StackUser, deviceId: string) => ({
  args: ["--homeserver", s.homeserverUrl, "--user", user.userId, "--device-id", deviceId],
  env: { MATRIXRTC_PASSWORD: user.password }
})

/** `matrixrtc join --json` into the stack's room as `user` on `deviceId`, with `extra` arguments (media). */
export const spawnJoin = (s: StackInfo, user: StackUser, deviceId: string, extra: ReadonlyArray<string> = []) => {
  const login = loginArgs(s, user, deviceId)
  return spawnCli(["join", ...login.args, "--room", s.roomId, ...extra, "--json"], login.env)
}

// ---------------------------------------------------------------------------------------
// matrix-js-sdk as an independent observer (and peer) of the call

export interface RtcObserver {
  readonly session: MatrixRTCSession
  readonly find: (userId: string, deviceId: string) => Effect.Effect<Option.Option<CallMembership>>
  /** Waits until `pred` holds for the memberships; returns `performance.now()` when it was seen. */
  readonly waitUntil: (
    pred: (ms: ReadonlyArray<CallMembership>) => boolean,
    timeoutMs: number,
    what: string
  ) => Effect.Effect<number, Error>
}

const asError = (e: unknown) => (e instanceof Error ? e : new Error(String(e)))

/** Logs `user` in on a new device named `deviceName`; the device is logged out when the scope closes. */
export const loginFresh = (s: StackInfo, user: StackUser, deviceName: string): Effect.Effect<StackUser, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => loginNewDevice(s.homeserverUrl, user.userId, user.password, deviceName),
      catch: (e) => new Error(`login of ${user.userId} failed: ${String(e)}`)
    }).pipe(Effect.map((c): StackUser => ({ ...user, ...c }))),
    (u) => Effect.promise(() => logoutDevice(s.homeserverUrl, u.accessToken))
  )

/** devstack's matrix-js-sdk observer of the room's MatrixRTC session, stopped when the scope closes. */
export const rtcObserver = (s: StackInfo, user: StackUser, roomId: string): Effect.Effect<RtcObserver, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => startRtcObserver(s.homeserverUrl, user, roomId, 30_000), catch: asError }),
    (o) => Effect.sync(() => o.stop())
  ).pipe(
    Effect.map((o): RtcObserver => ({
      session: o.session,
      find: (userId, deviceId) =>
        Effect.sync(() => Option.fromNullable(o.members().find((m) => hasMember(userId, deviceId)([m])))),
      waitUntil: (pred, timeoutMs, what) =>
        Effect.tryPromise({ try: (signal) => o.waitUntil(pred, timeoutMs, what, signal), catch: asError })
    }))
  )

export { hasMember } from "@matrixrtc-effect/devstack/observers"

const CallMemberStateEvent = Schema.Struct({
  content: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  origin_server_ts: Schema.Number
})

/**
 * The call-member state event on a state key (content `{}` after a leave), straight from the homeserver, with
 * the time the homeserver stamped it.
 */
export const callMemberState = (s: StackInfo, user: StackUser, roomId: string, stateKey: string) =>
  Effect.tryPromise({
    try: async () => {
      const res = await fetch(
        `${s.homeserverUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/org.matrix.msc3401.call.member/${encodeURIComponent(stateKey)}?format=event`,
        { headers: { Authorization: `Bearer ${user.accessToken}` } }
      )
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const event = Schema.decodeUnknownSync(CallMemberStateEvent)(await res.json())
      return { content: event.content, originServerTs: event.origin_server_ts }
    },
    catch: (e) => new Error(`reading call.member state failed: ${String(e)}`)
  })

/**
 * State keys of the live call memberships of (userId, deviceId) in the room, from every call.member state event
 * the homeserver has now (whatever form the state key takes).
 */
export const liveMembershipsOf = (s: StackInfo, reader: StackUser, roomId: string, userId: string, deviceId: string) =>
  Effect.tryPromise({
    try: () => liveMemberships(s.homeserverUrl, reader.accessToken, roomId, userId, deviceId),
    catch: (e) => new Error(`reading the room state failed: ${String(e)}`)
  })

// ---------------------------------------------------------------------------------------
// LiveKit as an independent observer

const sfus = new Map<string, Sfu>()

/** devstack's RoomService helper, one per stack so that every check reuses its client. */
const sfu = (s: StackInfo): Sfu => {
  let found = sfus.get(s.livekitHttpUrl)
  if (found === undefined) {
    found = sfuClient(s.livekitHttpUrl, s.livekitApiKey, s.livekitApiSecret)
    sfus.set(s.livekitHttpUrl, found)
  }
  return found
}

export const listIdentities = (s: StackInfo, roomName: string) =>
  Effect.tryPromise({ try: () => sfu(s).participants(roomName), catch: (e) => new Error(`listParticipants failed: ${String(e)}`) })

export interface LiveKitObserver {
  /** Identities currently in the room, updated by LiveKit room events. */
  readonly identities: SubscriptionRef.SubscriptionRef<ReadonlySet<string>>
  /**
   * Waits until `pred` holds; returns the wall-clock time (`Date.now()`) it was seen, comparable with the
   * homeserver's `origin_server_ts` on this machine. LiveKit tells the observer after the fact, so it is an upper
   * bound of when the SFU saw the change.
   */
  readonly waitUntil: (pred: (ids: ReadonlySet<string>) => boolean, timeoutMs: number, what: string) => Effect.Effect<number, Error>
}

/**
 * A hidden, subscribe-nothing participant in the LiveKit room: it hears about
 * joins and leaves as the SFU announces them, with no polling delay.
 */
export const livekitObserver = (s: StackInfo, roomName: string): Effect.Effect<LiveKitObserver, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const at = new AccessToken(s.livekitApiKey, s.livekitApiSecret, { identity: `e2e-observer-${randomBytes(4).toString("hex")}` })
    at.addGrant({ room: roomName, roomJoin: true, canSubscribe: false, canPublish: false, canPublishData: false, hidden: true })
    const jwt = yield* Effect.promise(() => at.toJwt())
    const room = new Room()
    const identities = yield* SubscriptionRef.make<ReadonlySet<string>>(new Set())
    const refresh = () =>
      Effect.runSync(SubscriptionRef.set(identities, new Set([...room.remoteParticipants.values()].map((p) => p.identity))))
    room.on(RoomEvent.ParticipantConnected, refresh).on(RoomEvent.ParticipantDisconnected, refresh)
    yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => room.connect(s.livekitUrl, jwt, { autoSubscribe: false, dynacast: false }), catch: (e) => new Error(`observer connect: ${String(e)}`) }),
      () => Effect.promise(() => room.disconnect())
    )
    refresh()
    return {
      identities,
      waitUntil: (pred, timeoutMs, what) =>
        waitFor(identities, (ids) => (pred(ids) ? Option.some(Date.now()) : Option.none()), timeoutMs, what)
    } satisfies LiveKitObserver
  })
