/**
 * The delayed-leave delegation state machine (auth-service.md §3.3–3.4) with
 * a fake homeserver (HttpClient), in-memory LiveKit rooms and TestClock.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Layer, Option, Scope, TestClock } from "effect"
import { AccessToken } from "livekit-server-sdk"
import { createHash, createHmac } from "node:crypto"
import * as Delegation from "../src/auth-service/Delegation.ts"
import * as LiveKitRooms from "../src/auth-service/LiveKitRooms.ts"
import * as Settings from "../src/auth-service/Settings.ts"
import { apiKey, apiSecret, baseSettings } from "./auth-service-fixtures.ts"

const job: Delegation.Job = {
  room: "ROOM",
  identity: "IDENT",
  delayId: "syd/abc",
  delayTimeoutMs: 10_000,
  csApiUrl: "http://cs.test/"
}
const base = "http://cs.test/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd%2Fabc"

interface FakeHomeserver {
  readonly calls: Array<string>
  /** Status per action; a function of the call number for that action. */
  status: (action: string, n: number) => number
  headers: Record<string, string>
}

const setup = (settings: Partial<Settings.Settings> = {}) =>
  Effect.gen(function*() {
    const hs: FakeHomeserver = { calls: [], status: () => 200, headers: {} }
    const counts = new Map<string, number>()
    const client = HttpClient.make((req) =>
      Effect.sync(() => {
        const action = req.url.slice(req.url.lastIndexOf("/") + 1)
        const n = (counts.get(action) ?? 0) + 1
        counts.set(action, n)
        hs.calls.push(`${req.method} ${req.url}`)
        return HttpClientResponse.fromWeb(req, new Response("{}", { status: hs.status(action, n), headers: hs.headers }))
      })
    )
    const rooms = LiveKitRooms.makeMemory()
    const service = yield* Delegation.make.pipe(
      Effect.provide(Layer.mergeAll(
        Settings.layer({ ...baseSettings, ...settings }),
        Layer.succeed(HttpClient.HttpClient, client),
        LiveKitRooms.layerMemory(rooms)
      ))
    )
    return { hs, rooms, service }
  })

/**
 * Lets forked job fibers run until they are parked again (on TestClock sleeps
 * or queues): waits in real time until the pending TestClock sleeps have been
 * the same for three 5 ms windows in a row.
 */
const settle = Effect.gen(function*() {
  let last = ""
  let stable = 0
  for (let i = 0; stable < 3 && i < 400; i++) {
    yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
    const now = Chunk.toReadonlyArray(yield* TestClock.sleeps()).join(",")
    stable = now === last ? stable + 1 : 0
    last = now
  }
})

const signedWebhook = (event: unknown, secret = apiSecret) => {
  const body = JSON.stringify(event)
  const b64 = (s: string) => Buffer.from(s).toString("base64url")
  const input = `${b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}")}.${
    b64(JSON.stringify({ iss: apiKey, sha256: createHash("sha256").update(body).digest("base64") }))
  }`
  const jwt = `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`
  return { body, authorization: Option.some(jwt) }
}

const webhook = (
  service: Delegation.Service,
  event: string,
  disconnectReason?: string,
  secret?: string
) => {
  const w = signedWebhook({
    event,
    room: { name: job.room },
    participant: { identity: job.identity, ...(disconnectReason === undefined ? {} : { disconnectReason }) },
    id: "EV_1",
    createdAt: "0"
  }, secret)
  return service.webhook(w.body, w.authorization).pipe(Effect.zipRight(settle))
}

const advance = (ms: number) => TestClock.adjust(ms).pipe(Effect.zipRight(settle))

