/**
 * What the CLI prints. Human mode writes readable lines; `--json` writes one JSON
 * object per line, each with an `"event"` field. Every line goes through a
 * redactor that knows the secrets this process holds: the access token and password
 * it was given, the access token a password login got (`Session.afterLogin`), and
 * the OpenID token and LiveKit JWT `doctor` requests. So a secret that slips into an
 * error text is still never printed. The OpenID token and JWT of a `join` stay inside
 * core (as `Redacted`, scrubbed from SDK errors) and never reach the CLI.
 */
import { Console, Effect, Predicate, Redacted } from "effect"

export interface Output {
  readonly json: boolean
  /** Registers a secret learnt at run time (e.g. a LiveKit JWT) for redaction. */
  readonly addSecret: (secret: string) => void
  /** One event: `fields` in JSON mode, `human` (if any) otherwise. */
  readonly event: (event: string, fields: Record<string, unknown>, human?: string) => Effect.Effect<void>
  /** A line for humans only (JSON mode prints nothing). */
  readonly info: (line: string) => Effect.Effect<void>
  /** A failure: its message on stderr, plus `{"event":"error"}` on stdout in JSON mode. */
  readonly error: (error: unknown) => Effect.Effect<void>
}

export const make = (options: {
  readonly json: boolean
  readonly secrets: ReadonlyArray<Redacted.Redacted<string> | string | undefined>
}): Output => {
  const secrets = new Set<string>()
  const addSecret = (s: string) => {
    // Very short values would redact ordinary words; real tokens are long.
    if (s.length >= 6) secrets.add(s)
  }
  for (const s of options.secrets) if (s !== undefined) addSecret(Redacted.isRedacted(s) ? Redacted.value(s) : s)
  const redact = (text: string) => {
    let out = text
    for (const s of secrets) out = out.split(s).join("<redacted>")
    return out
  }
  const stringify = (value: unknown) =>
    redact(JSON.stringify(value, (_k, v) => (Redacted.isRedacted(v) ? "<redacted>" : typeof v === "bigint" ? String(v) : v)))
  return {
    json: options.json,
    addSecret,
    event: (event, fields, human) =>
      options.json
        ? Console.log(stringify({ event, ...fields }))
        : human === undefined
        ? Effect.void
        : Console.log(redact(human)),
    info: (line) => (options.json ? Effect.void : Console.log(redact(line))),
    error: (error) =>
      Effect.gen(function*() {
        // Messages carry servers' `error` texts; stderr is a terminal in JSON mode too.
        yield* Console.error(redact(`error: ${printable(errorMessage(error))}`))
        if (options.json) yield* Console.log(stringify({ event: "error", error: errorJson(error) }))
      })
  }
}

// C0 and C1 controls (ESC and CSI start terminal escape sequences, CR and LF forge lines), and the bidirectional
// marks, embeddings and isolates, which reorder what a line shows.
const controlChars = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/**
 * A string from outside (room state, a server's answer) made safe to print in human
 * mode: control characters become `\uXXXX`. Applied to each such string where it is
 * put into a line, since the lines themselves may contain our own newlines.
 * JSON mode is for programs: JSON.stringify escapes C0 controls there, the rest is left as it came.
 */
export const printable = (text: string): string =>
  text.replace(controlChars, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

export const errorMessage = (error: unknown): string =>
  Predicate.hasProperty(error, "message") && typeof error.message === "string" && error.message !== ""
    ? error.message
    : String(error)

/**
 * The error's own fields (tag, reason, status, errcode, …) and its message. The
 * `cause` is reduced to its message: it is a lower-level object that may carry
 * request details we do not want on screen.
 */
export const errorJson = (error: unknown): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  if (Predicate.isObject(error)) {
    for (const [k, v] of Object.entries(error)) {
      if (k === "cause") {
        if (v !== undefined) out["cause"] = errorMessage(v)
      } else if (v !== undefined && typeof v !== "function") out[k] = v
    }
  }
  out["message"] = errorMessage(error)
  return out
}
