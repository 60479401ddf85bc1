/**
 * The `matrixrtc` command line: options, credentials, and the mapping of
 * failures onto exit codes. The commands themselves live in `Join.ts`,
 * `Watch.ts` and `Doctor.ts`.
 */
import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient } from "@effect/platform"
import { MatrixError } from "@matrixrtc-effect/core"
import { Config, Effect, Option, Redacted, Schema } from "effect"
import * as Audio from "../Audio.ts"
import * as Doctor from "./Doctor.ts"
import { HomeserverUnreachable, UsageError } from "./Errors.ts"
import * as Join from "./Join.ts"
import { ExitCode } from "./Main.ts"
import * as Output from "./Output.ts"
import * as Platform from "./Platform.ts"
import * as Watch from "./Watch.ts"

export { HomeserverUnreachable, NotJoined, UsageError } from "./Errors.ts"

/** How a command ended when it did not succeed: the error is already printed. */
export class Exit extends Schema.TaggedError<Exit>()("Exit", { code: Schema.Number }) {}

/** Maps a failure to its documented exit code. */
export const exitCodeOf = (error: unknown): number => {
  switch ((error as { _tag?: unknown } | null)?._tag) {
    case "UsageError":
    case "InvalidId":
      return ExitCode.Usage
    case "NotAuthenticated":
      return ExitCode.NotAuthenticated
    case "JwtFetchFailed":
      return ExitCode.JwtFetchFailed
    case "ConnectFailed":
      return ExitCode.ConnectFailed
    case "MembershipFailed":
      return ExitCode.MembershipFailed
    case "RemovedFromRoom":
    case "NotJoined":
      return ExitCode.RemovedFromRoom
    default:
      return ExitCode.Failure
  }
}

// --- options --------------------------------------------------------------------------

const homeserver = Options.text("homeserver").pipe(
  Options.withDescription("Client-server API base URL of the homeserver, e.g. https://matrix.example.org")
)
/** An optional secret, also read from the environment variable `env`. */
const secretOption = (name: string, env: string, description: string) =>
  Options.redacted(name).pipe(
    Options.withFallbackConfig(Config.redacted(env)),
    Options.withDescription(`${description} (or env ${env})`),
    Options.optional
  )
const accessToken = secretOption("access-token", "MATRIXRTC_ACCESS_TOKEN", "Matrix access token")
const user = Options.text("user").pipe(
  Options.withDescription("User id or localpart to log in with a password"),
  Options.optional
)
const password = secretOption("password", "MATRIXRTC_PASSWORD", "Password for --user")
const deviceId = Options.text("device-id").pipe(
  Options.withDescription("Device id to use (password login reuses it; with a token it must match the token's device)"),
  Options.optional
)
const room = Options.text("room").pipe(Options.withDescription("Room id, e.g. !abc:example.org"))
const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object per line, each with an \"event\" field"))

const credentialOptions = { homeserver, accessToken, user, password, deviceId }

/** `--homeserver` as a URL we can send requests to, checked before any request; without trailing slashes. */
const homeserverUrl = (raw: string): Effect.Effect<string, UsageError> => {
  const url = URL.parse(raw)
  return url !== null && (url.protocol === "http:" || url.protocol === "https:")
    ? Effect.succeed(raw.replace(/\/+$/, ""))
    : Effect.fail(new UsageError({ message: `--homeserver must be an http or https URL, e.g. https://matrix.example.org (got ${JSON.stringify(raw)})` }))
}

/**
 * A Matrix request that got no answer: matrix-js-sdk's error (as the adapter keeps it) says only "fetch failed", so
 * we ask the homeserver once more, directly, for the network's reason. A homeserver that does answer keeps the error.
 */
const explainUnreachable = (homeserver: string) => <A, E>(body: Effect.Effect<A, E>): Effect.Effect<A, E | HomeserverUnreachable> =>
  body.pipe(
    Effect.catchIf(
      (e): e is E & MatrixError => e instanceof MatrixError && (e.reason === "Transport" || e.reason === "Timeout"),
      (e) =>
        Doctor.unreachableReason(homeserver).pipe(
          Effect.provide(FetchHttpClient.layer),
          Effect.flatMap((reason): Effect.Effect<never, E | HomeserverUnreachable> =>
            Option.isSome(reason) ? Effect.fail(new HomeserverUnreachable({ url: homeserver, reason: reason.value })) : Effect.fail(e)
          )
        )
    )
  )

