/**
 * Wiring of the auth service from the environment. Tests wire `Http.layerServer`
 * with `OpenIdVerifier.layerTest`, `LiveKitRooms.layerMemory` and a delegation
 * of their choice instead.
 */
import { FetchHttpClient } from "@effect/platform"
import { Layer } from "effect"
import * as Delegation from "./Delegation.ts"
import * as Http from "./Http.ts"
import * as LiveKitRooms from "./LiveKitRooms.ts"
import * as OpenIdVerifier from "./OpenIdVerifier.ts"
import * as Settings from "./Settings.ts"

export { Delegation, Http, LiveKitRooms, OpenIdVerifier, Settings }

/** Real services over the given settings (needs nothing else). */
export const layerServices = Delegation.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(OpenIdVerifier.layer, LiveKitRooms.layer)),
  Layer.provideMerge(FetchHttpClient.layer)
)

/** The whole service from the environment: listens until interrupted. */
export const layerConfig = Http.layerServer.pipe(
  Layer.provide(layerServices),
  Layer.provide(Settings.layerConfig)
)
