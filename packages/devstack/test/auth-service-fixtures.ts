/**
 * Test harness for the auth service: a real HTTP listener on 127.0.0.1:0
 * with a fake OpenID verifier (token table), in-memory LiveKit rooms and an
 * in-memory delegation.
 */
import { HttpServer } from "@effect/platform"
import { Context, Effect, Layer, Redacted } from "effect"
import * as Delegation from "../src/auth-service/Delegation.ts"
import * as Http from "../src/auth-service/Http.ts"
import * as LiveKitRooms from "../src/auth-service/LiveKitRooms.ts"
import * as OpenIdVerifier from "../src/auth-service/OpenIdVerifier.ts"
import * as Settings from "../src/auth-service/Settings.ts"

export const apiKey = "devkey"
export const apiSecret = "devsecret-at-least-32-characters-long"
export const liveKitUrl = "ws://127.0.0.1:7880"

export const tokens = {
  alice: "tok-alice", // @alice:example.com (full access)
  bob: "tok-bob", // @bob:remote.example (restricted)
  wrongServer: "tok-wrong-server", // @eve:evil.example
  withPort: "tok-with-port", // @carol:example.com:443
  noColon: "tok-no-colon" // "alice"
} as const

export const tokenTable: Record<string, string> = {
  [tokens.alice]: "@alice:example.com",
  [tokens.bob]: "@bob:remote.example",
  [tokens.wrongServer]: "@eve:evil.example",
  [tokens.withPort]: "@carol:example.com:443",
  [tokens.noColon]: "alice"
}

export const baseSettings: Settings.Settings = {
  liveKitUrl,
  apiKey,
  apiSecret: Redacted.make(apiSecret),
  bindHost: "127.0.0.1",
  bindPort: 0,
  fullAccessHomeservers: ["example.com"],
  csApiUrlOverrides: new Map(),
  userInfoBaseUrls: new Map(),
  sanityCheckIntervalSeconds: 0
}

export interface Harness {
  readonly base: string
  readonly rooms: LiveKitRooms.Memory
  readonly delegation: Delegation.Memory
}

export const startServer = (overrides: Partial<Settings.Settings> = {}) =>
  Effect.gen(function*() {
    const rooms = LiveKitRooms.makeMemory()
    const delegation = Delegation.makeMemory({ "example.com": "http://127.0.0.1:8008" })
    const context = yield* Layer.build(
      Http.layerServer.pipe(
        Layer.provide(Layer.mergeAll(
          Settings.layer({ ...baseSettings, ...overrides }),
          OpenIdVerifier.layerTest(tokenTable),
          LiveKitRooms.layerMemory(rooms),
          Delegation.layerMemory(delegation)
        ))
      )
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
    return { base: `http://127.0.0.1:${address.port}`, rooms, delegation } satisfies Harness
  })

export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly body: string
}

export const request = (
  h: Harness,
  path: string,
  init: { readonly method?: string; readonly body?: string; readonly headers?: Record<string, string> } = {}
): Effect.Effect<Reply> =>
  Effect.promise(async () => {
    const res = await fetch(h.base + path, {
      method: init.method ?? "POST",
      redirect: "manual",
      ...(init.body === undefined ? {} : { body: init.body }),
      ...(init.headers === undefined ? {} : { headers: init.headers })
    })
    return { status: res.status, headers: res.headers, body: await res.text() }
  })

export const post = (h: Harness, path: string, body: unknown) =>
  request(h, path, { body: typeof body === "string" ? body : JSON.stringify(body) })

export const openIdToken = (accessToken: string, serverName = "example.com") => ({
  access_token: accessToken,
  token_type: "Bearer",
  matrix_server_name: serverName,
  expires_in: 3600
})

/** A valid `/get_token` body for alice (full access). */
export const getTokenBody = (overrides: Record<string, unknown> = {}) => ({
  room_id: "!room:example.com",
  slot_id: "m.call#ROOM",
  openid_token: openIdToken(tokens.alice),
  member: { id: "member-1", claimed_user_id: "@alice:example.com", claimed_device_id: "DEVICE" },
  ...overrides
})

/** A valid `/sfu/get` body for alice (full access). */
export const sfuGetBody = (overrides: Record<string, unknown> = {}) => ({
  room: "!room:example.com",
  openid_token: openIdToken(tokens.alice),
  device_id: "DEVICE",
  ...overrides
})

/** A valid `/delegate_delayed_leave` body for alice. */
export const delegateBody = (overrides: Record<string, unknown> = {}) =>
  getTokenBody({ delay_id: "syd_abc", delay_timeout: 8000, ...overrides })

export const corsHeaderValues = {
  "content-type": "application/json",
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "POST",
  "access-control-allow-headers": "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token"
} as const

export const errorBody = (errcode: string, error: string) => `${JSON.stringify({ errcode, error })}\n`

/** Room and identity vectors (auth-service.md §2.3). */
export const vectors = {
  room: "krj2dgxw2K6EOm9he4GfQJ6JsSVWfJ8a7BkyjZcSmxs", // ["!room:example.com","m.call#ROOM"]
  identity: "vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU" // ["@alice:example.com","DEVICE","member-1"]
} as const
