/**
 * Harness of the fault-injection suite: the real stack, a fault proxy in front of
 * each service, our call on the Node layers pointed at the proxies, and the
 * independent checks every scenario ends with (no ghost membership, no leaked
 * LiveKit participant).
 *
 * Routing through the proxies is devstack's `startProxiedStack` (discovery and JWT
 * answers rewritten so that every service is reached through its proxy; faults win
 * over the rewrites).
 */
import { Call, type CallError, type Ids, type MatrixError } from "@matrixrtc-effect/core"
import { type Credentials, type StackInfo, type StackUser, loginNewDevice, logoutDevice, readStack, userAt } from "@matrixrtc-effect/devstack"
export { userAt }
import { NodeCall, type NodeCallServices, NodeLiveKit } from "@matrixrtc-effect/node"
import { Cause, Effect, Exit, Fiber, ManagedRuntime, Option, Redacted, Schema, Scope } from "effect"
import { type Sfu, sfuClient } from "@matrixrtc-effect/devstack/observers"
import { CALL_MEMBER_EVENT } from "@matrixrtc-effect/devstack"
import { type FaultProxy, type ProxiedStack, type RecordedRequest, startProxiedStack } from "@matrixrtc-effect/devstack/fault-proxy"
import { liveMemberships, type RoomObserver, startRoomObserver } from "./observer.ts"

// ---------------------------------------------------------------------------
// Suite-wide tally, printed at the end

/** `leftToTimer`: leaves of ours that did not end the membership themselves (only the delayed leave would). */
export const tally = { scenarios: 0, ghosts: 0, leftToTimer: 0, leakedParticipants: 0, lines: [] as Array<string> }

export const summaryLine = () =>
  `[faults] ${tally.scenarios} scenarios, ${tally.ghosts} ghost memberships, ${tally.leftToTimer} leaves left to the server's timer, ${tally.leakedParticipants} leaked LiveKit participants`

// ---------------------------------------------------------------------------
// Stack, users, devices

export type { Credentials } from "@matrixrtc-effect/devstack"

/** A device of our own per scenario: memberships and LiveKit identities never collide. */
export const freshDevice = (s: StackInfo, user: StackUser, label: string): Promise<Credentials> =>
  loginNewDevice(s.homeserverUrl, user.userId, user.password, `faults ${label}`)

export const logout = (s: StackInfo, c: Credentials) => logoutDevice(s.homeserverUrl, c.accessToken)

export interface Env {
  /** Holds rtc-node's native runtime for the whole suite (each scenario's layer would otherwise dispose it). */
  readonly ffi: ManagedRuntime.ManagedRuntime<unknown, never>
  readonly stack: StackInfo
  readonly observer: RoomObserver
  readonly observerCreds: Credentials
  readonly sfu: Sfu
}

export const setupEnv = async (): Promise<Env> => {
  const stack = readStack()
  const observerCreds = await freshDevice(stack, userAt(stack, 2), "observer")
  const observer = await startRoomObserver(stack.homeserverUrl, observerCreds.accessToken, stack.roomId)
  const ffi = ManagedRuntime.make(NodeLiveKit.layer())
  await ffi.runPromise(Effect.void)
  return { ffi: ffi as ManagedRuntime.ManagedRuntime<unknown, never>, stack, observer, observerCreds, sfu: sfuClient(stack.livekitHttpUrl, stack.livekitApiKey, stack.livekitApiSecret) }
}

export const teardownEnv = async (env: Env) => {
  env.observer.stop()
  await logout(env.stack, env.observerCreds)
  await env.ffi.dispose()
}

// ---------------------------------------------------------------------------
// Proxies

export type Proxies = ProxiedStack

// ---------------------------------------------------------------------------
// Our call

/** Join options for the suite: short delays so that the delayed leave is observable quickly. */
export const DELAY_MS = 4_000
export const joinOptions: Call.JoinOptions = {
  delayMs: DELAY_MS,
  heartbeatMs: 2_000,
  connectTimeoutMs: 4_000,
  requestTimeoutMs: 3_000,
  leaveStepTimeoutMs: 3_000
}

/** MatrixError only if building the layer (login, sync) failed. */
export type JoinError = CallError | MatrixError
export type Outcome = Exit.Exit<Call.Call, JoinError>

