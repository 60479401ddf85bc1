// matrix-js-sdk clients for the benchmark: the observer and the reference path's client (shared with the tests).
export { type Credentials, loginNewDevice, logoutDevice as logout } from "@matrixrtc-effect/devstack"
export {
  type RtcObserver as Observer,
  startRtcObserver as startObserver,
  startSyncedClient
} from "@matrixrtc-effect/devstack/observers"
