export * as MatrixJsSdkClient from "./MatrixJsSdkClient.ts"
export { MatrixSdkClient, layerFromClient, layerLogin } from "./MatrixJsSdkClient.ts"
export type { AccessTokenLogin, LoginOptions, PasswordLogin, StartOptions } from "./MatrixJsSdkClient.ts"
export { toMatrixError } from "./errors.ts"
/** Re-exported from core, where they now live, for existing importers. */
export { safeCause, scrubSecrets } from "@matrixrtc-effect/core"
export { CALL_MEMBER_STATE_TYPE, RTC_MEMBER_STICKY_TYPE } from "./callMemberEvents.ts"
export * as SdkLogger from "./SdkLogger.ts"
