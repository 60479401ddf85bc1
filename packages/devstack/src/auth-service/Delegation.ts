/**
 * Delayed-leave delegation (auth-service.md §3): CS-API resolution, the job
 * state machine, and LiveKit webhooks (checked by `Webhook.ts`) routed to jobs.
 *
 * - `layer`: the real delegation. Per (LiveKit room, identity) one job:
 *   `WaitingForInitialConnect` → `Connected` → `Disconnected` | `Aborted`, a
 *   new registration replaces (silently stops) the old job. Connected jobs
 *   restart the delayed event every 80 % of `delay_timeout`; on leave they
 *   send it. Homeserver calls are unauthenticated
 *   `POST <cs>/_matrix/client/unstable/org.matrix.msc4140/delayed_events/<id>/<restart|send>`.
 * - `makeMemory`/`layerMemory`: records jobs, for HTTP-level tests.
 */
import { HttpBody, HttpClient, HttpClientResponse } from "@effect/platform"
import {
  Clock,
  Context,
  Data,
  Duration,
  Effect,
  Either,
  FiberMap,
  Layer,
  Option,
  Queue,
  Random,
  Ref,
  Schema,
  type Scope
} from "effect"
import { LiveKitRooms } from "./LiveKitRooms.ts"
import { AuthServiceSettings } from "./Settings.ts"
import * as Webhook from "./Webhook.ts"

export class CsApiUnresolvable extends Data.TaggedError("CsApiUnresolvable")<{ readonly serverName: string }> {}
export class ShuttingDown extends Data.TaggedError("ShuttingDown")<{}> {}

export interface Job {
  readonly room: string
  readonly identity: string
  readonly delayId: string
  readonly delayTimeoutMs: number
  readonly csApiUrl: string
}

export interface Service {
  /** `LIVEKIT_CS_API_URL_OVERRIDES`, then a 4 h cache, then `https://<server>/.well-known/matrix/client`. */
  readonly resolveCsApi: (serverName: string) => Effect.Effect<string, CsApiUnresolvable>
  /** Start (or replace) the job for (room, identity). */
  readonly register: (job: Job) => Effect.Effect<void, ShuttingDown>
  /** A raw `/sfu_webhook` delivery; never fails (bad signatures are only logged). */
  readonly webhook: (body: string, authorization: Option.Option<string>) => Effect.Effect<void>
}

export class Delegation extends Context.Tag("@matrixrtc-effect/devstack/auth-service/Delegation")<
  Delegation,
  Service
>() {}

const WellKnown = Schema.Struct({ "m.homeserver": Schema.Struct({ base_url: Schema.String }) })
const cacheTtl = Duration.hours(4)

export const makeCsApiResolver = Effect.gen(function*() {
  const settings = yield* AuthServiceSettings
  const client = yield* HttpClient.HttpClient
  const cache = new Map<string, { readonly url: string; readonly until: number }>()
  return (serverName: string): Effect.Effect<string, CsApiUnresolvable> =>
    Effect.gen(function*() {
      const override = settings.csApiUrlOverrides.get(serverName)
      if (override !== undefined) return override
      const now = yield* Clock.currentTimeMillis
      const hit = cache.get(serverName)
      if (hit !== undefined && hit.until > now) return hit.url
      const url = yield* client.get(`https://${serverName}/.well-known/matrix/client`).pipe(
        Effect.flatMap(HttpClientResponse.filterStatusOk),
        Effect.flatMap(HttpClientResponse.schemaBodyJson(WellKnown)),
        Effect.scoped,
        Effect.timeout(Duration.seconds(5)),
        Effect.map((wk) => wk["m.homeserver"].base_url.replace(/\/+$/, "")),
        Effect.mapError(() => new CsApiUnresolvable({ serverName }))
      )
      cache.set(serverName, { url, until: now + Duration.toMillis(cacheTtl) })
      return url
    })
})

/** In-memory delegation for tests: records jobs and webhook deliveries. */
export interface Memory {
  readonly jobs: Array<Job>
  readonly webhooks: Array<{ readonly body: string; readonly authorization: Option.Option<string> }>
  readonly csApiUrls: Map<string, string>
  shuttingDown: boolean
  readonly service: Service
}

