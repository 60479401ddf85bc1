/**
 * Core's `MatrixClient` port on matrix-js-sdk 43, for node and the browser alike.
 *
 * - `layerFromClient(client)` wraps a client the app already runs;
 * - `layerLogin(options)` logs in (or takes an access token), starts syncing and
 *   stops the client when the layer's scope closes.
 *
 * Both also provide `MatrixSdkClient` (the underlying `sdk.MatrixClient`) for
 * code that needs more than the port, as `@effect/sql` adapters expose their
 * specific client next to the generic tag.
 *
 * No Node- or DOM-only APIs here: everything goes through the SDK's own fetch.
 */
import {
  Discovery,
  Ids,
  MatrixClient,
  MatrixError,
  loginRejected,
  MatrixErrors,
  tokenRejected
} from "@matrixrtc-effect/core"
import type {
  NotAuthenticated,
  DelayedEventAction,
  MatrixClientService,
  OpenIdToken,
  ServerSupport,
  Session
} from "@matrixrtc-effect/core"
import { Context, Duration, Effect, Fiber, FiberRef, GlobalValue, Layer, Option, ParseResult, Predicate, Redacted, Schema } from "effect"
import * as sdk from "matrix-js-sdk"
import { callMemberEvents } from "./callMemberEvents.ts"
import { toMatrixError } from "./errors.ts"
import * as SdkLogger from "./SdkLogger.ts"

/** The matrix-js-sdk client behind the `MatrixClient` port. */
export class MatrixSdkClient extends Context.Tag("@matrixrtc-effect/matrix-js-sdk/MatrixSdkClient")<
  MatrixSdkClient,
  sdk.MatrixClient
>() {}

// ---------------------------------------------------------------------------------------
// Raw response shapes we read (decoded, never trusted).

const Versions = Schema.Struct({
  unstable_features: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), {
    default: () => ({})
  })
})

const Capabilities = Schema.Struct({
  capabilities: Schema.optionalWith(
    Schema.Struct({
      "org.matrix.msc4140.delayed_events": Schema.optional(
        Schema.Struct({ max_delay_ms: Schema.optional(Schema.Number) })
      )
    }),
    { default: () => ({}) }
  )
})

const CreateContent = Schema.Struct({ room_version: Schema.optional(Schema.String) })

const OpenIdResponse = Schema.Struct({
  access_token: Schema.String,
  token_type: Schema.String,
  matrix_server_name: Schema.String,
  expires_in: Schema.Number
})

const WhoAmI = Schema.Struct({ user_id: Schema.String, device_id: Schema.optional(Schema.String) })

const DelayResponse = Schema.Struct({ delay_id: Schema.String })
const EventResponse = Schema.Struct({ event_id: Schema.String })

/** A response that does not have the shape the spec promises. */
const badResponse = (what: string) => (e: unknown) =>
  new MatrixError({ reason: "Http", error: `unexpected ${what} response`, cause: e })

const decodeWith =
  <A, I>(schema: Schema.Schema<A, I>, what: string) =>
  (raw: unknown): Effect.Effect<A, MatrixError> =>
    Schema.decodeUnknown(schema)(raw).pipe(Effect.mapError(badResponse(what)))

/**
 * `decodeWith` for answers that carry a token (OpenID, /login): a `ParseError` holds
 * the raw answer (`issue.actual`), so the error keeps only the paths that failed.
 */
const decodeSecretWith =
  <A, I>(schema: Schema.Schema<A, I>, what: string) =>
  (raw: unknown): Effect.Effect<A, MatrixError> =>
    Schema.decodeUnknown(schema)(raw).pipe(
      Effect.mapError((e) => {
        const paths = ParseResult.ArrayFormatter.formatErrorSync(e).map((issue) => issue.path.join(".") || "(root)")
        return new MatrixError({ reason: "Http", error: `unexpected ${what} response (at ${[...new Set(paths)].join(", ")})` })
      })
    )

// ---------------------------------------------------------------------------------------

/**
 * Whether the delayed-event updates and state writes made in this fiber go out with
 * fetch's `keepalive`, which has the browser finish them after the page is gone.
 * Meant for the few requests that end a call while the page is being torn down (the
 * browser package's `leaveOnPageHide` turns it on for its leave); off otherwise, since
 * all keepalive requests of a page share one 64 KiB body budget. Sending a delayed
 * event (the delayed leave) always goes with keepalive, see `updateDelayedEvent`.
 */
