/**
 * Our path: `Call.join` from @matrixrtc-effect/core on the Node layers
 * (matrix-js-sdk adapter for the homeserver, AuthServiceHttp, rtc-node LiveKit),
 * run from a long-lived ManagedRuntime so that each join is timed alone, like
 * the reference path whose client is also logged in and synced beforehand.
 */
import { FetchHttpClient } from "@effect/platform"
import { type AuthService, AuthServiceHttp, Call, type Ids, JoinCache, type LiveKit, type MatrixClient } from "@matrixrtc-effect/core"
import { layerLogin } from "@matrixrtc-effect/matrix-js-sdk"
import { NodeCall } from "@matrixrtc-effect/node"
import { Effect, Exit, Layer, ManagedRuntime, Redacted, Scope } from "effect"
import type { Credentials } from "@matrixrtc-effect/devstack"

export interface OurCall {
  readonly identity: string
  readonly roomName: string
  readonly call: Call.Call
  /** Closes the call's scope: the library's leave. */
  readonly leave: () => Promise<void>
}

export interface Ours {
  /**
   * `Call.join` on the layer's JoinCache (what an app gets: discovery, server support and the OpenID token of an
   * earlier join are reused), or with `fresh` on an empty one (the first join of a session).
   */
  readonly join: (roomId: string, options?: Call.JoinOptions, fresh?: boolean) => Promise<OurCall>
  /** `Call.prepare`: what an app does while the user is in its lobby. */
  readonly prepare: (roomId: string) => Promise<Call.PreparedJoin>
  readonly dispose: () => Promise<void>
}

type AnyRuntime = ManagedRuntime.ManagedRuntime<MatrixClient | AuthService | LiveKit, unknown>

const makeOurs = async (runtime: AnyRuntime): Promise<Ours> => {
  await runtime.runPromise(Effect.void) // log in and sync now, not inside the first timed join
  return {
    join: async (roomId, options, fresh = false) => {
      const scope = await runtime.runPromise(Scope.make())
      const join = Call.join(roomId as Ids.RoomId, options)
      try {
        const call = await runtime.runPromise(
          (fresh ? Effect.provide(join, JoinCache.layer()) : join).pipe(Scope.extend(scope))
        )
        return {
          identity: call.connection.identity,
          roomName: call.connection.roomName,
          call,
          leave: () => runtime.runPromise(Scope.close(scope, Exit.void))
        }
      } catch (e) {
        await runtime.runPromise(Scope.close(scope, Exit.void))
        throw e
      }
    },
    prepare: (roomId) => runtime.runPromise(Call.prepare(roomId as Ids.RoomId)),
    dispose: () => runtime.dispose()
  }
}

const tokenLogin = (homeserverUrl: string, creds: Credentials) => ({
  homeserverUrl,
  accessToken: Redacted.make(creds.accessToken),
  userId: creds.userId,
  deviceId: creds.deviceId
})

/** The real Node stack: NodeCall.layer (rtc-node connects to the SFU). */
export const startOurs = (homeserverUrl: string, creds: Credentials): Promise<Ours> =>
  makeOurs(ManagedRuntime.make(NodeCall.layer({ matrix: tokenLogin(homeserverUrl, creds) })) as unknown as AnyRuntime)

/**
 * Our library with a LiveKit layer that does not talk to the SFU (for the scale run):
 * homeserver and auth service are real, the connect returns at once.
 */
export const startOursNoMedia = (homeserverUrl: string, creds: Credentials, liveKit: Layer.Layer<LiveKit>): Promise<Ours> =>
  makeOurs(
    ManagedRuntime.make(
      Layer.mergeAll(
        layerLogin(tokenLogin(homeserverUrl, creds)),
        AuthServiceHttp.layerWith({}).pipe(Layer.provideMerge(FetchHttpClient.layer)),
        JoinCache.layer(),
        liveKit
      )
    ) as unknown as AnyRuntime
  )