export const makeMemory = (csApiUrls: Readonly<Record<string, string>> = {}): Memory => {
  const memory: Memory = {
    jobs: [],
    webhooks: [],
    csApiUrls: new Map(Object.entries(csApiUrls)),
    shuttingDown: false,
    service: Delegation.of({
      resolveCsApi: (serverName) =>
        Effect.suspend(() => {
          const url = memory.csApiUrls.get(serverName)
          return url === undefined ? Effect.fail(new CsApiUnresolvable({ serverName })) : Effect.succeed(url)
        }),
      register: (job) =>
        Effect.suspend(() => {
          if (memory.shuttingDown) return Effect.fail(new ShuttingDown())
          memory.jobs.push(job)
          return Effect.void
        }),
      webhook: (body, authorization) => Effect.sync(() => void memory.webhooks.push({ body, authorization }))
    })
  }
  return memory
}

export const layerMemory = (memory: Memory): Layer.Layer<Delegation> => Layer.succeed(Delegation, memory.service)

// ---------------------------------------------------------------------------
// The real delegation

/**
 * Jobs and their webhook events meet on (LiveKit room, identity), as in lk-jwt-service
 * (auth-service.md §3.1, §1.5). The participant's sid plays no part, so a late webhook
 * about an earlier participant with the same identity reaches the current job too.
 */
const jobKey = (room: string, identity: string) => JSON.stringify([room, identity])

/** What a webhook means for a job. */
type JobEvent = "joined" | "leftIntentionally" | "aborted"

const jobEventOf = (ev: Webhook.WebhookEvent): JobEvent | undefined => {
  switch (ev.event) {
    case "participant_joined":
      return "joined"
    case "participant_left":
    case "participant_connection_aborted":
      return ev.disconnectReason === "CLIENT_INITIATED" ? "leftIntentionally" : "aborted"
    default:
      return undefined
  }
}

/** Outcome class of one homeserver call (auth-service.md §3.3). */
type CallResult =
  | { readonly _tag: "Ok" }
  | { readonly _tag: "Permanent"; readonly status: number }
  | { readonly _tag: "Retry"; readonly afterMs: Option.Option<number>; readonly why: string }

const RetryAfterBody = Schema.parseJson(Schema.Struct({ retry_after_ms: Schema.optional(Schema.Number) }))

