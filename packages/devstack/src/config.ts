// Fixed addresses of the stack and the generators for homeserver.yaml and livekit.yaml.
// Everything binds to 127.0.0.1 only; the only name that is not an IP is the Matrix
// server_name `localhost` (local-stack.md §1.4, pitfall 10).
import { join } from "node:path"

export const SERVER_NAME = "localhost"
export const SYNAPSE_PORT = 8008
export const LIVEKIT_PORT = 7880
export const LIVEKIT_TCP_PORT = 7881
export const LIVEKIT_UDP_PORT = 7882
export const AUTH_PORT = 8080

export const homeserverUrl = `http://127.0.0.1:${SYNAPSE_PORT}`
export const authServiceUrl = `http://127.0.0.1:${AUTH_PORT}`
export const livekitUrl = `ws://127.0.0.1:${LIVEKIT_PORT}`
export const livekitHttpUrl = `http://127.0.0.1:${LIVEKIT_PORT}`
export const LIVEKIT_API_KEY = "devkey"
export const LIVEKIT_API_SECRET = "devsecret-at-least-32-characters-long"

// ---------------------------------------------------------------------------------------
// A minimal YAML writer: maps, lists and scalars. Strings are written JSON-quoted, which is
// valid YAML double-quoted syntax, so no value can be misread (e.g. `24h`, `no`, `*`).

export type Yaml = string | number | boolean | null | ReadonlyArray<Yaml> | { readonly [key: string]: Yaml }

const scalar = (v: string | number | boolean | null): string => (typeof v === "string" ? JSON.stringify(v) : String(v))

const isScalar = (v: Yaml): v is string | number | boolean | null => v === null || typeof v !== "object"

const emit = (value: Yaml, indent: string): Array<string> => {
  if (isScalar(value)) return [`${indent}${scalar(value)}`]
  if (Array.isArray(value)) {
    const list = value as ReadonlyArray<Yaml>
    if (list.length === 0) return [`${indent}[]`]
    return list.flatMap((item) => {
      if (isScalar(item)) return [`${indent}- ${scalar(item)}`]
      const [first = "", ...rest] = emit(item, `${indent}  `)
      return [`${indent}- ${first.trimStart()}`, ...rest]
    })
  }
  const entries = Object.entries(value as { readonly [key: string]: Yaml })
  if (entries.length === 0) return [`${indent}{}`]
  return entries.flatMap(([k, v]) => {
    const key = /^[A-Za-z_][A-Za-z0-9_.]*$/.test(k) ? k : JSON.stringify(k)
    if (isScalar(v)) return [`${indent}${key}: ${scalar(v)}`]
    if (Array.isArray(v) && v.length === 0) return [`${indent}${key}: []`]
    if (!Array.isArray(v) && Object.keys(v).length === 0) return [`${indent}${key}: {}`]
    return [`${indent}${key}:`, ...emit(v, `${indent}  `)]
  })
}

export const toYaml = (value: Yaml): string => `${emit(value, "").join("\n")}\n`

// ---------------------------------------------------------------------------------------

const unlimited = { per_second: 10000, burst_count: 10000 }

/** homeserver.yaml per local-stack.md §1.4, with all data below `dataDir` (absolute). */
export const homeserverSettings = (opts: {
  readonly dataDir: string
  readonly registrationSharedSecret: string
  readonly port?: number
}): { readonly [key: string]: Yaml } => ({
    server_name: SERVER_NAME,
    public_baseurl: `http://127.0.0.1:${opts.port ?? SYNAPSE_PORT}/`,
    report_stats: false,
    pid_file: join(opts.dataDir, "homeserver.pid"),
    signing_key_path: join(opts.dataDir, "signing.key"),
    media_store_path: join(opts.dataDir, "media_store"),
    database: { name: "sqlite3", args: { database: join(opts.dataDir, "homeserver.db") } },
    listeners: [
      {
        port: opts.port ?? SYNAPSE_PORT,
        bind_addresses: ["127.0.0.1"],
        type: "http",
        tls: false,
        x_forwarded: false,
        resources: [{ names: ["client", "federation"], compress: false }]
      }
    ],
    registration_shared_secret: opts.registrationSharedSecret,
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    presence: { enabled: false },
    enable_metrics: false,
    url_preview_enabled: false,
    // MSC4140 (delayed events) is off unless this is set.
    max_event_delay_duration: "24h",
    experimental_features: {
      msc4222_enabled: true,
      msc4354_enabled: true,
      msc4143_enabled: true
    },
    matrix_rtc: { transports: [{ type: "livekit", livekit_service_url: authServiceUrl }] },
    extra_well_known_client_content: {
      "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: authServiceUrl }]
    },
    rc_message: unlimited,
    rc_delayed_event_mgmt: unlimited,
    rc_registration: unlimited,
    rc_login: { address: unlimited, account: unlimited, failed_attempts: unlimited },
    rc_joins: { local: unlimited, remote: unlimited },
    rc_joins_per_room: unlimited,
    rc_invites: { per_room: unlimited, per_user: unlimited, per_issuer: unlimited },
    rc_room_creation: unlimited
  })

export const homeserverConfig = (opts: Parameters<typeof homeserverSettings>[0]): string => toYaml(homeserverSettings(opts))

/** livekit.yaml per local-stack.md §3.4: loopback only, loopback-only STUN, webhook to the auth service. */
export const livekitSettings = (): { readonly [key: string]: Yaml } => ({
    port: LIVEKIT_PORT,
    bind_addresses: ["127.0.0.1"],
    rtc: {
      tcp_port: LIVEKIT_TCP_PORT,
      udp_port: LIVEKIT_UDP_PORT,
      use_external_ip: false,
      node_ip: "127.0.0.1",
      enable_loopback_candidate: true,
      interfaces: { includes: ["lo"] },
      // A dummy loopback entry keeps LiveKit's public default STUN list out of join responses.
      stun_servers: ["127.0.0.1:3478"]
    },
    keys: { [LIVEKIT_API_KEY]: LIVEKIT_API_SECRET },
    room: { auto_create: false },
    logging: { level: "info" },
    turn: { enabled: false },
    webhook: { api_key: LIVEKIT_API_KEY, urls: [`${authServiceUrl}/sfu_webhook`] }
  })

export const livekitConfig = (): string => toYaml(livekitSettings())

/** Environment of the auth service (auth-service.md §4, local-stack.md §4). */
export const authServiceEnv = (): Record<string, string> => ({
  LIVEKIT_URL: livekitUrl,
  LIVEKIT_KEY: LIVEKIT_API_KEY,
  LIVEKIT_SECRET: LIVEKIT_API_SECRET,
  LIVEKIT_JWT_BIND: `127.0.0.1:${AUTH_PORT}`,
  LIVEKIT_FULL_ACCESS_HOMESERVERS: SERVER_NAME,
  LIVEKIT_CS_API_URL_OVERRIDES: `${SERVER_NAME}=${homeserverUrl}`,
  MATRIXRTC_USERINFO_URLS: `${SERVER_NAME}=${homeserverUrl}`
})
