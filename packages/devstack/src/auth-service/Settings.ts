/**
 * Configuration of the auth service from the environment, with
 * lk-jwt-service's variable names (auth-service.md §4, local-stack.md §4).
 */
import { Config, ConfigError, Context, Effect, Either, Layer, Redacted } from "effect"

export interface Settings {
  /** `LIVEKIT_URL`, returned verbatim to clients; ws→http for RoomService calls. */
  readonly liveKitUrl: string
  /** `LIVEKIT_KEY` (JWT `iss`). */
  readonly apiKey: string
  /** `LIVEKIT_SECRET`. */
  readonly apiSecret: Redacted.Redacted<string>
  /** From `LIVEKIT_JWT_BIND` (`host:port`) or `LIVEKIT_JWT_PORT`; default `127.0.0.1:8080`. */
  readonly bindHost: string
  readonly bindPort: number
  /** `LIVEKIT_FULL_ACCESS_HOMESERVERS`, split on commas and whitespace; `["*"]` = everyone. */
  readonly fullAccessHomeservers: ReadonlyArray<string>
  /** `LIVEKIT_CS_API_URL_OVERRIDES` (`server=url,…`). */
  readonly csApiUrlOverrides: ReadonlyMap<string, string>
  /** `MATRIXRTC_USERINFO_URLS` (`server_name=base_url,…`): plain-HTTP OpenID userinfo lookups. */
  readonly userInfoBaseUrls: ReadonlyMap<string, string>
  /** `LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS`: poll `GetParticipant` for delegated participants (0 = off, default). */
  readonly sanityCheckIntervalSeconds: number
}

export class AuthServiceSettings extends Context.Tag("@matrixrtc-effect/devstack/auth-service/Settings")<
  AuthServiceSettings,
  Settings
>() {}

/** Parses `a=x,b=y` (entries trimmed; empty entries skipped). */
export const parseServerMap = (name: string, raw: string): Either.Either<ReadonlyMap<string, string>, ConfigError.ConfigError> => {
  const out = new Map<string, string>()
  for (const entry of raw.split(",")) {
    const trimmed = entry.trim()
    if (trimmed === "") continue
    const eq = trimmed.indexOf("=")
    if (eq <= 0 || eq === trimmed.length - 1) {
      return Either.left(ConfigError.InvalidData([name], `expected server=url, got ${JSON.stringify(trimmed)}`))
    }
    out.set(trimmed.slice(0, eq).trim(), trimmed.slice(eq + 1).trim())
  }
  return Either.right(out)
}

const serverMap = (name: string) =>
  Config.string(name).pipe(
    Config.withDefault(""),
    Config.mapOrFail((raw) => parseServerMap(name, raw))
  )

/** Parses `host:port`, `:port` or `[v6]:port`; an empty host means loopback (the project is loopback-only). */
export const parseBind = (raw: string): Either.Either<{ host: string; port: number }, string> => {
  const colon = raw.lastIndexOf(":")
  if (colon === -1) return Either.left(`expected host:port, got ${JSON.stringify(raw)}`)
  let host = raw.slice(0, colon)
  const portText = raw.slice(colon + 1)
  if (!/^[0-9]+$/.test(portText) || Number(portText) > 65535) return Either.left(`invalid port in ${JSON.stringify(raw)}`)
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1)
  return Either.right({ host: host === "" ? "127.0.0.1" : host, port: Number(portText) })
}

const bind = Config.all({
  bind: Config.option(Config.string("LIVEKIT_JWT_BIND")),
  port: Config.option(Config.string("LIVEKIT_JWT_PORT"))
}).pipe(
  Config.mapOrFail(({ bind, port }) => {
    if (bind._tag === "Some" && port._tag === "Some") {
      return Either.left(ConfigError.InvalidData(["LIVEKIT_JWT_BIND"], "LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT are mutually exclusive"))
    }
    const raw = bind._tag === "Some" ? bind.value : port._tag === "Some" ? `:${port.value}` : "127.0.0.1:8080"
    return Either.mapLeft(parseBind(raw), (msg) => ConfigError.InvalidData(["LIVEKIT_JWT_BIND"], msg))
  })
)

/** Split on commas and whitespace. Required, as in lk-jwt-service since v0.5.0 (older ones took unset as `*`). */
const fullAccess = Config.string("LIVEKIT_FULL_ACCESS_HOMESERVERS").pipe(
  Config.map((raw) => raw.split(/[\s,]+/).filter((s) => s !== "")),
  Config.validate({
    message: "LIVEKIT_FULL_ACCESS_HOMESERVERS must name at least one homeserver, or be *",
    validation: (list) => list.length > 0
  })
)

export const config: Config.Config<Settings> = Config.all({
  liveKitUrl: Config.nonEmptyString("LIVEKIT_URL"),
  apiKey: Config.nonEmptyString("LIVEKIT_KEY"),
  apiSecret: Config.redacted(Config.nonEmptyString("LIVEKIT_SECRET")),
  bind,
  fullAccessHomeservers: fullAccess,
  csApiUrlOverrides: serverMap("LIVEKIT_CS_API_URL_OVERRIDES"),
  userInfoBaseUrls: serverMap("MATRIXRTC_USERINFO_URLS"),
  sanityCheckIntervalSeconds: Config.integer("LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS").pipe(Config.withDefault(0))
}).pipe(
  Config.map(({ bind, ...rest }): Settings => ({ ...rest, bindHost: bind.host, bindPort: bind.port }))
)

export const layerConfig: Layer.Layer<AuthServiceSettings, ConfigError.ConfigError> = Layer.effect(
  AuthServiceSettings,
  Effect.map(config, AuthServiceSettings.of)
)

export const layer = (settings: Settings): Layer.Layer<AuthServiceSettings> =>
  Layer.succeed(AuthServiceSettings, settings)

/** `isFullAccessUser`: the list is exactly `["*"]` or contains the server name verbatim. */
export const isFullAccess = (settings: Settings, serverName: string): boolean =>
  (settings.fullAccessHomeservers.length === 1 && settings.fullAccessHomeservers[0] === "*") ||
  settings.fullAccessHomeservers.includes(serverName)
