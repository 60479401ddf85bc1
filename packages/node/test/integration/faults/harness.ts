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
import { Cause, Effect, Exit, Fiber, ManagedRuntime, Option, Redacted, Scope } from "effect"
import { type Sfu, sfuClient } from "@matrixrtc-effect/devstack/observers"
import { type ProxiedStack, startProxiedStack } from "@matrixrtc-effect/devstack/fault-proxy"
import { type RoomObserver, startRoomObserver } from "./observer.ts"

// ---------------------------------------------------------------------------
// Suite-wide tally, printed at the end

export const tally = { scenarios: 0, ghosts: 0, leakedParticipants: 0, lines: [] as Array<string> }

export const summaryLine = () =>
  `[faults] ${tally.scenarios} scenarios, ${tally.ghosts} ghost memberships, ${tally.leakedParticipants} leaked LiveKit participants`

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

export interface CleanOptions {
  /** How long the membership may outlive the scenario (0 = must already be gone; else the delayed leave). */
  readonly membershipWithinMs: number
  /** How long LiveKit may still list us (a clean disconnect is immediate; a dead peer takes LiveKit's timeout). */
  readonly participantWithinMs: number
}

/**
 * The end of every scenario: no ghost membership (independent observer) and no
 * leaked LiveKit participant (RoomService). Counts ghosts and leaks for the summary.
 */
export const assertClean = async (env: Env, creds: Credentials, name: string, opts: CleanOptions): Promise<void> => {
  const problems: Array<string> = []
  try {
    await env.observer.waitMember(creds.userId, creds.deviceId, false, Math.max(opts.membershipWithinMs, 1_500))
  } catch {
    tally.ghosts++
    problems.push(`ghost membership: ${env.observer.membershipsOf(creds.userId, creds.deviceId).join(", ")}`)
  }
  const leaked = await waitNoParticipant(env.sfu, identityOf(creds), opts.participantWithinMs)
  if (leaked.length > 0) {
    tally.leakedParticipants++
    problems.push(`LiveKit still lists ${identityOf(creds)} in ${leaked.join(", ")}`)
  }
  if (problems.length > 0) throw new Error(`${name}: ${problems.join("; ")}`)
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
