/**
 * Fault-injection suite: our call (`Call.join` on the Node layers) against the real
 * local stack, with real faults where they can be real (auth service stopped,
 * livekit-server stopped mid-call, SIGKILL of a process in a call) and the fault
 * proxy for the rest.
 *
 * Every scenario asserts the typed error and its reason (or the recovery), then that
 * no ghost membership is left and that LiveKit lists no leftover participant of ours.
 * Where our code is to end the membership itself (a leave, a failed or interrupted
 * join) that is checked at once on the homeserver, with the ending request in the
 * proxy's log; only where every leave request fails or the process dies is the
 * delayed leave given its delay. The suite prints `[faults] N scenarios, G ghost
 * memberships, T leaves left to the server's timer, L leaked LiveKit participants`
 * at the end.
 *
 * It stops and restarts stack services, so it must not run next to other real-stack
 * tests: it lives in the root `integration` project, whose files run one at a time.
 */
import type { Call } from "@matrixrtc-effect/core"
import { startService, stopService } from "@matrixrtc-effect/devstack"
import { Effect, Exit, Fiber, Stream } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as readline from "node:readline"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  assertClean,
  assertMembershipEnded,
  assertNoParticipant,
  DELAY_MS,
  DELAYED_PUT,
  DELAYED_RESTART,
  DELAYED_SEND,
  delayIdOf,
  describeError,
  type Env,
  failureOf,
  freshDevice,
  identityOf,
  joined,
  logout,
  type Match,
  MEMBER_PUT,
  type Proxies,
  setupEnv,
  userAt,
  summaryLine,
  tally,
  teardownEnv,
  withScenario
} from "./harness.ts"
import { liveMemberships } from "./observer.ts"


let env: Env | undefined
const log = (line: string) => {
  tally.lines.push(line)
}

// matrix-js-sdk, rtc-node and Effect's logger write every request and step to the console.
// Keep it per scenario and show it only when that scenario fails.
const original = { log: console.log, info: console.info, debug: console.debug, warn: console.warn, error: console.error }
let chatter: Array<string> = []
const capture =
  (level: string) =>
  (...args: Array<unknown>) => {
    chatter.push(`${level} ${args.map((a) => (typeof a === "string" ? a : JSON.stringify(a) ?? String(a))).join(" ")}`)
    if (chatter.length > 2_000) chatter = chatter.slice(-1_000)
  }
const quiet = () => {
  console.log = capture("log")
  console.info = capture("info")
  console.debug = capture("debug")
  console.warn = capture("warn")
  console.error = capture("error")
}
const loud = () => Object.assign(console, original)

beforeAll(async () => {
  quiet()
  env = await setupEnv()
}, 120_000)

afterAll(async () => {
  if (env === undefined) return
  await teardownEnv(env)
  loud()
  console.log([...tally.lines, summaryLine()].join("\n"))
}, 60_000)

