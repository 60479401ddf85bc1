/**
 * Fault-injection suite: our call (`Call.join` on the Node layers) against the real
 * local stack, with real faults where they can be real (auth service stopped,
 * livekit-server stopped mid-call, SIGKILL of a process in a call) and the fault
 * proxy for the rest.
 *
 * Every scenario asserts the typed error and its reason (or the recovery), then that
 * no ghost membership is left (independent `/sync` observer, immediately or within the
 * delayed-leave delay) and that LiveKit lists no leftover participant of ours.
 * The suite prints `[faults] N scenarios, G ghost memberships, L leaked LiveKit
 * participants` at the end.
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
  DELAY_MS,
  describeError,
  type Env,
  failureOf,
  freshDevice,
  identityOf,
  joined,
  logout,
  type Proxies,
  setupEnv,
  userAt,
  summaryLine,
  tally,
  teardownEnv,
  withScenario
} from "./harness.ts"


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

/** method + path: usable both as a fault rule's match and as a request matcher. */
type Match = { readonly method: string; readonly path: RegExp }

const MEMBER_PUT: Match = { method: "PUT", path: /\/state\/org\.matrix\.msc3401\.call\.member\/[^?]*$/ }
const DELAYED_PUT: Match = { method: "PUT", path: /\/state\/org\.matrix\.msc3401\.call\.member\/.*org\.matrix\.msc4140\.delay=/ }
const SFU_GET: Match = { method: "POST", path: /^\/sfu\/get/ }
const RTC: Match = { method: "GET", path: /^\/rtc/ }

const clean = { membershipWithinMs: 0, participantWithinMs: 5_000 }
const withinDelay = { membershipWithinMs: DELAY_MS + 3_000, participantWithinMs: 10_000 }

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
      await assertClean(e, creds, name, clean)
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
      await assertClean(e, creds, name, clean)
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
      await assertClean(e, creds, name, { membershipWithinMs: 3_000, participantWithinMs: 5_000 })
    })
  })

  scenario("5xx on every leave request → the delayed leave still removes us within the delay", 60_000, async (e) => {
    const name = "5xx on leave"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      joined(await ours.join())
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      proxies.hs.addFault({ method: "POST", path: /\/delayed_events\/[^/]+\/send$/, action: { kind: "respond", status: 500, json: { errcode: "M_UNKNOWN" } } })
      proxies.hs.addFault({ ...MEMBER_PUT, action: { kind: "respond", status: 502, body: "Bad Gateway" } })
      await ours.leave() // bounded by leaveStepTimeoutMs; must not hang
      log(`  ${name}: leave returned; waiting for the server-side delayed leave`)
      await assertClean(e, creds, name, withinDelay)
    })
  })

  scenario("delayed-event restart answers 404 → a new delayed leave is scheduled, the call stays", 60_000, async (e) => {
    const name = "restart 404"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      joined(await ours.join())
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      const since = proxies.hs.nextSeq()
      proxies.hs.addFault({
        method: "POST",
        path: /\/delayed_events\/[^/]+\/restart$/,
        times: 1,
        action: { kind: "respond", status: 404, json: { errcode: "M_NOT_FOUND", error: "Delayed event not found" } }
      })
      const restart = await proxies.hs.waitForRequest({ method: "POST", path: /\/restart$/ }, { since, timeoutMs: 15_000 })
      const rearm = await proxies.hs.waitForRequest(DELAYED_PUT, { since: restart.seq, timeoutMs: 15_000 })
      expect(rearm.seq).toBeGreaterThan(restart.seq)
      // Still in the call: heartbeats go on against the new delay id.
      await proxies.hs.waitForRequest({ method: "POST", path: /\/restart$/ }, { since: rearm.seq, timeoutMs: 15_000 })
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      log(`  ${name}: re-scheduled the delayed leave after the 404`)
      await ours.leave()
      await assertClean(e, creds, name, withinDelay)
    })
  })

  scenario("membership deleted by someone else → re-published", 60_000, async (e) => {
    const name = "membership deleted by another user"
    await withScenario(e, name, async ({ creds, ours }) => {
      const call = joined(await ours.join())
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 10_000)
      const own = await ours.run(call.membership)
      const bob = userAt(e.stack, 1)
      const res = await fetch(
        `${e.stack.homeserverUrl}/_matrix/client/v3/rooms/${encodeURIComponent(e.stack.roomId)}/state/${encodeURIComponent(own.eventType)}/${encodeURIComponent(own.stateKey ?? "")}`,
        { method: "PUT", headers: { authorization: `Bearer ${bob.accessToken}`, "content-type": "application/json" }, body: "{}" }
      )
      expect(res.status).toBe(200)
      await e.observer.waitMember(creds.userId, creds.deviceId, false, 10_000)
      await e.observer.waitMember(creds.userId, creds.deviceId, true, 15_000)
      log(`  ${name}: re-published after ${bob.userId} emptied it`)
      await ours.leave()
      await assertClean(e, creds, name, withinDelay)
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
      expect(["Transport", "Rejected", "Timeout"]).toContain(err.reason)
      await assertClean(e, creds, name, withinDelay)
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
      await assertClean(e, creds, name, withinDelay)
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
      await assertClean(e, creds, name, { membershipWithinMs: 3_000, participantWithinMs: 10_000 })
    })
  })

  scenario("LiveKit dropped mid-call and the reconnect fails → surfaced, and we leave cleanly", 120_000, async (e) => {
    const name = "LiveKit dropped, reconnect refused"
    await withScenario(e, name, async ({ creds, proxies, ours }) => {
      const call = joined(await ours.join())
      const states = watchStates(call)
      await states.next("connected", 10_000)
      proxies.lk.addFault({ ...RTC, action: { kind: "refuse" } })
      proxies.lk.dropTunnels()
      await states.next("reconnecting", 20_000)
      const gaveUp = await states.next("disconnected", 45_000).then(
        () => true,
        () => false
      )
      log(`  ${name}: states ${states.seen.join(" → ")}${gaveUp ? "" : " (rtc-node still reconnecting after 45 s)"}`)
      await states.stop()
      if (gaveUp) {
        // The library ends the call by itself once the SFU connection is gone for good.
        const end = await ours.run(Effect.timeoutFail(call.ended, { duration: "15 seconds", onTimeout: () => new Error("call.ended did not complete") }))
        expect(end).toBe("SfuDisconnected")
        await e.observer.waitMember(creds.userId, creds.deviceId, false, 5_000)
      }
      await ours.leave()
      await assertClean(e, creds, name, { membershipWithinMs: DELAY_MS + 3_000, participantWithinMs: 45_000 })
    })
  })

  scenario("livekit-server stopped mid-call (real) → surfaced; we leave cleanly; nothing left after restart", 150_000, async (e) => {
    const name = "livekit-server stopped mid-call"
    await withScenario(e, name, async ({ creds, ours }) => {
      const call = joined(await ours.join())
      const states = watchStates(call)
      await states.next("connected", 10_000)
      await stopService("livekit")
      try {
        await Promise.race([states.next("reconnecting", 30_000), states.next("disconnected", 30_000)])
        log(`  ${name}: states ${states.seen.join(" → ")}`)
        await states.stop()
        await ours.leave()
        await e.observer.waitMember(creds.userId, creds.deviceId, false, DELAY_MS + 3_000)
      } finally {
        await startService("livekit")
      }
      await assertClean(e, creds, name, { membershipWithinMs: 0, participantWithinMs: 10_000 })
    })
  })
})