export interface OurClient {
  readonly creds: Credentials
  /** Joins the call room; the call's scope stays open until `leave()` or `dispose()`. */
  readonly join: (options?: Call.JoinOptions) => Promise<Outcome>
  /** Starts a join in a fiber, for interruption. */
  readonly forkJoin: (options?: Call.JoinOptions) => Fiber.RuntimeFiber<Call.Call, JoinError>
  readonly interrupt: (fiber: Fiber.RuntimeFiber<Call.Call, JoinError>) => Promise<void>
  /** Closes the open call scope (the library's leave). */
  readonly leave: () => Promise<void>
  /** Runs an effect on the client's layers (e.g. `Call.prepare`). */
  readonly run: <A, E>(eff: Effect.Effect<A, E, NodeCallServices>) => Promise<A>
  readonly dispose: () => Promise<void>
}

export const ourClient = async (s: StackInfo, creds: Credentials, proxies: Proxies): Promise<OurClient> => {
  const runtime = ManagedRuntime.make(
    NodeCall.layer({
      matrix: { homeserverUrl: proxies.hs.url, accessToken: Redacted.make(creds.accessToken), userId: creds.userId, deviceId: creds.deviceId },
      authService: { requestTimeout: "2 seconds", networkRetries: 2, retryBaseDelay: "100 millis" },
      liveKit: { connectTimeoutMs: 4_000, disconnectTimeoutMs: 3_000 }
    })
  )
  await runtime.runPromise(Effect.void)
  let scope: Scope.CloseableScope | undefined
  const freshScope = () =>
    runtime.runSync(
      Effect.gen(function* () {
        const sc = yield* Scope.make()
        scope = sc
        return sc
      })
    )
  const joinEffect = (sc: Scope.CloseableScope, options?: Call.JoinOptions) =>
    Call.join(s.roomId as Ids.RoomId, { ...joinOptions, ...options }).pipe(Scope.extend(sc))
  const leave = async () => {
    const sc = scope
    scope = undefined
    if (sc !== undefined) await runtime.runPromise(Scope.close(sc, Exit.void))
  }
  return {
    creds,
    join: async (options) => {
      const exit = await runtime.runPromiseExit(joinEffect(freshScope(), options))
      if (Exit.isFailure(exit)) await leave()
      return exit
    },
    forkJoin: (options) => runtime.runFork(joinEffect(freshScope(), options)),
    interrupt: async (fiber) => {
      await runtime.runPromise(Fiber.interrupt(fiber))
      await leave()
    },
    leave,
    run: (eff) => runtime.runPromise(eff),
    dispose: async () => {
      await leave()
      await runtime.dispose()
    }
  }
}

/** A join that must succeed: returns the call. */
export const joined = (exit: Outcome): Call.Call => {
  if (Exit.isFailure(exit)) throw new Error(`the join failed: ${JSON.stringify(exit.cause)}`)
  return exit.value
}

/** The typed failure of a join, or a test failure explaining what happened instead. */
export const failureOf = (exit: Outcome): JoinError => {
  if (Exit.isSuccess(exit)) throw new Error("the join succeeded; a typed failure was expected")
  const f = Cause.failureOption(exit.cause)
  if (Option.isNone(f)) throw new Error(`the join did not fail with a typed error:\n${Cause.pretty(exit.cause)}`)
  return f.value
}

export const describeError = (e: JoinError) =>
  `${e._tag}(${e.reason}${"status" in e && e.status !== undefined ? `, ${e.status}` : ""}${"errcode" in e && e.errcode !== undefined ? `, ${e.errcode}` : ""})`

// ---------------------------------------------------------------------------
// The checks every scenario ends with

export const identityOf = (c: Credentials) => `${c.userId}:${c.deviceId}`

/** method + path: usable both as a fault rule's match and as a request matcher. */
export type Match = { readonly method: string; readonly path: RegExp }

export const MEMBER_PUT: Match = { method: "PUT", path: /\/state\/org\.matrix\.msc3401\.call\.member\/[^?]*$/ }
export const DELAYED_PUT: Match = { method: "PUT", path: /\/state\/org\.matrix\.msc3401\.call\.member\/.*org\.matrix\.msc4140\.delay=/ }
export const DELAYED_SEND: Match = { method: "POST", path: /\/delayed_events\/[^/]+\/send$/ }
export const DELAYED_CANCEL: Match = { method: "POST", path: /\/delayed_events\/[^/]+\/cancel$/ }
export const DELAYED_RESTART: Match = { method: "POST", path: /\/delayed_events\/[^/]+\/restart$/ }

