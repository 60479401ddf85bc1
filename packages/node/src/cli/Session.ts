/**
 * From CLI credentials to a logged-in Matrix client (matrix-js-sdk adapter).
 * A homeserver that refuses the token or the password is `NotAuthenticated`
 * (exit 3; the adapter's layer says so); other homeserver failures stay `MatrixError`.
 */
import type { MatrixClient, MatrixError, NotAuthenticated } from "@matrixrtc-effect/core"
import { layerLogin, type LoginOptions, type MatrixSdkClient } from "@matrixrtc-effect/matrix-js-sdk"
import { Layer, Option } from "effect"
import type { Credentials } from "./Cli.ts"

export const loginOptions = (homeserver: string, credentials: Credentials, sync = true): LoginOptions => {
  const common = { homeserverUrl: homeserver.replace(/\/+$/, ""), sync }
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
