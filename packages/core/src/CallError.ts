/**
 * The typed failures of the call lifecycle. Each one carries a `reason` to
 * branch on and the lower-level `cause`; Matrix errcodes survive in `errcode`.
 * Messages never contain tokens: secrets travel as `Redacted` and are not fields here.
 */
import { Schema } from "effect"
import type { MatrixError } from "./MatrixClient.ts"
import * as MatrixErrors from "./MatrixErrors.ts"

const httpDetail = {
  status: Schema.optional(Schema.Number),
  errcode: Schema.optional(Schema.String),
  error: Schema.optional(Schema.String)
}

const describe = (head: string, e: { status?: number | undefined; errcode?: string | undefined; error?: string | undefined }) =>
  [head, e.status !== undefined ? `HTTP ${e.status}` : undefined, e.errcode, e.error].filter(Boolean).join(": ")

/**
 * There is no Matrix session, the homeserver no longer accepts its access token, or it refused a password login
 * (wrong user or password, deactivated account).
 */
export class NotAuthenticated extends Schema.TaggedError<NotAuthenticated>()("NotAuthenticated", {
  reason: Schema.Literal("NoSession", "TokenRejected", "LoginRejected"),
  ...httpDetail,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    switch (this.reason) {
      case "NoSession":
        return "not logged in to a Matrix homeserver"
      case "TokenRejected":
        return describe("the homeserver rejected the access token", this)
      case "LoginRejected":
        return describe("the homeserver refused the login", this)
    }
  }
}

const refused = (reason: "TokenRejected" | "LoginRejected") => (e: MatrixError): NotAuthenticated =>
  new NotAuthenticated({ reason, status: e.status, errcode: e.errcode, error: e.error, cause: e })

/** A homeserver answer that refused our access token, as NotAuthenticated (the answer's details kept). */
export const tokenRejected = refused("TokenRejected")

/** A homeserver answer that refused a password login, as NotAuthenticated (the answer's details kept). */
export const loginRejected = refused("LoginRejected")

/** Getting a LiveKit JWT failed: discovery, the OpenID token or the auth service itself. */
export class JwtFetchFailed extends Schema.TaggedError<JwtFetchFailed>()("JwtFetchFailed", {
  reason: Schema.Literal(
    "NoAuthService", // no transport on the transports endpoint, .well-known or in config
    "InsecureUrl", // an OpenID token may only go to https or loopback
    "OpenIdFailed", // the homeserver would not issue an OpenID token
    "Unreachable", // network failure talking to the auth service (after bounded retries)
    "Timeout",
    "Rejected", // the auth service answered with an error status
    "BadResponse" // the answer did not decode as {url, jwt|token}, or its JWT is for another LiveKit identity
  ),
  endpoint: Schema.optional(Schema.String),
  ...httpDetail,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    switch (this.reason) {
      case "NoAuthService":
        return "this homeserver has no MatrixRTC auth service configured (no rtc transports, no .well-known rtc_foci, no configured URL)"
      case "InsecureUrl":
        return `refusing to send an OpenID token to ${this.endpoint ?? "a non-https URL"}: only https or loopback URLs, without userinfo, are allowed`
      case "OpenIdFailed":
        return describe("the homeserver did not issue an OpenID token", this)
      case "Unreachable":
        return `the MatrixRTC auth service at ${this.endpoint ?? "?"} is unreachable`
      case "Timeout":
        return `the MatrixRTC auth service at ${this.endpoint ?? "?"} did not answer in time`
      case "Rejected":
        return describe(`the MatrixRTC auth service at ${this.endpoint ?? "?"} refused the request`, this)
      case "BadResponse":
        // Its cause is one of our own fixed texts (never the answer, which may carry the JWT).
        return `the MatrixRTC auth service at ${this.endpoint ?? "?"} sent an unusable answer: ${
          typeof this.cause === "string" ? this.cause : "not {url, jwt}"
        }`
    }
  }
}

/** Publishing the call-membership state event failed; it is never swallowed. */
export class MembershipFailed extends Schema.TaggedError<MembershipFailed>()("MembershipFailed", {
  reason: Schema.Literal("Forbidden", "Rejected", "Unreachable", "RateLimited", "Timeout"),
  ...httpDetail,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return this.reason === "Forbidden"
      ? describe(
        "not allowed to join the call in this room: not joined to the room (or may not read it), or below the power level for org.matrix.msc3401.call.member",
        this
      )
      : describe(`publishing the call membership failed (${this.reason})`, this)
  }
}

/** Connecting to the LiveKit SFU failed. */
export class ConnectFailed extends Schema.TaggedError<ConnectFailed>()("ConnectFailed", {
  reason: Schema.Literal("Timeout", "Rejected", "RoomNotFound", "Transport", "Disconnected"),
  url: Schema.optional(Schema.String),
  ...httpDetail,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return describe(`could not connect to the LiveKit SFU${this.url ? ` at ${this.url}` : ""} (${this.reason})`, this)
  }
}

export type CallError = NotAuthenticated | JwtFetchFailed | MembershipFailed | ConnectFailed
export const CallError = Schema.Union(NotAuthenticated, JwtFetchFailed, MembershipFailed, ConnectFailed)
export const isCallError = Schema.is(CallError)

const membershipFailure = (e: MatrixError, kind: MatrixErrors.MatrixErrorKind): MembershipFailed["reason"] => {
  switch (kind._tag) {
    case "Forbidden":
      return "Forbidden"
    case "RateLimited":
      return "RateLimited"
    case "Transient":
      // 5xx are transient too, but the server did answer: those stay "Rejected".
      return e.reason === "Timeout" ? "Timeout" : e.reason === "Transport" ? "Unreachable" : "Rejected"
    default:
      return "Rejected"
  }
}

/**
 * A homeserver refusal on the way to (or of) our membership, as the join's failure: a dead access token is
 * NotAuthenticated, whichever request finds it (with `prepared`, the delayed leave is the join's first homeserver
 * request); anything else is MembershipFailed.
 */
export const joinFailure = (e: MatrixError): MembershipFailed | NotAuthenticated => {
  const kind = MatrixErrors.classify(e)
  return kind._tag === "UnknownToken"
    ? tokenRejected(e)
    : new MembershipFailed({ reason: membershipFailure(e, kind), status: e.status, errcode: e.errcode, error: e.error, cause: e })
}
