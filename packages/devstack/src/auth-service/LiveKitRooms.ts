/**
 * LiveKit RoomService calls of the auth service (auth-service.md §2.5):
 * `CreateRoom{name, empty_timeout:300, departure_timeout:20, max_participants:0}`
 * and `GetParticipant` (for delegation). Real = livekit-server-sdk Twirp client.
 */
import { Context, Data, Effect, Layer, Redacted } from "effect"
import { RoomServiceClient, TwirpError } from "livekit-server-sdk"
import { AuthServiceSettings } from "./Settings.ts"

export class LiveKitRoomsError extends Data.TaggedError("LiveKitRoomsError")<{
  readonly operation: "CreateRoom" | "GetParticipant"
  readonly cause: unknown
}> {}

export interface Service {
  readonly createRoom: (name: string) => Effect.Effect<void, LiveKitRoomsError>
  /** `true` if present, `false` on Twirp `not_found`. */
  readonly hasParticipant: (room: string, identity: string) => Effect.Effect<boolean, LiveKitRoomsError>
}

export class LiveKitRooms extends Context.Tag("@matrixrtc-effect/devstack/auth-service/LiveKitRooms")<
  LiveKitRooms,
  Service
>() {}

export const roomOptions = { emptyTimeout: 300, departureTimeout: 20, maxParticipants: 0 } as const

/** `ws://` → `http://`, `wss://` → `https://` (what server-sdk-go does with `LIVEKIT_URL`). */
export const httpUrlOf = (liveKitUrl: string): string => liveKitUrl.replace(/^ws(s?):\/\//i, "http$1://")

export const make: Effect.Effect<Service, never, AuthServiceSettings> = Effect.gen(function*() {
  const settings = yield* AuthServiceSettings
  const client = new RoomServiceClient(
    httpUrlOf(settings.liveKitUrl),
    settings.apiKey,
    Redacted.value(settings.apiSecret)
  )
  return LiveKitRooms.of({
    createRoom: (name) =>
      Effect.tryPromise({
        try: () => client.createRoom({ name, ...roomOptions }),
        catch: (cause) => new LiveKitRoomsError({ operation: "CreateRoom", cause })
      }).pipe(Effect.asVoid),
    hasParticipant: (room, identity) =>
      Effect.tryPromise({
        try: () => client.getParticipant(room, identity),
        catch: (cause) => cause
      }).pipe(
        Effect.as(true),
        Effect.catchAll((cause) =>
          cause instanceof TwirpError && cause.code === "not_found"
            ? Effect.succeed(false)
            : Effect.fail(new LiveKitRoomsError({ operation: "GetParticipant", cause }))
        )
      )
  })
})

export const layer: Layer.Layer<LiveKitRooms, never, AuthServiceSettings> = Layer.effect(LiveKitRooms, make)

/** In-memory rooms for tests: records created names; participants are whatever the test puts in. */
export interface Memory {
  readonly created: Array<string>
  readonly participants: Set<string>
  failCreate: boolean
  readonly service: Service
}

export const makeMemory = (): Memory => {
  const memory: Memory = {
    created: [],
    participants: new Set(),
    failCreate: false,
    service: LiveKitRooms.of({
      createRoom: (name) =>
        Effect.suspend(() => {
          if (memory.failCreate) return Effect.fail(new LiveKitRoomsError({ operation: "CreateRoom", cause: "test" }))
          memory.created.push(name)
          return Effect.void
        }),
      hasParticipant: (room, identity) => Effect.sync(() => memory.participants.has(JSON.stringify([room, identity])))
    })
  }
  return memory
}

export const layerMemory = (memory: Memory): Layer.Layer<LiveKitRooms> => Layer.succeed(LiveKitRooms, memory.service)
