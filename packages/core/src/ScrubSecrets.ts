/**
 * Credential scrubbing for text that came from a third-party SDK (error
 * messages, log lines). Our own code keeps secrets in `Redacted`, but SDKs
 * echo request URLs and headers in their errors, and those carry tokens.
 */

/**
 * Strips anything that looks like a credential from a text: `access_token=` query
 * parameters (LiveKit's signal URL carries the JWT that way, and SDK errors echo
 * URLs), bearer values, JWTs and Synapse `syt_` tokens.
 */
export const scrubSecrets = (text: string): string =>
  text
    .replace(/(access_token=)[^&\s)"']+/gi, "$1<redacted>")
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, "$1<redacted>")
    .replace(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?/g, "<redacted-jwt>")
    .replace(/\bsyt_[A-Za-z0-9_]+/g, "<redacted-token>")

/**
 * Keeps the name and a scrubbed message of an SDK error, never the object (it can
 * hold request URLs and headers), so it is safe as the `cause` of a typed error.
 */
export const safeCause = (e: unknown): Error => {
  if (e instanceof Error) {
    const out = new Error(scrubSecrets(e.message))
    out.name = e.name
    return out
  }
  return new Error(scrubSecrets(String(e)))
}
