// What the SFU itself says: LiveKit's RoomService API (shared with the tests).
export { type Sfu, sfuClient } from "@matrixrtc-effect/devstack/observers"