export const keepAliveRequests: FiberRef.FiberRef<boolean> = GlobalValue.globalValue(
  Symbol.for("@matrixrtc-effect/matrix-js-sdk/keepAliveRequests"),
  () => FiberRef.unsafeMake(false)
)

/** Runs `self` with `keepAliveRequests` on. */
export const withKeepAlive = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(self, keepAliveRequests, true)

/**
 * One SDK call: a rejection becomes a core `MatrixError`; a span names the operation.
 * `signal` aborts raw HTTP requests when the fiber is interrupted; `keepAlive` is
 * the fiber's `keepAliveRequests`, for the calls that pass it on.
 */
const call = <A>(
  name: string,
  run: (signal: AbortSignal, keepAlive: boolean) => Promise<A>,
  attributes: Record<string, unknown> = {}
): Effect.Effect<A, MatrixError> =>
  Effect.flatMap(FiberRef.get(keepAliveRequests), (keepAlive) =>
    Effect.tryPromise({ try: (signal) => run(signal, keepAlive), catch: toMatrixError })).pipe(
      Effect.withSpan(`MatrixClient.${name}`, { kind: "client", attributes })
    )

const sdkAction: Record<
  DelayedEventAction,
  (c: sdk.MatrixClient, id: string, opts: sdk.IRequestOpts) => Promise<unknown>
> = {
  // These POST authenticated and fall back to the older `{action}` body endpoint on M_UNRECOGNIZED (SDK ≥ 42).
  restart: (c, id, opts) => c._unstable_restartScheduledDelayedEvent(id, opts),
  send: (c, id, opts) => c._unstable_sendScheduledDelayedEvent(id, opts),
  cancel: (c, id, opts) => c._unstable_cancelScheduledDelayedEvent(id, opts)
}

/** The SDK types event types and contents per known event; ours are MatrixRTC's unstable ones. */
type AnyStateType = keyof sdk.StateEvents
type AnyTimelineType = keyof sdk.TimelineEvents

/**
 * How long the `.well-known` of the user id's server name may take before the homeserver's own answer is used;
 * well under discovery's default request bound, so that the fallback still fits in it.
 */
const serverNameWellKnownTimeout = Duration.seconds(3)

