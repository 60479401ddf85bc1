/**
 * Local media (microphone, camera) that could not be captured or published.
 * Not fatal for a call: the SFU connection stays up without that track.
 */
import { Schema } from "effect"

export class MediaFailed extends Schema.TaggedError<MediaFailed>()("MediaFailed", {
  source: Schema.Literal("microphone", "camera"),
  reason: Schema.Literal("PermissionDenied", "DeviceNotFound", "Publish"),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    switch (this.reason) {
      case "PermissionDenied":
        return `the browser did not allow access to the ${this.source}`
      case "DeviceNotFound":
        return `no ${this.source} was found`
      case "Publish":
        return `publishing the ${this.source} to the SFU failed`
    }
  }
}

/** getUserMedia reports refusals as DOMExceptions, told apart only by `name`. */
export const mediaFailedOf = (source: "microphone" | "camera", e: unknown): MediaFailed => {
  const name = e instanceof Error ? e.name : ""
  const reason = name === "NotAllowedError" ? "PermissionDenied" : name === "NotFoundError" ? "DeviceNotFound" : "Publish"
  return new MediaFailed({ source, reason, cause: e })
}
