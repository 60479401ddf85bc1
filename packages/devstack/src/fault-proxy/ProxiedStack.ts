/**
 * The whole stack behind fault proxies: one in front of the homeserver, the auth
 * service and LiveKit's signalling each. Clients pointed at `hs.url` reach the other
 * two through their proxies too, because the discovery answers (transports endpoint,
 * `.well-known`) and the JWT answers (`/sfu/get`, `/get_token`) are rewritten on the
 * way. The rewrites have a negative priority, so faults added later win.
 *
 * `latencyMs` puts every client on an emulated wide-area link (see FaultProxyOptions);
 * the auth service still reaches Synapse and LiveKit directly, like servers that sit
 * next to each other, and media (UDP) is not delayed.
 */
import { type FaultProxy, startFaultProxy } from "./FaultProxy.ts"

export interface ProxiedStack {
  readonly hs: FaultProxy
  readonly auth: FaultProxy
  readonly lk: FaultProxy
  /** Removes every fault; the rewrites stay. */
  readonly clearFaults: () => void
  readonly close: () => Promise<void>
}

export interface ProxiedStackTargets {
  readonly homeserverUrl: string
  readonly authServiceUrl: string
  /** The LiveKit websocket URL (`ws://…`). */
  readonly livekitUrl: string
}

const rewriteJson = (f: (o: Record<string, unknown>) => void) => (body: string) => {
  try {
    const o = JSON.parse(body) as Record<string, unknown>
    f(o)
    return JSON.stringify(o)
  } catch {
    return body
  }
}

const installRewrites = ({ auth, hs, lk }: { hs: FaultProxy; auth: FaultProxy; lk: FaultProxy }) => {
  const toAuth = (t: unknown) => {
    if (typeof t === "object" && t !== null && "livekit_service_url" in t) (t as Record<string, unknown>)["livekit_service_url"] = auth.url
  }
  hs.addFault({
    method: "GET",
    path: /\/org\.matrix\.msc4143\/rtc\/transports/,
    priority: -1,
    action: { kind: "replaceBody", body: rewriteJson((o) => (o["rtc_transports"] as Array<unknown> | undefined)?.forEach(toAuth)) }
  })
  hs.addFault({
    method: "GET",
    path: /^\/\.well-known\/matrix\/client/,
    priority: -1,
    action: { kind: "replaceBody", body: rewriteJson((o) => (o["org.matrix.msc4143.rtc_foci"] as Array<unknown> | undefined)?.forEach(toAuth)) }
  })
  auth.addFault({
    method: "POST",
    path: /^\/(sfu\/get|get_token)/,
    priority: -1,
    action: {
      kind: "replaceBody",
      body: rewriteJson((o) => {
        if (typeof o["url"] === "string") o["url"] = lk.wsUrl
      })
    }
  })
}

export const startProxiedStack = async (targets: ProxiedStackTargets, options: { readonly latencyMs?: number } = {}): Promise<ProxiedStack> => {
  const latencyMs = options.latencyMs ?? 0
  const [hs, auth, lk] = await Promise.all([
    startFaultProxy({ target: targets.homeserverUrl, latencyMs }),
    startFaultProxy({ target: targets.authServiceUrl, latencyMs }),
    startFaultProxy({ target: targets.livekitUrl, latencyMs })
  ])
  installRewrites({ hs, auth, lk })
  return {
    hs,
    auth,
    lk,
    clearFaults: () => {
      for (const p of [hs, auth, lk]) p.clearFaults()
      installRewrites({ hs, auth, lk })
    },
    close: async () => {
      await Promise.all([hs.close(), auth.close(), lk.close()])
    }
  }
}
