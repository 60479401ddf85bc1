import { Effect, Option } from "effect"
import type { Credentials } from "./Cli.ts"
import type { Output } from "./Output.ts"

export type Media =
  | { readonly _tag: "None" }
  | { readonly _tag: "Tone"; readonly frequencyHz: number }
  | { readonly _tag: "Wav"; readonly path: string }

export interface JoinOptions {
  readonly homeserver: string
  readonly credentials: Credentials
  readonly roomId: string
  readonly media: Media
  readonly duration: Option.Option<number>
}

export const run = (_options: JoinOptions, _out: Output): Effect.Effect<void, unknown> => Effect.dieMessage("join: not wired yet")