/** Builds the port on a client; does not start or stop it. */
export const make = (client: sdk.MatrixClient): MatrixClientService => {
  const baseUrl = client.baseUrl.replace(/\/+$/, "")

  const session: Effect.Effect<Option.Option<Session>> = Effect.sync(() => {
    const user = Schema.decodeUnknownOption(Ids.UserId)(client.getUserId())
    const device = Schema.decodeUnknownOption(Ids.DeviceId)(client.getDeviceId())
    return Option.all({ userId: user, deviceId: device }).pipe(
      Option.map(({ deviceId, userId }): Session => ({ userId, deviceId, homeserverUrl: baseUrl }))
    )
  })

  const whoami = call("whoami", () => client.whoami()).pipe(
    Effect.flatMap(decodeWith(WhoAmI, "whoami")),
    Effect.map((r) => ({ userId: r.user_id, deviceId: r.device_id }))
  )

  const requestOpenIdToken: Effect.Effect<OpenIdToken, MatrixError> = call("requestOpenIdToken", () =>
    client.getOpenIdToken()
  ).pipe(
    Effect.flatMap(decodeSecretWith(OpenIdResponse, "openid/request_token")),
    Effect.map(
      (r): OpenIdToken => ({
        accessToken: Redacted.make(r.access_token),
        tokenType: r.token_type,
        matrixServerName: r.matrix_server_name,
        expiresIn: r.expires_in
      })
    )
  )

  const sendStateEvent: MatrixClientService["sendStateEvent"] = (roomId, eventType, stateKey, content) =>
    call(
      "sendStateEvent",
      (_, keepAlive) => client.sendStateEvent(roomId, eventType as AnyStateType, content as never, stateKey, { keepAlive }),
      { roomId, eventType }
    ).pipe(
      Effect.flatMap(decodeWith(EventResponse, "state event")),
      Effect.map((r) => ({ eventId: r.event_id }))
    )

  const sendDelayedStateEvent: MatrixClientService["sendDelayedStateEvent"] = (
    roomId,
    eventType,
    stateKey,
    content,
    delayMs
  ) =>
    call(
      "sendDelayedStateEvent",
      () =>
        client._unstable_sendDelayedStateEvent(
          roomId,
          { delay: delayMs },
          eventType as AnyStateType,
          content as never,
          stateKey
        ),
      { roomId, eventType, delayMs }
    ).pipe(
      Effect.flatMap(decodeWith(DelayResponse, "delayed state event")),
      Effect.map((r) => ({ delayId: r.delay_id }))
    )

  const updateDelayedEvent = (delayId: string, action: DelayedEventAction) =>
    call(
      `updateDelayedEvent`,
      // Sending the delayed leave ends the membership, often as the page goes away: livekit-client's
      // own page-leave disconnect (on beforeunload) can start the leave before pagehide, so only a
      // request that is keepalive from the start survives the teardown. Its body is empty.
      (_, keepAlive) => sdkAction[action](client, delayId, { keepAlive: keepAlive || action === "send" }),
      { action }
    ).pipe(Effect.asVoid)

  const sendStickyEvent: MatrixClientService["sendStickyEvent"] = (roomId, eventType, content, options) => {
    const attributes = { roomId, eventType, stickyDurationMs: options.stickyDurationMs, delayMs: options.delayMs }
    if (options.delayMs === undefined) {
      return call(
        "sendStickyEvent",
        () =>
          client._unstable_sendStickyEvent(
            roomId,
            options.stickyDurationMs,
            null,
            eventType as AnyTimelineType,
            content as never
          ),
        attributes
      ).pipe(
        Effect.flatMap(decodeWith(EventResponse, "sticky event")),
        Effect.map((r) => ({ eventId: r.event_id }))
      )
    }
    const delay = options.delayMs
    return call(
      "sendStickyEvent",
      () =>
        client._unstable_sendStickyDelayedEvent(
          roomId,
          options.stickyDurationMs,
          { delay },
          null,
          eventType as AnyTimelineType,
          content as never
        ),
      attributes
    ).pipe(
      Effect.flatMap(decodeWith(DelayResponse, "delayed sticky event")),
      Effect.map((r) => ({ delayId: r.delay_id }))
    )
  }

  // Raw requests rather than getVersions()/getCapabilities(): the SDK caches both for the client's lifetime.
  const serverSupport: Effect.Effect<ServerSupport, MatrixError> = Effect.all(
    {
      versions: call("versions", (signal) =>
        client.http.authedRequest<unknown>(sdk.Method.Get, "/_matrix/client/versions", undefined, undefined, {
          prefix: "",
          abortSignal: signal
        })
      ).pipe(Effect.flatMap(decodeWith(Versions, "/versions"))),
      capabilities: call("capabilities", (signal) =>
        client.http.authedRequest<unknown>(sdk.Method.Get, "/capabilities", undefined, undefined, {
          abortSignal: signal
        })
      ).pipe(Effect.flatMap(decodeWith(Capabilities, "/capabilities")))
    },
    { concurrency: 2 }
  ).pipe(
    Effect.map(({ capabilities, versions }) => ({
      delayedEvents: versions.unstable_features["org.matrix.msc4140"] === true,
      stickyEvents: versions.unstable_features["org.matrix.msc4354"] === true,
      maxDelayMs: Option.fromNullable(capabilities.capabilities["org.matrix.msc4140.delayed_events"]?.max_delay_ms)
    })),
    Effect.withSpan("MatrixClient.serverSupport")
  )

  const roomVersion = (roomId: Ids.RoomId) =>
    Effect.suspend(() => {
      // A synced room knows its version; otherwise ask for the create event.
      const known = client.getRoom(roomId)?.currentState.getStateEvents(sdk.EventType.RoomCreate, "")
      if (known) return Effect.succeed(known.getContent())
      return call(
        "roomVersion",
        (signal) =>
          client.http.authedRequest<unknown>(
            sdk.Method.Get,
            `/rooms/${encodeURIComponent(roomId)}/state/m.room.create/`,
            undefined,
            undefined,
            { abortSignal: signal }
          ),
        { roomId }
      )
    }).pipe(
      Effect.flatMap(decodeWith(CreateContent, "m.room.create")),
      // A create event without room_version means version 1 (spec, "Room versions").
      Effect.map((c) => c.room_version ?? "1")
    )

  const rtcTransports = call("rtcTransports", (signal) =>
    client.http.authedRequest<unknown>(sdk.Method.Get, "/rtc/transports", undefined, undefined, {
      prefix: "/_matrix/client/unstable/org.matrix.msc4143",
      abortSignal: signal
    })
  )

  const wellKnownAt = (origin: string) =>
    call(
      "wellKnown",
      (signal) =>
        client.http.requestOtherUrl<unknown>(sdk.Method.Get, `${origin}/.well-known/matrix/client`, undefined, {
          abortSignal: signal
        }),
      { origin }
    )

  // The SDK (so EC and EX) reads the `.well-known` of the user id's server name: a delegated deployment
  // (example.org → matrix.example.org) serves it there, and maybe not on the homeserver's host at all.
  // Both are asked at once: the server name's answer wins when it names a LiveKit transport; its own bound keeps a
  // server name that serves nothing (e.g. `localhost` without TLS) from holding up the homeserver's answer.
  const wellKnown = Effect.suspend(() => {
    const serverName = client.getDomain()
    const origin = serverName === null || serverName === "" ? undefined : `https://${serverName}`
    if (origin === undefined || origin === baseUrl) return wellKnownAt(baseUrl)
    return Effect.gen(function*() {
      const fromHomeserver = yield* Effect.fork(wellKnownAt(baseUrl))
      const fromServerName = yield* wellKnownAt(origin).pipe(
        Effect.timeout(serverNameWellKnownTimeout),
        Effect.option,
        Effect.map(Option.filter((json) => Option.isSome(Discovery.fromWellKnown(json))))
      )
      if (Option.isNone(fromServerName)) return yield* Fiber.join(fromHomeserver)
      yield* Fiber.interrupt(fromHomeserver)
      return fromServerName.value
    })
  })

  return {
    session,
    whoami,
    requestOpenIdToken,
    sendStateEvent,
    sendDelayedStateEvent,
    updateDelayedEvent,
    sendStickyEvent,
    serverSupport,
    roomVersion,
    rtcTransports,
    wellKnown,
    callMemberEvents: (roomId: Ids.RoomId) => callMemberEvents(client, roomId)
  }
}