/** `Retry-After` in seconds or as an HTTP date. */
const parseRetryAfter = (header: string | undefined, nowMs: number): Option.Option<number> => {
  if (header === undefined || header.trim() === "") return Option.none()
  if (/^\s*\d+\s*$/.test(header)) return Option.some(Number(header) * 1000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? Option.none() : Option.some(Math.max(0, date - nowMs))
}

export const backoff = {
  initialMs: 1000,
  multiplier: 1.5,
  maxIntervalMs: 60_000
} as const

/** `interval` with ±50 % jitter, in whole milliseconds. */
const jitter = (intervalMs: number) => Effect.map(Random.next, (r) => Math.round(intervalMs * (0.5 + r)))

/** 80 % of `delay_timeout` between restarts; the waiting phase lasts at most 1 h. */
export const restartFraction = 0.8
export const maxWaitMs = 3_600_000

export const make: Effect.Effect<
  Service,
  never,
  AuthServiceSettings | HttpClient.HttpClient | LiveKitRooms | Scope.Scope
> = Effect.gen(function*() {
  const settings = yield* AuthServiceSettings
  const client = yield* HttpClient.HttpClient
  const rooms = yield* LiveKitRooms
  const resolveCsApi = yield* makeCsApiResolver
  const verify = yield* Webhook.makeVerifier
  const fibers = yield* FiberMap.make<string>()
  const queues = new Map<string, { readonly id: number; readonly queue: Queue.Queue<JobEvent> }>()
  const closing = yield* Ref.make(false)
  // Registered after the FiberMap, so it runs first on shutdown: no new jobs while the old ones are interrupted.
  yield* Effect.addFinalizer(() => Ref.set(closing, true))
  let nextId = 0

  const call = (job: Job, action: "restart" | "send"): Effect.Effect<CallResult> =>
    client.post(
      `${job.csApiUrl.replace(/\/+$/, "")}/_matrix/client/unstable/org.matrix.msc4140/delayed_events/${
        encodeURIComponent(job.delayId)
      }/${action}`,
      { body: HttpBody.text("{}", "application/json") }
    ).pipe(
      Effect.flatMap((res): Effect.Effect<CallResult> => {
        if (res.status >= 200 && res.status < 300) return Effect.succeed({ _tag: "Ok" })
        if (res.status === 404) {
          return Effect.succeed(action === "send" ? { _tag: "Ok" } : { _tag: "Permanent", status: 404 })
        }
        if (res.status === 429) {
          return Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const fromHeader = parseRetryAfter(res.headers["retry-after"], now)
            const fromBody = Option.isSome(fromHeader) ? fromHeader : yield* res.text.pipe(
              Effect.map((t) => Either.getOrUndefined(Schema.decodeUnknownEither(RetryAfterBody)(t))?.retry_after_ms),
              Effect.map(Option.fromNullable),
              Effect.orElseSucceed(() => Option.none<number>())
            )
            return { _tag: "Retry", afterMs: fromBody, why: "429" } as const
          })
        }
        return Effect.succeed({ _tag: "Retry", afterMs: Option.none(), why: `status ${res.status}` })
      }),
      Effect.scoped,
      Effect.timeoutFail({ duration: Duration.seconds(5), onTimeout: () => "timeout" }),
      Effect.catchAll((e) =>
        Effect.succeed<CallResult>({ _tag: "Retry", afterMs: Option.none(), why: typeof e === "string" ? e : e._tag })
      )
    )

  /** Calls until success, a permanent failure, or `untilMs` passes. */
  const callWithRetry = (job: Job, action: "restart" | "send", untilMs: number) =>
    Effect.gen(function*() {
      let interval: number = backoff.initialMs
      for (;;) {
        const result = yield* call(job, action)
        if (result._tag === "Ok") return "ok" as const
        if (result._tag === "Permanent") return "permanent" as const
        const now = yield* Clock.currentTimeMillis
        if (now >= untilMs) return "exhausted" as const
        const wait = Option.isSome(result.afterMs) ? result.afterMs.value : yield* jitter(interval)
        yield* Effect.logDebug(`delayed event ${action} failed (${result.why}); retrying`)
        // Whole milliseconds, at least 1: time must advance between attempts (fractional
        // waits near the deadline could otherwise round to no progress at all).
        yield* Effect.sleep(Duration.millis(Math.max(1, Math.ceil(Math.min(wait, untilMs - now)))))
        interval = Math.min(interval * backoff.multiplier, backoff.maxIntervalMs)
      }
    })

  const nextEvent = <A>(queue: Queue.Queue<JobEvent>, select: (e: JobEvent) => A | undefined): Effect.Effect<A> =>
    Queue.take(queue).pipe(
      Effect.map(select),
      Effect.repeat({ until: (a): a is A => a !== undefined }),
      Effect.map((a) => a as A)
    )

  /** GetParticipant with backoff until the participant is there. */
  const pollUntilPresent = (job: Job) =>
    Effect.gen(function*() {
      let interval: number = backoff.initialMs
      for (;;) {
        const present = yield* rooms.hasParticipant(job.room, job.identity).pipe(Effect.orElseSucceed(() => false))
        if (present) return
        yield* Effect.sleep(Duration.millis(yield* jitter(interval)))
        interval = Math.min(interval * backoff.multiplier, backoff.maxIntervalMs)
      }
    })

  /** The sanity check: confirmed absence (not a transport error) ends the connection. */
  const sanityCheck = (job: Job) =>
    settings.sanityCheckIntervalSeconds > 0
      ? Effect.gen(function*() {
        for (;;) {
          yield* Effect.sleep(Duration.seconds(settings.sanityCheckIntervalSeconds))
          const present = yield* rooms.hasParticipant(job.room, job.identity).pipe(Effect.orElseSucceed(() => true))
          if (!present) return "disconnected" as const
        }
      })
      : Effect.never

  const sendLeave = (job: Job, deadlineMs: number) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const budget = Math.min(Math.max(deadlineMs - now, 1000), maxWaitMs)
      const result = yield* callWithRetry(job, "send", now + budget)
      if (result === "ok") yield* Effect.logInfo("delegated delayed leave sent")
      else yield* Effect.logWarning(`delegated delayed leave could not be sent (${result})`)
    })

  const runJob = (job: Job, queue: Queue.Queue<JobEvent>) =>
    Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      const deadline = yield* Ref.make(start + job.delayTimeoutMs)

      // WaitingForInitialConnect
      const first = yield* Effect.raceAll([
        Effect.sleep(Duration.millis(Math.min(maxWaitMs, job.delayTimeoutMs))).pipe(Effect.as("timeout" as const)),
        pollUntilPresent(job).pipe(Effect.as("connected" as const)),
        nextEvent(queue, (e) => e === "joined" ? "connected" as const : e === "aborted" ? "aborted" as const : undefined)
      ])
      if (first === "aborted") {
        return yield* Effect.logInfo("participant connection aborted before connecting; job aborted")
      }
      if (first === "timeout") {
        yield* Effect.logInfo("participant never connected; sending the delayed leave")
        return yield* sendLeave(job, yield* Ref.get(deadline))
      }

      // Connected
      yield* Effect.logInfo("participant connected; restarting the delayed leave")
      const restartLoop = Effect.gen(function*() {
        for (;;) {
          const result = yield* callWithRetry(job, "restart", yield* Ref.get(deadline))
          if (result !== "ok") return result
          const now = yield* Clock.currentTimeMillis
          yield* Ref.set(deadline, now + job.delayTimeoutMs)
          yield* Effect.sleep(Duration.millis(Math.max(1, Math.round(job.delayTimeoutMs * restartFraction))))
        }
      })
      const outcome = yield* Effect.raceAll([
        // Only a leave counts: a join webhook also reaches a job that polling already
        // connected (the webhook can arrive after GetParticipant listed the participant).
        nextEvent(queue, (e) => e === "joined" ? undefined : "disconnected" as const),
        sanityCheck(job),
        restartLoop
      ])
      if (outcome !== "disconnected") {
        return yield* Effect.logWarning(`restarting the delayed leave failed (${outcome}); job aborted`)
      }
      // Disconnected
      yield* Effect.logInfo("participant left; sending the delayed leave")
      yield* sendLeave(job, yield* Ref.get(deadline))
    }).pipe(Effect.annotateLogs({ room: job.room, identity: job.identity }))

  return Delegation.of({
    resolveCsApi,
    register: (job) =>
      Effect.gen(function*() {
        if (yield* Ref.get(closing)) return yield* Effect.fail(new ShuttingDown())
        const key = jobKey(job.room, job.identity)
        const id = nextId++
        const queue = yield* Queue.unbounded<JobEvent>()
        queues.set(key, { id, queue })
        yield* FiberMap.run(
          fibers,
          key,
          runJob(job, queue).pipe(
            Effect.ensuring(Effect.sync(() => {
              if (queues.get(key)?.id === id) queues.delete(key)
            }))
          )
        )
        yield* Effect.logInfo("delayed leave delegated").pipe(
          Effect.annotateLogs({ room: job.room, identity: job.identity, delayTimeoutMs: job.delayTimeoutMs })
        )
      }),
    webhook: (body, authorization) =>
      verify(body, authorization).pipe(
        Effect.flatMap((ev) => {
          const jobEvent = jobEventOf(ev)
          const entry = queues.get(jobKey(ev.room, ev.identity))
          return jobEvent === undefined || entry === undefined
            ? Effect.logDebug("sfu webhook").pipe(Effect.annotateLogs({ ...ev }))
            : Effect.logDebug("sfu webhook for a delegation job").pipe(
              Effect.annotateLogs({ ...ev }),
              Effect.zipRight(Queue.offer(entry.queue, jobEvent))
            )
        }),
        Effect.catchAll((reason) => Effect.logWarning("sfu webhook rejected", reason)),
        Effect.asVoid
      )
  })
})

/** The real delegation; jobs live as long as the layer. */
export const layer: Layer.Layer<Delegation, never, AuthServiceSettings | HttpClient.HttpClient | LiveKitRooms> = Layer
  .scoped(Delegation, make)
