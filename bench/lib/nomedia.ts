/**
 * A LiveKit layer without media and without an SFU connection, for the scale
 * benchmark: `connect` reads the identity and room from the JWT the real auth
 * service minted and returns a connection that is simply "connected". What the
 * scale run measures is then our library plus matrix-js-sdk against the real
 * homeserver and auth service, not libwebrtc.
 */
import { LiveKit } from "@matrixrtc-effect/core"
import type { ConnectionState, LiveKitConnection, RemoteParticipant } from "@matrixrtc-effect/core"
import { Effect, Layer, Redacted, Stream } from "effect"

const claimsOf = (jwt: string): { identity: string; room: string } => {
  try {
    const payload = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as {
      sub?: string
      video?: { room?: string }
    }
    return { identity: payload.sub ?? "", room: payload.video?.room ?? "" }
  } catch {
    return { identity: "", room: "" }
  }
}

export const noMediaLiveKit: Layer.Layer<LiveKit> = Layer.succeed(
  LiveKit,
  LiveKit.of({
    connect: (_url, jwt) =>
      Effect.sync((): LiveKitConnection => {
        const { identity, room } = claimsOf(Redacted.value(jwt))
        return {
          identity,
          roomName: room,
          connectionState: Effect.succeed<ConnectionState>("connected"),
          // The current state, then nothing: a stream that ended would mean "the SFU connection ended".
          connectionStates: Stream.concat(Stream.make<[ConnectionState]>("connected"), Stream.never),
          remoteParticipants: Effect.succeed<ReadonlyArray<RemoteParticipant>>([]),
          remoteParticipantsChanges: Stream.concat(Stream.make<[ReadonlyArray<RemoteParticipant>]>([]), Stream.never),
          disconnectReasons: Stream.never,
          disconnect: Effect.void
        }
      })
  })
)