// ---------------------------------------------------------------------------------------
// Starting and stopping

export interface StartOptions {
  /** Events per room in the first sync; the port needs state, not history. Default 1. */
  readonly initialSyncLimit?: number | undefined
  /** How long to wait for the first sync (PREPARED). Default 30 s. */
  readonly preparedTimeout?: Duration.DurationInput | undefined
}

/**
 * Starts syncing and waits for PREPARED. The stop is registered before the start,
 * so a timeout or interruption while waiting still stops the client.
 */
export const startClient = (client: sdk.MatrixClient, options: StartOptions = {}) =>
  Effect.gen(function* () {
    yield* Effect.addFinalizer(() => Effect.sync(() => client.stopClient()))
    yield* Effect.async<void, MatrixError>((resume) => {
      const onSync = (state: sdk.SyncState, _prev: sdk.SyncState | null, data?: sdk.SyncStateData) => {
        if (state === sdk.SyncState.Prepared || state === sdk.SyncState.Syncing) {
          resume(Effect.void)
        } else if (state === sdk.SyncState.Error) {
          resume(Effect.fail(data?.error ? toMatrixError(data.error) : new MatrixError({ reason: "Transport" })))
        }
      }
      client.on(sdk.ClientEvent.Sync, onSync)
      client.startClient({ initialSyncLimit: options.initialSyncLimit ?? 1 }).catch((e: unknown) => {
        resume(Effect.fail(toMatrixError(e)))
      })
      return Effect.sync(() => client.off(sdk.ClientEvent.Sync, onSync))
    }).pipe(
      Effect.timeoutFail({
        duration: options.preparedTimeout ?? Duration.seconds(30),
        onTimeout: () => new MatrixError({ reason: "Timeout", error: "the first sync did not complete in time" })
      }),
      Effect.withSpan("MatrixClient.startClient")
    )
  })