/** The delay id in a `…/delayed_events/<id>/<action>` request. */
export const delayIdOf = (r: RecordedRequest): string => decodeURIComponent(r.path.split("/").at(-2) ?? "")

/** Requests that reach the service behind the proxy (possibly late, or with the answer altered), not made-up answers or held ones. */
const forwarded = (p: FaultProxy, m: Match) =>
  p.requests().filter((r) => reachesService.has(r.handling) && r.method === m.method && m.path.test(r.target))
const reachesService = new Set<RecordedRequest["handling"]>(["forward", "delay", "cut", "replaceBody"])

/**
 * Waits (bounded) until the SFU no longer lists `identity`. The RoomService API has no
 * push, so this asks every 250 ms until `timeoutMs`.
 */
export const waitNoParticipant = async (sfu: Sfu, identity: string, timeoutMs: number): Promise<Array<string>> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const listed = await sfu.roomsWith(identity).catch(() => undefined)
    if (listed !== undefined && listed.length === 0) return []
    if (Date.now() > deadline) return listed ?? ["<LiveKit unreachable>"]
    await new Promise((r) => setTimeout(r, 250))
  }
}

const PendingDelayedEvents = Schema.Struct({
  delayed_events: Schema.Array(
    Schema.Struct({ delay_id: Schema.String, room_id: Schema.String, type: Schema.String, state_key: Schema.optional(Schema.String) })
  )
})

/**
 * Delay ids of the delayed call.member events of (user, device) in the room that the homeserver still has
 * scheduled (MSC4140 lists the user's pending ones; the state key names the device).
 */
export const pendingDelayedLeaves = async (env: Env, creds: Credentials): Promise<Array<string>> => {
  const res = await fetch(`${env.stack.homeserverUrl}/_matrix/client/unstable/org.matrix.msc4140/delayed_events`, {
    headers: { authorization: `Bearer ${creds.accessToken}` }
  })
  if (!res.ok) throw new Error(`GET delayed_events: HTTP ${res.status}`)
  const body = Schema.decodeUnknownSync(PendingDelayedEvents)(await res.json())
  return body.delayed_events
    .filter((e) => e.room_id === env.stack.roomId && e.type === CALL_MEMBER_EVENT && (e.state_key ?? "").includes(`${creds.userId}_${creds.deviceId}_`))
    .map((e) => e.delay_id)
}

/**
 * What ends the membership:
 * - `by: "us"`: our own code (a leave, a failed or interrupted join). Checked on the homeserver at once, no delay
 *   allowed (the delayed leave would otherwise hide a leave that sent nothing): no live membership in the room
 *   state, none of our delayed leaves still scheduled, and the proxy saw the ending request reach the homeserver
 *   and answered 2xx (the delayed leave sent, or the membership put to its end after that send, if a membership
 *   was written; else sent or cancelled if one was scheduled).
 * - `by: "server"`: only the homeserver's delayed leave can (every leave request failed, the process died): the
 *   observer, which must have seen the membership, sees it end within `withinMs`.
 */
export type EndedBy = { readonly by: "us"; readonly hs: FaultProxy } | { readonly by: "server"; readonly withinMs: number }

export interface CleanOptions {
  readonly endedBy: EndedBy
  /** How long LiveKit may still list us (a clean disconnect is immediate; a dead peer takes LiveKit's timeout). */
  readonly participantWithinMs: number
}

