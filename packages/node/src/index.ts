export * as Audio from "./Audio.ts"
export { AudioFailed } from "./Audio.ts"
export type { Pcm } from "./Audio.ts"
export * as NodeLiveKit from "./NodeLiveKit.ts"
export type {
  AudioInput,
  NodeConnection,
  NodeLiveKitOptions,
  NodeLiveKitService,
  PublishedAudio,
  RemoteAudioFrame,
  RemoteAudioOptions
} from "./NodeLiveKit.ts"
export * as NodeCall from "./NodeCall.ts"
export type { NodeCallConfig, NodeCallServices } from "./NodeCall.ts"
