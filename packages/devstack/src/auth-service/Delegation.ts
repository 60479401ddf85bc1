/**
 * Delayed-leave delegation (auth-service.md §3): CS-API resolution, job
 * registration and the LiveKit webhook.
 *
 * `layerMinimal` resolves the CS API (so request-time errors match) and
 * accepts jobs without acting on them: nothing is restarted or sent, and the
 * client relies on its own heartbeats (the documented minimal behaviour).
 * Webhooks are verified and logged.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { Clock, Context, Data, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { WebhookReceiver } from "livekit-server-sdk"
import { AuthServiceSettings } from "./Settings.ts"

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

export interface WebhookEvent {
  readonly event: string
  readonly room: string
  readonly identity: string
  readonly disconnectReason: string
}

/** Verifies LiveKit's webhook signature (raw `Authorization` JWT with a `sha256` body claim) and decodes the event. */
export const makeWebhookVerifier = Effect.gen(function*() {
  const settings = yield* AuthServiceSettings
  const receiver = new WebhookReceiver(settings.apiKey, Redacted.value(settings.apiSecret))
  return (body: string, authorization: Option.Option<string>): Effect.Effect<WebhookEvent, unknown> =>
    Effect.tryPromise({
      try: () => receiver.receive(body, Option.getOrUndefined(authorization)),
      catch: (cause) => cause
    }).pipe(
      Effect.map((ev) => ({
        event: ev.event,
        room: ev.room?.name ?? "",
        identity: ev.participant?.identity ?? "",
        disconnectReason: String(ev.participant?.disconnectReason ?? "")
      }))
    )
})

export const layerMinimal: Layer.Layer<Delegation, never, AuthServiceSettings | HttpClient.HttpClient> = Layer.effect(
  Delegation,
  Effect.gen(function*() {
    const resolveCsApi = yield* makeCsApiResolver
    const verify = yield* makeWebhookVerifier
    return Delegation.of({
      resolveCsApi,
      register: (job) =>
        Effect.logInfo("delayed leave accepted; delegation is not implemented, nothing will be sent").pipe(
          Effect.annotateLogs({ room: job.room, identity: job.identity, delayTimeoutMs: job.delayTimeoutMs })
        ),
      webhook: (body, authorization) =>
        verify(body, authorization).pipe(
          Effect.flatMap((ev) => Effect.logDebug("sfu webhook").pipe(Effect.annotateLogs({ ...ev }))),
          Effect.catchAll(() => Effect.logWarning("sfu webhook with an invalid signature ignored"))
        )
    })
  })
)

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