/** Provides `MatrixClient` and `MatrixSdkClient` for a client the app owns. */
export const layerFromClient = (
  client: sdk.MatrixClient,
  options: { readonly start?: boolean | StartOptions } = {}
): Layer.Layer<MatrixClient | MatrixSdkClient, MatrixError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      if (options.start) yield* startClient(client, options.start === true ? {} : options.start)
      return Context.make(MatrixSdkClient, client).pipe(Context.add(MatrixClient, make(client)))
    })
  )

// ---------------------------------------------------------------------------------------
// Logging in

interface LoginCommon extends StartOptions {
  /** Client-server API base URL, e.g. `http://127.0.0.1:8008`. */
  readonly homeserverUrl: string
  /** Start syncing (needed for `callMemberEvents`); default true. */
  readonly sync?: boolean | undefined
  /**
   * Where the client's own log lines go: Effect's logger (default; SDK debug/info
   * at Debug) or the SDK's console logger. See `SdkLogger.setRootLevel` for the
   * SDK's global logger.
   */
  readonly sdkLogs?: "effect" | "console" | undefined
}

export interface AccessTokenLogin extends LoginCommon {
  readonly accessToken: Redacted.Redacted<string>
  /** Skips the `/whoami` round trip when both are known. */
  readonly userId?: string | undefined
  readonly deviceId?: string | undefined
}

export interface PasswordLogin extends LoginCommon {
  /** Full user id or localpart. */
  readonly user: string
  readonly password: Redacted.Redacted<string>
  /** Reuse a device (and its delayed events) instead of creating one per login. */
  readonly deviceId?: string | undefined
  readonly initialDeviceDisplayName?: string | undefined
  /**
   * Log the device out (`POST /logout`: the homeserver deletes it and its token) when
   * the layer's scope closes, so that devices do not pile up on the account with every
   * start. Default: true when the login created the device (no `deviceId`), false
   * when it reuses one.
   */
  readonly logoutOnClose?: boolean | undefined
}

export type LoginOptions = AccessTokenLogin | PasswordLogin

const LoginResponse = Schema.Struct({ user_id: Schema.String, device_id: Schema.String, access_token: Schema.String })
const IssuedToken = Schema.Struct({ access_token: Schema.String })

interface Credentials {
  readonly userId: string
  readonly deviceId: string | undefined
  readonly accessToken: Redacted.Redacted<string>
}

/** Whether the layer logs out the device of a password login (see `PasswordLogin.logoutOnClose`). */
const ownsDevice = (options: PasswordLogin): boolean => options.logoutOnClose ?? options.deviceId === undefined

const passwordLogin = (options: PasswordLogin): Effect.Effect<Credentials, MatrixError> => {
  const anonymous = sdk.createClient({ baseUrl: options.homeserverUrl })
  return call(
    "login",
    () =>
      anonymous.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: options.user },
        password: Redacted.value(options.password),
        ...(options.deviceId !== undefined ? { device_id: options.deviceId } : {}),
        ...(options.initialDeviceDisplayName !== undefined
          ? { initial_device_display_name: options.initialDeviceDisplayName }
          : {})
      }),
    { user: options.user }
  ).pipe(
    Effect.flatMap((raw) =>
      decodeSecretWith(LoginResponse, "/login")(raw).pipe(
        // The homeserver did create a session: without this, a device of ours would outlive the failure.
        Effect.tapError(() =>
          Option.match(Schema.decodeUnknownOption(IssuedToken)(raw), {
            onNone: () => Effect.void,
            onSome: (issued) =>
              ownsDevice(options)
                ? logout(options.homeserverUrl, {
                  userId: options.user,
                  deviceId: options.deviceId,
                  accessToken: Redacted.make(issued.access_token)
                })
                : Effect.void
          })
        )
      )
    ),
    Effect.map((r) => ({ userId: r.user_id, deviceId: r.device_id, accessToken: Redacted.make(r.access_token) }))
  )
}

const logoutTimeout = Duration.seconds(5)

/**
 * Ends the session of `creds` (the homeserver deletes the device and its token).
 * Bounded, and never fails: a device that could not be logged out is only logged.
 */