export type Credentials =
  | { readonly _tag: "AccessToken"; readonly accessToken: Redacted.Redacted<string>; readonly deviceId: Option.Option<string> }
  | {
    readonly _tag: "Password"
    readonly user: string
    readonly password: Redacted.Redacted<string>
    readonly deviceId: Option.Option<string>
  }

/** `--user` selects a password login; otherwise an access token is required. */
const credentials = (o: {
  readonly accessToken: Option.Option<Redacted.Redacted<string>>
  readonly user: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
  readonly deviceId: Option.Option<string>
}): Effect.Effect<Credentials, UsageError> => {
  const user = o.user
  if (Option.isSome(user)) {
    return Option.match(o.password, {
      onNone: () => Effect.fail(new UsageError({ message: "--user needs --password (or env MATRIXRTC_PASSWORD)" })),
      onSome: (password) => Effect.succeed({ _tag: "Password" as const, user: user.value, password, deviceId: o.deviceId })
    })
  }
  return Option.match(o.accessToken, {
    onNone: () =>
      Effect.fail(new UsageError({ message: "give --access-token (or env MATRIXRTC_ACCESS_TOKEN), or --user with --password" })),
    onSome: (accessToken) => Effect.succeed({ _tag: "AccessToken" as const, accessToken, deviceId: o.deviceId })
  })
}

const secretsOf = (o: {
  readonly accessToken: Option.Option<Redacted.Redacted<string>>
  readonly password: Option.Option<Redacted.Redacted<string>>
}) => [Option.getOrUndefined(o.accessToken), Option.getOrUndefined(o.password)]

/**
 * Runs a command body with its Output; prints a failure (human line, and JSON
 * with --json) and turns it into `Exit` with the right code.
 */
const withOutput = <A, E>(
  out: Output.Output,
  body: Effect.Effect<A, E>
): Effect.Effect<A, Exit> =>
  body.pipe(
    Effect.catchAll((error) => out.error(error).pipe(Effect.zipRight(Effect.fail(new Exit({ code: exitCodeOf(error) })))))
  )

// --- commands -------------------------------------------------------------------------

const join = Command.make(
  "join",
  {
    ...credentialOptions,
    room,
    tone: Options.integer("tone").pipe(
      Options.withDescription("Publish a sine tone of this frequency (Hz)"),
      Options.withSchema(
        Schema.Int.pipe(Schema.between(20, 20_000)).annotations({ message: () => "--tone must be a whole number of Hz from 20 to 20000" })
      ),
      Options.optional
    ),
    play: Options.file("play", { exists: "yes" }).pipe(
      Options.withDescription("Publish this WAV file (16-bit PCM), looped"),
      Options.optional
    ),
    duration: Options.integer("duration").pipe(
      Options.withDescription("Leave after this many seconds (default: stay until Ctrl-C or SIGTERM)"),
      Options.withSchema(Schema.Int.pipe(Schema.positive()).annotations({ message: () => "--duration must be a whole number of seconds above 0" })),
      Options.optional
    ),
    json
  },
  (o) => {
    const out = Output.make({ json: o.json, secrets: secretsOf(o) })
    return withOutput(
      out,
      Effect.gen(function*() {
        if (Option.isSome(o.tone) && Option.isSome(o.play)) {
          return yield* new UsageError({ message: "--tone and --play cannot be combined" })
        }
        const hs = yield* homeserverUrl(o.homeserver)
        const creds = yield* credentials(o)
        const media: Join.Media = Option.isSome(o.tone)
          ? { _tag: "Tone", frequencyHz: o.tone.value }
          : Option.isSome(o.play)
          ? { _tag: "Wav", path: o.play.value, pcm: yield* Audio.readWav(o.play.value) }
          : { _tag: "None" }
        yield* Join.run({ homeserver: hs, credentials: creds, roomId: o.room, media, duration: o.duration }, out).pipe(
          explainUnreachable(hs)
        )
      })
    )
  }
).pipe(Command.withDescription("Join the room's call and show members and LiveKit participants until Ctrl-C, SIGTERM, SIGHUP or --duration"))