describe("auth service delegation", () => {
  it.scoped("joined → restart now and every 80 % of delay_timeout; left → send", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      yield* service.register(job)
      yield* settle
      assert.deepStrictEqual(hs.calls, [])
      yield* webhook(service, "participant_joined")
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`])
      yield* advance(7_999)
      assert.strictEqual(hs.calls.length, 1)
      yield* advance(1)
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`, `POST ${base}/restart`])
      yield* advance(8_000)
      assert.strictEqual(hs.calls.length, 3)
      yield* webhook(service, "participant_left", "CLIENT_INITIATED")
      assert.deepStrictEqual(hs.calls.slice(3), [`POST ${base}/send`])
      yield* advance(60_000)
      assert.strictEqual(hs.calls.length, 4, "the job is gone")
    }))

  it.scoped("a connection-aborted webhook while connected also sends", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      yield* service.register(job)
      yield* webhook(service, "participant_joined")
      yield* webhook(service, "participant_connection_aborted", "SIGNAL_CLOSE")
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`, `POST ${base}/send`])
    }))

  it.scoped("never connecting within min(1 h, delay_timeout) sends the leave", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      yield* service.register(job)
      yield* advance(9_999)
      assert.deepStrictEqual(hs.calls, [])
      yield* advance(1)
      assert.deepStrictEqual(hs.calls, [`POST ${base}/send`])
    }))

  it.scoped("an intentional leave before connecting is ignored; an aborted connection aborts the job", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      yield* service.register(job)
      yield* webhook(service, "participant_left", "CLIENT_INITIATED")
      yield* advance(10_000)
      assert.deepStrictEqual(hs.calls, [`POST ${base}/send`])

      yield* service.register(job)
      yield* webhook(service, "participant_connection_aborted", "JOIN_FAILURE")
      yield* advance(20_000)
      assert.strictEqual(hs.calls.length, 1, "aborted jobs send nothing")
    }))

  it.scoped("GetParticipant polling connects a participant whose join webhook was missed", () =>
    Effect.gen(function*() {
      const { hs, rooms, service } = yield* setup()
      yield* service.register(job)
      yield* advance(2_000)
      assert.deepStrictEqual(hs.calls, [])
      rooms.participants.add(JSON.stringify([job.room, job.identity]))
      yield* advance(5_000)
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`])
    }))

  // The race seen on the real stack: the delegating /sfu/get lands after LiveKit
  // listed the participant but before its participant_joined webhook arrived.
  // The late join webhook must not count as a disconnect.
  it.scoped("a join webhook arriving after polling connected the job is no disconnect", () =>
    Effect.gen(function*() {
      const { hs, rooms, service } = yield* setup()
      rooms.participants.add(JSON.stringify([job.room, job.identity]))
      yield* service.register(job)
      yield* settle
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`])
      yield* webhook(service, "participant_joined")
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`], "no send on a join webhook")
      yield* advance(8_000)
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`, `POST ${base}/restart`], "still restarting")
      yield* webhook(service, "participant_left", "CLIENT_INITIATED")
      assert.deepStrictEqual(hs.calls.slice(2), [`POST ${base}/send`])
    }))

  it.scoped("restart 404 aborts: nothing is sent on leave", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      hs.status = (action) => action === "restart" ? 404 : 200
      yield* service.register(job)
      yield* webhook(service, "participant_joined")
      yield* webhook(service, "participant_left", "CLIENT_INITIATED")
      yield* advance(60_000)
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`])
    }))

  it.scoped("429 (Retry-After honoured) and 5xx are retried; send 404 counts as done", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      hs.status = (action, n) => action === "restart" ? (n === 1 ? 429 : n === 2 ? 502 : 200) : 404
      hs.headers = { "retry-after": "3" }
      yield* service.register(job)
      yield* webhook(service, "participant_joined")
      assert.strictEqual(hs.calls.length, 1)
      yield* advance(2_999)
      assert.strictEqual(hs.calls.length, 1, "waits for Retry-After")
      yield* advance(1)
      assert.strictEqual(hs.calls.length, 2)
      yield* advance(2_250) // second backoff interval: 1.5 s ± 50 %
      assert.strictEqual(hs.calls.length, 3)
      yield* advance(8_000)
      assert.strictEqual(hs.calls.length, 4, "restarted again after 80 % of delay_timeout")
      yield* webhook(service, "participant_left", "CLIENT_INITIATED")
      yield* advance(10_000)
      assert.deepStrictEqual(hs.calls.filter((c) => c.endsWith("/send")).length, 1)
    }))

  it.scoped("restarts that never succeed before the deadline abort the job", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      hs.status = () => 500
      yield* service.register(job)
      yield* webhook(service, "participant_joined")
      yield* advance(20_000)
      assert.isAbove(hs.calls.length, 2)
      yield* webhook(service, "participant_left", "CLIENT_INITIATED")
      yield* advance(60_000)
      assert.isTrue(hs.calls.every((c) => c.endsWith("/restart")), "no send after abort")
    }))

  it.scoped("a new registration for the same room and identity replaces the old job silently", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      yield* service.register(job)
      yield* advance(5_000)
      yield* service.register({ ...job, delayId: "second" })
      yield* advance(5_000)
      assert.deepStrictEqual(hs.calls, [])
      yield* advance(5_000)
      assert.deepStrictEqual(hs.calls, [
        "POST http://cs.test/_matrix/client/unstable/org.matrix.msc4140/delayed_events/second/send"
      ])
    }))

  it.scoped("accepts webhooks signed like livekit-server (AccessToken with a sha256 grant, 5 min TTL)", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      yield* TestClock.setTime(Date.now())
      yield* service.register(job)
      const body = JSON.stringify({
        event: "participant_joined",
        room: { sid: "RM_x", name: job.room },
        participant: { sid: "PA_x", identity: job.identity, state: "ACTIVE" },
        id: "EV_x",
        createdAt: "1760000000"
      })
      const token = new AccessToken(apiKey, apiSecret, { ttl: "5m" })
      token.sha256 = createHash("sha256").update(body).digest("base64")
      const jwt = yield* Effect.promise(() => token.toJwt())
      yield* service.webhook(body, Option.some(jwt))
      yield* settle
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`])
    }))

  it.scoped("webhooks with a bad signature, another room or other events are ignored", () =>
    Effect.gen(function*() {
      const { hs, service } = yield* setup()
      yield* service.register(job)
      yield* webhook(service, "participant_joined", undefined, "wrong-secret")
      yield* service.webhook(JSON.stringify({ event: "participant_joined" }), Option.none())
      const other = signedWebhook({
        event: "participant_joined",
        room: { name: "OTHER" },
        participant: { identity: job.identity }
      })
      yield* service.webhook(other.body, other.authorization)
      const tampered = signedWebhook({ event: "room_started", room: { name: job.room } })
      yield* service.webhook(tampered.body.replace("room_started", "participant_joined"), tampered.authorization)
      yield* webhook(service, "track_published")
      yield* settle
      assert.deepStrictEqual(hs.calls, [])
    }))

  it.scoped("the sanity check notices a vanished participant", () =>
    Effect.gen(function*() {
      const { hs, rooms, service } = yield* setup({ sanityCheckIntervalSeconds: 5 })
      const key = JSON.stringify([job.room, job.identity])
      rooms.participants.add(key)
      yield* service.register(job)
      yield* settle
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`])
      rooms.participants.delete(key)
      yield* advance(5_000)
      assert.deepStrictEqual(hs.calls, [`POST ${base}/restart`, `POST ${base}/send`])
    }))

  it.effect("after shutdown, registration fails with ShuttingDown", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { service } = yield* setup().pipe(Scope.extend(scope))
      yield* Scope.close(scope, Exit.void)
      const result = yield* Effect.either(service.register(job))
      assert.isTrue(result._tag === "Left" && result.left._tag === "ShuttingDown")
    }))
})
