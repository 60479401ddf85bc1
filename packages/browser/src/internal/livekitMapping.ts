/** livekit-client's states, disconnect reasons and connect errors as the core port's values. */
import { ConnectFailed, LiveKitAdapter } from "@matrixrtc-effect/core"
import type { ConnectionState } from "@matrixrtc-effect/core"
import {
  ConnectionError,
  ConnectionErrorReason,
  ConnectionState as LkConnectionState,
  DisconnectReason as LkDisconnectReason
} from "livekit-client"

export const connectionStateOf = (s: LkConnectionState): ConnectionState => {
  switch (s) {
    case LkConnectionState.Connected:
      return "connected"
    case LkConnectionState.Connecting:
      return "connecting"
    case LkConnectionState.Reconnecting:
    case LkConnectionState.SignalReconnecting:
      return "reconnecting"
    case LkConnectionState.Disconnected:
      return "disconnected"
  }
}

export const disconnectReasonOf = LiveKitAdapter.disconnectReasonOf(LkDisconnectReason)

/**
 * livekit-client reports a refused join as `NotAllowed` with the HTTP status of
 * its `/rtc/validate` probe: 404 is "requested room does not exist" (the room
 * was not created by the auth service and `auto_create` is off).
 */
export const connectFailedOf = (url: string, e: unknown): ConnectFailed => {
  if (e instanceof ConnectionError) {
    const status = typeof e.status === "number" ? e.status : undefined
    const detail = { url, error: e.message, cause: e, ...(status !== undefined ? { status } : {}) }
    switch (e.reason) {
      case ConnectionErrorReason.NotAllowed:
        return new ConnectFailed({ reason: status === 404 ? "RoomNotFound" : "Rejected", ...detail })
      case ConnectionErrorReason.Timeout:
        return new ConnectFailed({ reason: "Timeout", ...detail })
      case ConnectionErrorReason.Cancelled:
      case ConnectionErrorReason.LeaveRequest:
        return new ConnectFailed({ reason: "Disconnected", ...detail })
      default:
        return new ConnectFailed({ reason: "Transport", ...detail })
    }
  }
  return new ConnectFailed({ reason: "Transport", url, error: e instanceof Error ? e.message : String(e), cause: e })
}