/** A scenario: fails on its own assertions, and on any ghost or leak. */
const scenario = (name: string, timeoutMs: number, f: (env: Env) => Promise<void>) =>
  it(name, async () => {
    if (env === undefined) throw new Error("the fault-injection environment did not start (see beforeAll)")
    chatter = []
    try {
      await f(env)
    } catch (e) {
      const tail = chatter.slice(-60).join("\n")
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- last console lines of this scenario ---\n${tail}`, { cause: e })
    }
  }, timeoutMs)

const SFU_GET: Match = { method: "POST", path: /^\/sfu\/get/ }
const RTC: Match = { method: "GET", path: /^\/rtc/ }

/** Our code ends the membership itself: checked at once (see `assertClean`). */
const endedByUs = (p: Proxies, participantWithinMs = 5_000) => ({ endedBy: { by: "us", hs: p.hs } as const, participantWithinMs })
/** Only the homeserver's delayed leave can end it: within the delay, plus a sync's worth. */
const endedByDelayedLeave = (participantWithinMs: number) => ({ endedBy: { by: "server", withinMs: DELAY_MS + 3_000 } as const, participantWithinMs })

/** Requests matching `m` from sequence number `since` on. */
const requestsSince = (p: Proxies["hs"], m: Match, since: number) =>
  p.requests().filter((r) => r.seq >= since && r.method === m.method && m.path.test(r.target))

/** The membership of `creds` as the homeserver has it now (no sync lag). */
const liveNow = (e: Env, creds: { userId: string; deviceId: string }) =>
  liveMemberships(e.stack.homeserverUrl, e.observerCreds.accessToken, e.stack.roomId, creds.userId, creds.deviceId)

/** JWT failures must leave nothing behind and must never have sent a membership. */
const jwtFailure = (
  name: string,
  expected: { reason: string; status?: number; errcode?: string },
  inject: (p: Proxies) => void,
  timeoutMs = 60_000
) =>
  scenario(name, timeoutMs, (e) =>
    withScenario(e, name, async ({ creds, proxies, ours }) => {
      inject(proxies)
      const err = failureOf(await ours.join())
      log(`  ${name}: ${describeError(err)}`)
      expect(err._tag).toBe("JwtFetchFailed")
      expect(err.reason).toBe(expected.reason)
      if (expected.status !== undefined) expect("status" in err ? err.status : undefined).toBe(expected.status)
      if (expected.errcode !== undefined) expect("errcode" in err ? err.errcode : undefined).toBe(expected.errcode)
      // The JWT comes before the membership (EC's order): nothing was advertised.
      expect(proxies.hs.count(MEMBER_PUT)).toBe(0)
      await assertClean(e, creds, name, endedByUs(proxies))
    })
  )

describe("fault injection: auth service", () => {
  scenario("auth service down (the real service stopped) → JwtFetchFailed(Unreachable)", 120_000, async (e) => {
    const name = "auth service down"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      await stopService("auth")
      try {
        const err = failureOf(await ours.join())
        log(`  ${name}: ${describeError(err)}`)
        expect(err._tag).toBe("JwtFetchFailed")
        expect(err.reason).toBe("Unreachable")
        expect(proxies.hs.count(MEMBER_PUT)).toBe(0)
      } finally {
        await startService("auth")
      }
      await assertClean(e, creds, name, endedByUs(proxies))
    })
  })

  jwtFailure("auth service answers 500 → JwtFetchFailed(Rejected, 500)", { reason: "Rejected", status: 500 }, (p) => {
    p.auth.addFault({ ...SFU_GET, action: { kind: "respond", status: 500, json: { errcode: "M_UNKNOWN", error: "Unable to create room on SFU" } } })
  })

  jwtFailure("auth service slower than the request timeout → JwtFetchFailed(Timeout)", { reason: "Timeout" }, (p) => {
    p.auth.addFault({ ...SFU_GET, action: { kind: "hang" } })
  })

  jwtFailure("auth service answers malformed JSON → JwtFetchFailed(BadResponse)", { reason: "BadResponse" }, (p) => {
    p.auth.addFault({ ...SFU_GET, action: { kind: "replaceBody", body: '{"url": "ws://127.0.0.1:7880", "jwt": ' } })
  })

  jwtFailure("auth service answers 200 without jwt → JwtFetchFailed(BadResponse)", { reason: "BadResponse" }, (p) => {
    p.auth.addFault({ ...SFU_GET, action: { kind: "respond", status: 200, json: { url: "ws://127.0.0.1:7880" } } })
  })

  jwtFailure(
    "auth service answers an unknown errcode → JwtFetchFailed(Rejected) keeping the errcode",
    { reason: "Rejected", status: 403, errcode: "ORG.EXAMPLE.SOMETHING_NEW" },
    (p) => {
      p.auth.addFault({ ...SFU_GET, action: { kind: "respond", status: 403, json: { errcode: "ORG.EXAMPLE.SOMETHING_NEW", error: "new policy" } } })
    }
  )
})

describe("fault injection: homeserver", () => {
  scenario("429 with retry_after_ms on the membership send → the join waits and succeeds", 60_000, async (e) => {
    const name = "429 on membership send"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      const fault = proxies.hs.addFault({
        ...MEMBER_PUT,
        times: 1,
        action: { kind: "respond", status: 429, json: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 1_200 } }
      })
      joined(await ours.join())
      expect(fault.hits()).toBe(1)
      expect(proxies.hs.count(MEMBER_PUT)).toBe(2)
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      log(`  ${name}: joined after one 429 (membership PUTs: ${proxies.hs.count(MEMBER_PUT)})`)
      await ours.leave()
      await assertClean(e, creds, name, endedByUs(proxies))
    })
  })

  scenario("5xx on every leave request → the delayed leave still removes us within the delay", 60_000, async (e) => {
    const name = "5xx on leave"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      joined(await ours.join())
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      proxies.hs.addFault({ ...DELAYED_SEND, action: { kind: "respond", status: 500, json: { errcode: "M_UNKNOWN" } } })
      proxies.hs.addFault({ ...MEMBER_PUT, action: { kind: "respond", status: 502, body: "Bad Gateway" } })
      const since = proxies.hs.nextSeq()
      await ours.leave() // bounded by leaveStepTimeoutMs; must not hang
      // It did try to end the membership itself; the faults turned that away.
      expect(requestsSince(proxies.hs, DELAYED_SEND, since).length).toBeGreaterThan(0)
      log(`  ${name}: leave returned; waiting for the server-side delayed leave`)
      await assertClean(e, creds, name, endedByDelayedLeave(10_000))
    })
  })

  scenario("the homeserver forgot the delayed leave (restart → 404) → a new one is scheduled, the call stays", 60_000, async (e) => {
    const name = "restart 404"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      joined(await ours.join())
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      const first = await proxies.hs.waitForRequest(DELAYED_RESTART, { since: proxies.hs.nextSeq(), timeoutMs: 15_000 })
      const forgotten = delayIdOf(first)
      // A real 404, not one the proxy makes up: the homeserver no longer has the delayed leave (as after it was
      // restarted too late), so nothing of it can fire later behind the test's back. The restart just seen may
      // itself be the one that gets the 404.
      const cancel = await fetch(
        `${e.stack.homeserverUrl}/_matrix/client/unstable/org.matrix.msc4140/delayed_events/${encodeURIComponent(forgotten)}/cancel`,
        { method: "POST", headers: { authorization: `Bearer ${creds.accessToken}`, "content-type": "application/json" }, body: "{}" }
      )
      expect(cancel.status).toBe(200)
      const rearm = await proxies.hs.waitForRequest(DELAYED_PUT, { since: first.seq, timeoutMs: 15_000 })
      // Still in the call: heartbeats go on against the new delay id.
      const next = await proxies.hs.waitForRequest(DELAYED_RESTART, { since: rearm.seq, timeoutMs: 15_000 })
      const live = delayIdOf(next)
      expect(live).not.toBe(forgotten)
      expect(await liveNow(e, creds)).toHaveLength(1)
      log(`  ${name}: re-scheduled the delayed leave after the 404`)
      const leaveSince = proxies.hs.nextSeq()
      await ours.leave()
      // The leave sends the delayed leave that exists, not the forgotten one.
      expect(requestsSince(proxies.hs, DELAYED_SEND, leaveSince).map(delayIdOf)).toEqual([live])
      await assertClean(e, creds, name, endedByUs(proxies))
    })
  })

  scenario("membership deleted by someone else → re-published", 60_000, async (e) => {
    const name = "membership deleted by another user"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      const call = joined(await ours.join())
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      const own = await ours.run(call.membership)
      const bob = userAt(e.stack, 1)
      const since = proxies.hs.nextSeq()
      const res = await fetch(
        `${e.stack.homeserverUrl}/_matrix/client/v3/rooms/${encodeURIComponent(e.stack.roomId)}/state/${encodeURIComponent(own.eventType)}/${encodeURIComponent(own.stateKey ?? "")}`,
        { method: "PUT", headers: { authorization: `Bearer ${bob.accessToken}`, "content-type": "application/json" }, body: "{}" }
      )
      expect(res.status).toBe(200)
      // Re-published: a new delayed leave, then the membership, and the room shows it again after bob's `{}`.
      const rearm = await proxies.hs.waitForRequest(DELAYED_PUT, { since, timeoutMs: 15_000 })
      await proxies.hs.waitForRequest(MEMBER_PUT, { since: rearm.seq, timeoutMs: 15_000 })
      const { userId, deviceId } = creds
      await e.observer.waitUntil(
        () => e.observer.endsOf(userId, deviceId) === 1 && e.observer.membershipsOf(userId, deviceId).length > 0,
        15_000,
        "our membership emptied, then back"
      )
      expect(await liveNow(e, creds)).toEqual([own.stateKey])
      log(`  ${name}: re-published after ${bob.userId} emptied it`)
      await ours.leave()
      await assertClean(e, creds, name, endedByUs(proxies))
    })
  })
})

/** Collects a call's connection states; `next(state, timeoutMs, from)` resolves when it shows up at index ≥ from. */
const watchStates = (call: Call.Call) => {
  const seen: Array<string> = []
  const waiters = new Set<{ state: string; resolve: () => void }>()
  const fiber = Effect.runFork(
    Stream.runForEach(call.connection.connectionStates, (s) =>
      Effect.sync(() => {
        seen.push(s)
        for (const w of [...waiters]) {
          if (w.state === s) {
            waiters.delete(w)
            w.resolve()
          }
        }
      })
    )
  )
  const next = (state: string, timeoutMs: number, from = 0) =>
    seen.slice(from).includes(state)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          const w = {
            state,
            resolve: () => {
              clearTimeout(t)
              resolve()
            }
          }
          const t = setTimeout(() => {
            waiters.delete(w)
            reject(new Error(`connection state ${state} not seen within ${timeoutMs} ms (seen: ${seen.join(" → ")})`))
          }, timeoutMs)
          waiters.add(w)
        })
  return { seen, next, stop: () => Effect.runPromise(Fiber.interrupt(fiber)) }
}

describe("fault injection: LiveKit", () => {
  scenario("LiveKit refuses the connection → ConnectFailed, nothing left behind", 60_000, async (e) => {
    const name = "LiveKit refused"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      proxies.lk.addFault({ ...RTC, action: { kind: "refuse" } })
      const err = failureOf(await ours.join())
      log(`  ${name}: ${describeError(err)}`)
      expect(err._tag).toBe("ConnectFailed")
      // The connection is closed before any answer: the signalling transport failed, nothing was rejected.
      expect(err.reason).toBe("Transport")
      await assertClean(e, creds, name, endedByUs(proxies, 10_000))
    })
  })

  scenario("LiveKit slower than the connect timeout → ConnectFailed(Timeout)", 60_000, async (e) => {
    const name = "LiveKit slow"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      proxies.lk.addFault({ ...RTC, action: { kind: "hang" } })
      const err = failureOf(await ours.join())
      log(`  ${name}: ${describeError(err)}`)
      expect(err._tag).toBe("ConnectFailed")
      expect(err.reason).toBe("Timeout")
      await assertClean(e, creds, name, endedByUs(proxies, 10_000))
    })
  })

  scenario("LiveKit signalling dropped mid-call → the reconnect is surfaced and succeeds", 90_000, async (e) => {
    const name = "LiveKit dropped, reconnects"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      const call = joined(await ours.join())
      const states = watchStates(call)
      await states.next("connected", 10_000)
      expect(proxies.lk.dropTunnels()).toBeGreaterThan(0)
      await states.next("reconnecting", 20_000)
      await states.next("connected", 30_000, states.seen.length)
      log(`  ${name}: states ${states.seen.join(" → ")}`)
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 5_000)
      await states.stop()
      await ours.leave()
      await assertClean(e, creds, name, endedByUs(proxies, 10_000))
    })
  })

  scenario("LiveKit dropped mid-call and every reconnect refused → the call ends as SfuDisconnected and leaves by itself", 120_000, async (e) => {
    const name = "LiveKit dropped, reconnect refused"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      const call = joined(await ours.join())
      const states = watchStates(call)
      await states.next("connected", 10_000)
      // Refused until the end of the scenario: rtc-node gives up after its reconnect attempts (about 25 s here).
      proxies.lk.addFault({ ...RTC, action: { kind: "refuse" } })
      proxies.lk.dropTunnels()
      await states.next("reconnecting", 20_000)
      await states.next("disconnected", 60_000)
      log(`  ${name}: states ${states.seen.join(" → ")}`)
      await states.stop()
      // The library ends the call by itself once the SFU connection is gone for good; `ended` completes after its leave.
      const end = await ours.run(Effect.timeoutFail(call.ended, { duration: "15 seconds", onTimeout: () => new Error("call.ended did not complete") }))
      expect(end).toBe("SfuDisconnected")
      await assertClean(e, creds, name, endedByUs(proxies, 45_000))
    })
  })

  scenario("livekit-server stopped mid-call (real) → surfaced; we leave cleanly; nothing left after restart", 150_000, async (e) => {
    const name = "livekit-server stopped mid-call"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      const call = joined(await ours.join())
      const states = watchStates(call)
      await states.next("connected", 10_000)
      await stopService("livekit")
      try {
        await Promise.race([states.next("reconnecting", 30_000), states.next("disconnected", 30_000)])
        log(`  ${name}: states ${states.seen.join(" → ")}`)
        await states.stop()
        await ours.leave()
        // The homeserver is up: the leave ends the membership itself, even with the SFU gone.
        await assertMembershipEnded(e, creds, name, { by: "us", hs: proxies.hs })
      } finally {
        await startService("livekit")
      }
      await assertNoParticipant(e, creds, name, 10_000)
    })
  })
})

describe("fault injection: interruption at each step of the join", () => {
  const steps: Array<{ step: string; proxy: "hs" | "auth" | "lk"; match: Match; slowArm?: boolean }> = [
    { step: "OpenID token", proxy: "hs", match: { method: "POST", path: /\/openid\/request_token/ } },
    { step: "server support (/versions)", proxy: "hs", match: { method: "GET", path: /\/_matrix\/client\/versions/ } },
    { step: "auth-service discovery", proxy: "hs", match: { method: "GET", path: /\/rtc\/transports/ } },
    // The delayed leave is scheduled while the JWT is fetched. The interruption waits for its request too, and the
    // proxy holds that request 1 s, so it is always in flight then (else whether it was sent, or answered, first
    // is a race); the homeserver still gets it, so the cleanup must wait for its delay id and cancel it.
    { step: "JWT (/sfu/get)", proxy: "auth", match: SFU_GET, slowArm: true },
    { step: "delayed leave scheduling", proxy: "hs", match: DELAYED_PUT },
    { step: "membership send", proxy: "hs", match: MEMBER_PUT },
    { step: "LiveKit connect", proxy: "lk", match: RTC }
  ]
  for (const { step, proxy, match, slowArm } of steps) {
    scenario(`interrupted during ${step} → nothing left behind`, 60_000, async (e) => {
      const name = `interrupt at ${step}`
      await withScenario(e, name, async ({ creds, proxies, ours }) => {
        const p = proxies[proxy]
        p.addFault({ ...match, action: { kind: "hang" } })
        if (slowArm === true) proxies.hs.addFault({ ...DELAYED_PUT, action: { kind: "delay", ms: 1_000 } })
        // The client asked /versions on its own when it started: only this join's requests count.
        const since = p.nextSeq()
        const hsSince = proxies.hs.nextSeq()
        const fiber = ours.forkJoin()
        // The step is reached, or the join ended before it (then say how).
        const ended = ours.run(Fiber.await(fiber)).then((exit) => {
          throw new Error(`the join ended before reaching ${step}: ${Exit.isSuccess(exit) ? "joined" : describeError(failureOf(exit))}`)
        })
        const reached = Promise.all([
          p.waitForRequest(match, { timeoutMs: 20_000, since }),
          slowArm === true ? proxies.hs.waitForRequest(DELAYED_PUT, { timeoutMs: 20_000, since: hsSince }) : undefined
        ])
        await Promise.race([reached, ended])
        ended.catch(() => undefined)
        // Let the cleanup's own requests through; the held request stays held.
        proxies.clearFaults()
        const t0 = Date.now()
        await ours.interrupt(fiber)
        log(`  ${name}: interrupted, cleanup took ${Date.now() - t0} ms`)
        await assertClean(e, creds, name, endedByUs(proxies, 10_000))
      })
    })
  }
})

describe("fault injection: crash", () => {
  scenario("SIGKILL of a process in a call → the membership is gone within the delay, the SFU drops the participant", 120_000, async (e) => {
    const name = "SIGKILL mid-call"
    tally.scenarios++
    const creds = await freshDevice(e.stack, userAt(e.stack, 0), "sigkill")
    const child = spawn(process.execPath, [fileURLToPath(new URL("./child.ts", import.meta.url))], {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        NODE_ENV: "production",
        FAULTS_CHILD: JSON.stringify({
          homeserverUrl: e.stack.homeserverUrl,
          roomId: e.stack.roomId,
          userId: creds.userId,
          deviceId: creds.deviceId,
          accessToken: creds.accessToken,
          delayMs: DELAY_MS
        })
      }
    })
    const exited = new Promise<void>((r) => child.once("exit", () => r()))
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("the child did not join within 30 s")), 30_000)
        readline.createInterface({ input: child.stdout! }).on("line", (l) => {
          if (l.startsWith("JOINED") || l.startsWith("FAILED")) {
            clearTimeout(t)
            resolve(l)
          }
        })
      })
      expect(line).toBe(`JOINED ${identityOf(creds)}`)
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      expect((await e.sfu.roomsWith(identityOf(creds))).length).toBe(1)
      child.kill("SIGKILL")
      await exited
      // No goodbye was sent: only the server-side delayed leave can remove us.
      await assertClean(e, creds, name, endedByDelayedLeave(60_000))
      log(`  ${name}: membership and LiveKit participant gone after the kill`)
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      await logout(e.stack, creds)
    }
  })
})
