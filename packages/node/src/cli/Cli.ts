/**
 * The `matrixrtc` command line: options, credentials, and the mapping of
 * failures onto exit codes. The commands themselves live in `Join.ts`,
 * `Watch.ts` and `Doctor.ts`.
 */
import { Command, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient } from "@effect/platform"
import { Config, Effect, Option, Redacted, Schema } from "effect"
import * as Doctor from "./Doctor.ts"
import * as Join from "./Join.ts"
import { ExitCode } from "./Main.ts"
import * as Output from "./Output.ts"
import * as Platform from "./Platform.ts"
import * as Watch from "./Watch.ts"

/** A wrong combination of options that @effect/cli cannot express; exit code 2. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { message: Schema.String }) {}

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
const withOutput = <E>(
  out: Output.Output,
  body: Effect.Effect<void, E>
): Effect.Effect<void, Exit> =>
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
      Options.withSchema(Schema.Int.pipe(Schema.between(20, 20_000))),
      Options.optional
    ),
    play: Options.file("play", { exists: "yes" }).pipe(
      Options.withDescription("Publish this WAV file (16-bit PCM), looped"),
      Options.optional
    ),
    duration: Options.integer("duration").pipe(
      Options.withDescription("Leave after this many seconds (default: stay until Ctrl-C or SIGTERM)"),
      Options.withSchema(Schema.Int.pipe(Schema.positive())),
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
        const creds = yield* credentials(o)
        yield* Join.run({
          homeserver: o.homeserver,
          credentials: creds,
          roomId: o.room,
          media: Option.isSome(o.tone)
            ? { _tag: "Tone", frequencyHz: o.tone.value }
            : Option.isSome(o.play)
            ? { _tag: "Wav", path: o.play.value }
            : { _tag: "None" },
          duration: o.duration
        }, out)
      })
    )
  }
).pipe(Command.withDescription("Join the room's call and show members and LiveKit participants until Ctrl-C, SIGTERM or --duration"))

const watch = Command.make(
  "watch",
  { ...credentialOptions, room, json },
  (o) => {
    const out = Output.make({ json: o.json, secrets: secretsOf(o) })
    return withOutput(
      out,
      Effect.gen(function*() {
        const creds = yield* credentials(o)
        yield* Watch.run({ homeserver: o.homeserver, credentials: creds, roomId: o.room }, out)
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
      const results = yield* Doctor.run({ homeserver: o.homeserver, accessToken: o.accessToken, roomId: o.room }, out)
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

/** The whole CLI as an effect that yields the process exit code. */
export const main = (argv: ReadonlyArray<string>): Effect.Effect<number> =>
  cli(argv).pipe(
    Effect.as(ExitCode.Ok),
    Effect.catchIf(ValidationError.isValidationError, () => Effect.succeed(ExitCode.Usage)),
    Effect.catchTag("Exit", (e) => Effect.succeed(e.code)),
    Effect.provide(Platform.layer)
  )