const logout = (homeserverUrl: string, creds: Credentials): Effect.Effect<void> =>
  call(
    "logout",
    (signal) =>
      sdk
        .createClient({ baseUrl: homeserverUrl, accessToken: Redacted.value(creds.accessToken) })
        .http.authedRequest<unknown>(sdk.Method.Post, "/logout", undefined, undefined, { abortSignal: signal }),
    { userId: creds.userId, deviceId: creds.deviceId }
  ).pipe(
    // Runs as a finalizer (uninterruptible): without this the timeout could not cut it short.
    Effect.interruptible,
    Effect.timeoutFail({
      duration: logoutTimeout,
      onTimeout: () => new MatrixError({ reason: "Timeout", error: "no answer to /logout in time" })
    }),
    Effect.catchAll((e) =>
      Effect.logWarning("logging out the device failed; it stays on the account").pipe(
        Effect.annotateLogs({ deviceId: creds.deviceId, error: e.message })
      )
    )
  )

const tokenLogin = (options: AccessTokenLogin): Effect.Effect<Credentials, MatrixError> =>
  options.userId !== undefined && options.deviceId !== undefined
    ? Effect.succeed({ userId: options.userId, deviceId: options.deviceId, accessToken: options.accessToken })
    : // Learns who the token belongs to; also fails early (401 M_UNKNOWN_TOKEN) on a dead token.
      make(
        sdk.createClient({ baseUrl: options.homeserverUrl, accessToken: Redacted.value(options.accessToken) })
      ).whoami.pipe(Effect.map((w) => ({ userId: w.userId, deviceId: w.deviceId, accessToken: options.accessToken })))

const isPasswordLogin = (o: LoginOptions): o is PasswordLogin => Predicate.hasProperty(o, "password")

/**
 * The homeserver refused the credentials themselves: a dead access token (401 `M_UNKNOWN_TOKEN` on `/whoami`) is
 * `TokenRejected`; a wrong password or a deactivated account (403 on `/login`) is `LoginRejected`. Rate limits,
 * 5xx and network failures stay `MatrixError`: they may pass.
 */
const credentialsRefused = (login: "token" | "password") => (e: MatrixError): NotAuthenticated | MatrixError => {
  const kind = MatrixErrors.classify(e)._tag
  if (kind !== "UnknownToken" && kind !== "Forbidden") return e
  return login === "token" ? tokenRejected(e) : loginRejected(e)
}

/**
 * Creates a client from a login (password via `/login`, or an access token),
 * starts it (unless `sync: false`) and stops it when the scope closes; a device
 * the password login created is then logged out (see `PasswordLogin.logoutOnClose`).
 * Refused credentials fail it with `NotAuthenticated` (see `credentialsRefused`).
 */
export const layerLogin = (
  options: LoginOptions
): Layer.Layer<MatrixClient | MatrixSdkClient, NotAuthenticated | MatrixError> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      // The caller owns an access token (and a device it asked for by id); a device the
      // password login created is ours, and is logged out again when the scope closes.
      // Registered with the login itself, so a failure later in this layer still logs it out.
      const creds = yield* (isPasswordLogin(options)
        ? Effect.acquireRelease(passwordLogin(options), (c) =>
          ownsDevice(options) ? logout(options.homeserverUrl, c) : Effect.void)
        : tokenLogin(options)).pipe(Effect.mapError(credentialsRefused(isPasswordLogin(options) ? "password" : "token")))
      const logger = options.sdkLogs === "console" ? undefined : SdkLogger.make(yield* Effect.runtime<never>())
      const client = sdk.createClient({
        baseUrl: options.homeserverUrl,
        accessToken: Redacted.value(creds.accessToken),
        userId: creds.userId,
        ...(creds.deviceId !== undefined ? { deviceId: creds.deviceId } : {}),
        ...(logger !== undefined ? { logger } : {}),
        useAuthorizationHeader: true
      })
      yield* Effect.annotateCurrentSpan({ userId: creds.userId, deviceId: creds.deviceId })
      if (options.sync !== false) yield* startClient(client, options)
      return Context.make(MatrixSdkClient, client).pipe(Context.add(MatrixClient, make(client)))
    }).pipe(Effect.withSpan("MatrixClient.layerLogin", { attributes: { homeserverUrl: options.homeserverUrl } }))
  )