const watch = Command.make(
  "watch",
  { ...credentialOptions, room, json },
  (o) => {
    const out = Output.make({ json: o.json, secrets: secretsOf(o) })
    return withOutput(
      out,
      Effect.gen(function*() {
        const hs = yield* homeserverUrl(o.homeserver)
        const creds = yield* credentials(o)
        yield* Watch.run({ homeserver: hs, credentials: creds, roomId: o.room }, out).pipe(explainUnreachable(hs))
      })
    )
  }
).pipe(Command.withDescription("Print call-membership changes of a room without joining"))

const doctor = Command.make(
  "doctor",
  { homeserver, accessToken, room: room.pipe(Options.optional), json },
  (o) => {
    const out = Output.make({ json: o.json, secrets: [Option.getOrUndefined(o.accessToken)] })
    return Effect.gen(function*() {
      const hs = yield* withOutput(out, homeserverUrl(o.homeserver))
      const results = yield* Doctor.run({ homeserver: hs, accessToken: o.accessToken, roomId: o.room }, out)
      const failed = results.filter((r) => r.status === "fail").length
      const passed = results.filter((r) => r.status === "pass").length
      yield* out.event("summary", { passed, failed }, `${passed} passed, ${failed} failed`)
      if (failed > 0) return yield* new Exit({ code: ExitCode.Failure })
    }).pipe(Effect.provide(FetchHttpClient.layer))
  }
).pipe(Command.withDescription("Check a homeserver's MatrixRTC setup: transports, auth service and CORS, delayed events, LiveKit, power levels"))

export const command = Command.make("matrixrtc").pipe(
  Command.withDescription("Join and watch Matrix calls (MatrixRTC on LiveKit) from the command line"),
  Command.withSubcommands([join, watch, doctor])
)

const cli = Command.run(command, { name: "matrixrtc", version: "0.1.0" })

/**
 * @effect/cli reads its built-in `--log-level` only before a command's own options; it is moved there from
 * wherever it was given, so that it works anywhere, like the other options.
 */
const logLevelFirst = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const [node = "node", bin = "matrixrtc", command, ...rest] = argv
  const i = rest.findIndex((a) => a === "--log-level" || a.startsWith("--log-level="))
  if (command === undefined || command.startsWith("-") || i < 0) return argv
  const taken = rest.splice(i, rest[i] === "--log-level" ? 2 : 1)
  return [node, bin, command, ...taken, ...rest]
}

/**
 * An argument error with `--json`: @effect/cli has printed its text on stderr; a program reading stdout gets the
 * `error` line a JSON run ends with. Secrets given on the command line or in the environment are redacted from it.
 */
const validationErrorJson = (argv: ReadonlyArray<string>, e: ValidationError.ValidationError): Effect.Effect<void> => {
  if (!argv.includes("--json")) return Effect.void
  // Both spellings @effect/cli accepts: `--name value` and `--name=value`.
  const given = (name: string) => {
    const i = argv.indexOf(name)
    if (i >= 0) return argv[i + 1]
    return argv.find((arg) => arg.startsWith(`${name}=`))?.slice(name.length + 1)
  }
  const out = Output.make({
    json: true,
    secrets: [given("--access-token"), given("--password"), process.env["MATRIXRTC_ACCESS_TOKEN"], process.env["MATRIXRTC_PASSWORD"]]
  })
  // HelpRequested carries no error text (and is not an error to the user anyway).
  const text = ValidationError.isHelpRequested(e) ? e._tag : HelpDoc.toAnsiText(e.error).replace(/\u001b\[[0-9;]*m/g, "").trim()
  return out.event("error", { error: { _tag: "ValidationError", type: e._tag, message: text } })
}

/** The whole CLI as an effect that yields the process exit code. */
export const main = (argv: ReadonlyArray<string>): Effect.Effect<number> =>
  cli(logLevelFirst(argv)).pipe(
    Effect.as(ExitCode.Ok),
    Effect.catchIf(
      ValidationError.isValidationError,
      (e) => validationErrorJson(argv, e).pipe(Effect.as(ExitCode.Usage))
    ),
    Effect.catchTag("Exit", (e) => Effect.succeed(e.code)),
    Effect.provide(Platform.layer)
  )
