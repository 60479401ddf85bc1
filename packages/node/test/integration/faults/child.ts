/**
 * A call in its own process, for the SIGKILL scenario: joins with our Node layers,
 * prints `JOINED <identity>` and stays until killed.
 * Input: env FAULTS_CHILD = JSON { homeserverUrl, roomId, userId, deviceId, accessToken, delayMs }.
 */
import { Call, type Ids } from "@matrixrtc-effect/core"
import { NodeCall } from "@matrixrtc-effect/node"
import { Effect, Layer, Redacted } from "effect"

const input = JSON.parse(process.env["FAULTS_CHILD"] ?? "{}") as {
  homeserverUrl: string
  roomId: string
  userId: string
  deviceId: string
  accessToken: string
  delayMs: number
}

const program = Effect.gen(function* () {
  const call = yield* Call.join(input.roomId as Ids.RoomId, { delayMs: input.delayMs, heartbeatMs: 2_000 })
  yield* Effect.sync(() => process.stdout.write(`JOINED ${call.connection.identity}\n`))
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  Effect.provide(
    NodeCall.layer({
      matrix: {
        homeserverUrl: input.homeserverUrl,
        accessToken: Redacted.make(input.accessToken),
        userId: input.userId,
        deviceId: input.deviceId
      }
    }).pipe(Layer.orDie)
  )
)

Effect.runPromise(program).catch((e) => {
  process.stdout.write(`FAILED ${String(e)}\n`)
  process.exit(1)
})