/** What our own leave left undone, read from the homeserver and the proxy right away. */
const notEndedByUs = async (env: Env, creds: Credentials, hs: FaultProxy): Promise<Array<string>> => {
  const problems: Array<string> = []
  const [live, pending] = await Promise.all([
    liveMemberships(env.stack.homeserverUrl, env.observerCreds.accessToken, env.stack.roomId, creds.userId, creds.deviceId),
    pendingDelayedLeaves(env, creds)
  ])
  if (live.length > 0) {
    tally.ghosts++
    problems.push(`ghost membership right after our leave (room state): ${live.join(", ")}`)
  }
  const written = forwarded(hs, MEMBER_PUT).length > 0
  const scheduled = forwarded(hs, DELAYED_PUT).length > 0
  const ok = (r: RecordedRequest) => r.status !== undefined && r.status >= 200 && r.status < 300
  const sends = forwarded(hs, DELAYED_SEND)
  // A send the server answers 404 (the delayed leave fired while the leave waited on the SFU) is followed by a
  // plain PUT of the membership's end; a 2xx for that ends it as well.
  const endPutAfterSend = sends.length > 0 && forwarded(hs, MEMBER_PUT).some((r) => r.seq > sends[0]!.seq && ok(r))
  const sent = sends.some(ok) || endPutAfterSend
  const cancelled = forwarded(hs, DELAYED_CANCEL).some(ok)
  const ending = written ? sent : !scheduled || sent || cancelled
  if (pending.length > 0 || !ending) {
    tally.leftToTimer++
    if (pending.length > 0) problems.push(`our delayed leave is still scheduled (${pending.join(", ")}): it was neither sent nor cancelled`)
    if (!ending) {
      problems.push(
        written
          ? "a membership was written but neither a POST …/delayed_events/<id>/send nor a PUT after it was answered 2xx"
          : "a delayed leave was scheduled but no send or cancel was answered 2xx by the homeserver"
      )
    }
  }
  return problems
}

/**
 * No ghost membership: the homeserver's state and the independent `/sync` observer; when we were to leave
 * ourselves, no delayed leave left to the server's timer. Counts each for the summary.
 */
export const assertMembershipEnded = async (env: Env, creds: Credentials, name: string, endedBy: EndedBy): Promise<void> => {
  const problems: Array<string> = []
  if (endedBy.by === "us") {
    problems.push(...(await notEndedByUs(env, creds, endedBy.hs)))
    // The independent view agrees (it may lag the state read above by a sync).
    await env.observer.waitMember(creds.userId, creds.deviceId, false, 5_000).catch(() => {
      tally.ghosts++
      problems.push(`the /sync observer still lists ${env.observer.membershipsOf(creds.userId, creds.deviceId).join(", ")}`)
    })
  } else {
    const gone = await env.observer.waitGone(creds.userId, creds.deviceId, endedBy.withinMs).then(
      () => true,
      (e: unknown) => {
        tally.ghosts++
        problems.push(`${String(e)}; still listed: ${env.observer.membershipsOf(creds.userId, creds.deviceId).join(", ") || "none"}`)
        return false
      }
    )
    // Fired, so no longer scheduled (another one still scheduled would end a membership that should not exist).
    const pending = gone ? await pendingDelayedLeaves(env, creds) : []
    if (pending.length > 0) problems.push(`delayed leaves still scheduled after the membership ended: ${pending.join(", ")}`)
  }
  if (problems.length > 0) throw new Error(`${name}: ${problems.join("; ")}`)
}

/** No leaked LiveKit participant (RoomService); counted for the summary. */
export const assertNoParticipant = async (env: Env, creds: Credentials, name: string, withinMs: number): Promise<void> => {
  const leaked = await waitNoParticipant(env.sfu, identityOf(creds), withinMs)
  if (leaked.length > 0) {
    tally.leakedParticipants++
    throw new Error(`${name}: LiveKit still lists ${identityOf(creds)} in ${leaked.join(", ")}`)
  }
}

/** The end of every scenario: the membership ended as `opts.endedBy` says, and LiveKit lists nobody of ours. */
export const assertClean = async (env: Env, creds: Credentials, name: string, opts: CleanOptions): Promise<void> => {
  const results = await Promise.allSettled([
    assertMembershipEnded(env, creds, name, opts.endedBy),
    assertNoParticipant(env, creds, name, opts.participantWithinMs)
  ])
  const errors = results.flatMap((r) => (r.status === "rejected" ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : []))
  if (errors.length > 0) throw new Error(errors.join("\n"))
}

/** Runs `f` with a fresh device, proxies and our client; always cleans up, always counts the scenario. */
export const withScenario = async (
  env: Env,
  name: string,
  f: (ctx: { creds: Credentials; proxies: Proxies; ours: OurClient }) => Promise<void>
): Promise<void> => {
  tally.scenarios++
  const creds = await freshDevice(env.stack, userAt(env.stack, 0), name)
  const proxies = await startProxiedStack(env.stack)
  const ours = await ourClient(env.stack, creds, proxies)
  try {
    await f({ creds, proxies, ours })
  } finally {
    proxies.clearFaults()
    await ours.dispose().catch(() => undefined)
    await proxies.close()
    await logout(env.stack, creds)
  }
}
