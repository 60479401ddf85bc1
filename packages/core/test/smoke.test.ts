import { assert, it } from "@effect/vitest"
import { Effect } from "effect"

it.effect("workspace runs Effect tests", () => Effect.sync(() => assert.strictEqual(1 + 1, 2)))
