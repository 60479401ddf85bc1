/**
 * The MatrixRTC auth service (lk-jwt-service HTTP API), configured from the
 * environment: `node packages/devstack/src/auth-service/main.ts`.
 *
 * LIVEKIT_URL, LIVEKIT_KEY, LIVEKIT_SECRET, LIVEKIT_FULL_ACCESS_HOMESERVERS
 * (required; a list or *); LIVEKIT_JWT_BIND (default 127.0.0.1:8080) or
 * LIVEKIT_JWT_PORT; LIVEKIT_CS_API_URL_OVERRIDES and MATRIXRTC_USERINFO_URLS
 * (`server=url,…`); LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS (default 0 = off).
 * Delayed-leave delegation is real (restart every 80 % of delay_timeout, send
 * on leave); it needs LiveKit webhooks to `/sfu_webhook` or the sanity check.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import * as AuthService from "./AuthService.ts"

NodeRuntime.runMain(Layer.launch(AuthService.layerConfig))
