/**
 * The stack seen through fault proxies: the homeserver, the auth service and the
 * LiveKit signalling connection, each behind its own proxy, with discovery and the
 * JWT answer rewritten so that clients reach every service through the proxies.
 *
 * With `latencyMs` > 0 this emulates clients on a wide-area link (round trip
 * 2 × `latencyMs`) to servers that sit next to each other: the auth service still
 * reaches Synapse and LiveKit directly, and media (UDP) is not delayed.
 */
import type { StackInfo } from "@matrixrtc-effect/devstack"
import { type FaultProxy, startFaultProxy } from "./faultProxy.ts"

export interface ProxiedStack {
  readonly hs: FaultProxy
  readonly auth: FaultProxy
  readonly livekit: FaultProxy
  readonly close: () => Promise<void>
}

export const startProxiedStack = async (stack: StackInfo, latencyMs = 0): Promise<ProxiedStack> => {
  const livekit = await startFaultProxy({ target: stack.livekitUrl, latencyMs })
  const auth = await startFaultProxy({ target: stack.authServiceUrl, latencyMs })
  const hs = await startFaultProxy({ target: stack.homeserverUrl, latencyMs })
  // Low priority, so that faults added later still win.
  auth.addFault({
    method: "POST",
    path: /^\/(sfu\/get|get_token)/,
    priority: -1,
    action: { kind: "replaceBody", body: (b) => b.replaceAll(stack.livekitUrl, livekit.wsUrl) }
  })
  hs.addFault({
    method: "GET",
    path: /\/rtc\/transports/,
    priority: -1,
    action: { kind: "replaceBody", body: (b) => b.replaceAll(stack.authServiceUrl, auth.url) }
  })
  return {
    hs,
    auth,
    livekit,
    close: async () => {
      await Promise.all([hs.close(), auth.close(), livekit.close()])
    }
  }
}
