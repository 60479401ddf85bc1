// Programmatic API of the local MatrixRTC stack (Synapse + livekit-server + auth service).
export {
  type Options,
  type ServiceName,
  type StackInfo,
  type StackUser,
  type UpOptions,
  type UpResult,
  acquireTestLease,
  activeLeases,
  describeStack,
  down,
  readStack,
  releaseTestLease,
  startService,
  startedByTests,
  status,
  freshDeviceId,
  stopService,
  up,
  userAt
} from "./stack.ts"
export {
  AUTH_PORT,
  LIVEKIT_API_KEY,
  LIVEKIT_API_SECRET,
  LIVEKIT_PORT,
  LIVEKIT_TCP_PORT,
  LIVEKIT_UDP_PORT,
  SERVER_NAME,
  SYNAPSE_PORT,
  authServiceUrl,
  homeserverUrl,
  livekitHttpUrl,
  livekitUrl
} from "./config.ts"
export {
  type Credentials,
  type RegisteredUser,
  loginNewDevice,
  logoutDevice,
  MatrixHttpError,
  matrixRequest,
  registerUser
} from "./matrix.ts"
export { CALL_MEMBER_EVENT } from "./provision.ts"
export { boundUdpPorts, listeningTcpPorts } from "./proc.ts"
export { StackError } from "./util.ts"