describe("fault injection: interruption at each step of the join", () => {
  const steps: Array<{ step: string; proxy: "hs" | "auth" | "lk"; match: Match }> = [
    { step: "OpenID token", proxy: "hs", match: { method: "POST", path: /\/openid\/request_token/ } },
    { step: "server support (/versions)", proxy: "hs", match: { method: "GET", path: /\/_matrix\/client\/versions/ } },
    { step: "auth-service discovery", proxy: "hs", match: { method: "GET", path: /\/rtc\/transports/ } },
    { step: "JWT (/sfu/get)", proxy: "auth", match: SFU_GET },
    { step: "delayed leave scheduling", proxy: "hs", match: DELAYED_PUT },
    { step: "membership send", proxy: "hs", match: MEMBER_PUT },
    { step: "LiveKit connect", proxy: "lk", match: RTC }
  ]
  for (const { step, proxy, match } of steps) {
    scenario(`interrupted during ${step} → nothing left behind`, 60_000, async (e) => {
      const name = `interrupt at ${step}`
      await withScenario(e, name, async ({ creds, proxies, ours }) => {
        const p = proxies[proxy]
        p.addFault({ ...match, action: { kind: "hang" } })
        // The client asked /versions on its own when it started: only this join's requests count.
        const since = p.nextSeq()
        const fiber = ours.forkJoin()
        // The step is reached, or the join ended before it (then say how).
        const ended = ours.run(Fiber.await(fiber)).then((exit) => {
          throw new Error(`the join ended before reaching ${step}: ${Exit.isSuccess(exit) ? "joined" : describeError(failureOf(exit))}`)
        })
        await Promise.race([p.waitForRequest(match, { timeoutMs: 20_000, since }), ended])
        ended.catch(() => undefined)
        // Let the cleanup's own requests through; the held request stays held.
        proxies.clearFaults()
        const t0 = Date.now()
        await ours.interrupt(fiber)
        log(`  ${name}: interrupted, cleanup took ${Date.now() - t0} ms`)
        await assertClean(e, creds, name, withinDelay)
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
      await assertClean(e, creds, name, { membershipWithinMs: DELAY_MS + 3_000, participantWithinMs: 60_000 })
      log(`  ${name}: membership and LiveKit participant gone after the kill`)
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      await logout(e.stack, creds)
    }
  })
})
