/**
 * The CLI's own failures (besides core's call errors); `Cli.exitCodeOf` gives each its exit code.
 * In a module of their own so that the commands can fail with them without importing `Cli.ts`, which imports them.
 */
import { Schema } from "effect"

/** A wrong argument or combination of options that @effect/cli cannot express; exit code 2. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { message: Schema.String }) {}

/**
 * Our user is not joined to the room (a mistyped room id, a room never joined, one left or only invited to),
 * as the first sync shows it; exit code 7, like being removed from the room mid-call.
 */
export class NotJoined extends Schema.TaggedError<NotJoined>()("NotJoined", {
  roomId: Schema.String,
  /** Our membership in the room as the sync knows it, if the room is known at all. */
  membership: Schema.optional(Schema.String)
}) {
  override get message() {
    return `not joined to ${this.roomId}${this.membership === undefined ? " (unknown room, or never joined)" : ` (membership: ${this.membership})`}`
  }
}

/** No answer from the homeserver at all (refused, unknown host, TLS, timeout); exit code 1. */
export class HomeserverUnreachable extends Schema.TaggedError<HomeserverUnreachable>()("HomeserverUnreachable", {
  url: Schema.String,
  /** The network's reason, e.g. `ECONNREFUSED` or `ENOTFOUND`. */
  reason: Schema.String
}) {
  override get message() {
    return `cannot reach the homeserver at ${this.url} (${this.reason})`
  }
}
