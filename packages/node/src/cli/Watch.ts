import { Effect } from "effect"
import type { Credentials } from "./Cli.ts"
import type { Output } from "./Output.ts"

export interface WatchOptions {
  readonly homeserver: string
  readonly credentials: Credentials
  readonly roomId: string
}

export const run = (_options: WatchOptions, _out: Output): Effect.Effect<void, unknown> => Effect.dieMessage("watch: not wired yet")
