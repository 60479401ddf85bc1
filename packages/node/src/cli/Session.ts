/**
 * From CLI credentials to a logged-in Matrix client (matrix-js-sdk adapter).
 * A homeserver that refuses the token or the password is `NotAuthenticated`
 * (exit 3; the adapter's layer says so); other homeserver failures stay `MatrixError`.
 */
import type { MatrixClient, MatrixError, NotAuthenticated } from "@matrixrtc-effect/core"
import { layerLogin, type LoginOptions, MatrixSdkClient } from "@matrixrtc-effect/matrix-js-sdk"
import { Effect, Layer, Option } from "effect"
import type { Credentials } from "./Cli.ts"
import { UsageError } from "./Errors.ts"
import type { Output } from "./Output.ts"

export const loginOptions = (homeserver: string, credentials: Credentials, sync = true): LoginOptions => {
  const common = { homeserverUrl: homeserver, sync }
  const deviceId = Option.getOrUndefined(credentials.deviceId)
  return credentials._tag === "AccessToken"
    ? { ...common, accessToken: credentials.accessToken, ...(deviceId !== undefined ? { deviceId } : {}) }
    : {
      ...common,
      user: credentials.user,
      password: credentials.password,
      initialDeviceDisplayName: "matrixrtc CLI",
      ...(deviceId !== undefined ? { deviceId } : {})
    }
}

/** The Matrix client layer for these credentials. */
export const layer = (
  homeserver: string,
  credentials: Credentials
): Layer.Layer<MatrixClient | MatrixSdkClient, NotAuthenticated | MatrixError> =>
  layerLogin(loginOptions(homeserver, credentials))

/**
 * Right after logging in: the access token a password login got becomes a secret of this run (the given token and
 * password already are), and a `--device-id` given with an access token must be the token's device, as /whoami
 * tells: the token decides the device, so another id would only be pretended.
 */
export const afterLogin = (credentials: Credentials, out: Output): Effect.Effect<void, UsageError, MatrixSdkClient> =>
  Effect.gen(function*() {
    const client = yield* MatrixSdkClient
    const token = client.getAccessToken()
    if (token !== null) out.addSecret(token)
    if (credentials._tag === "AccessToken" && Option.isSome(credentials.deviceId)) {
      const actual = client.getDeviceId()
      if (actual !== credentials.deviceId.value) {
        return yield* new UsageError({
          message: `--device-id ${credentials.deviceId.value} is not the access token's device (${actual ?? "unknown"}); leave it out, or use that token's device id`
        })
      }
    }
  })
