/**
 * OpenID verification: `GET <base>/_matrix/federation/v1/openid/userinfo?access_token=…`
 * over plain HTTP against the configured `server_name → base URL` map
 * (project decision, auth-service.md §2.1). Returns the `sub` as reported;
 * the `sub`-suffix and claimed-user checks are done by the handlers.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { Context, Data, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { AuthServiceSettings } from "./Settings.ts"

export class OpenIdVerificationFailed extends Data.TaggedError("OpenIdVerificationFailed")<{
  readonly serverName: string
  readonly reason: string
}> {}

export interface Service {
  /** The homeserver's answer for this token: the Matrix user id (`sub`). */
  readonly userInfo: (
    serverName: string,
    accessToken: Redacted.Redacted<string>
  ) => Effect.Effect<string, OpenIdVerificationFailed>
}

export class OpenIdVerifier extends Context.Tag("@matrixrtc-effect/devstack/auth-service/OpenIdVerifier")<
  OpenIdVerifier,
  Service
>() {}

const UserInfo = Schema.Struct({ sub: Schema.String })

/** lk-jwt-service's federation client timeout. */
export const requestTimeout = Duration.seconds(30)

export const make: Effect.Effect<Service, never, AuthServiceSettings | HttpClient.HttpClient> = Effect.gen(function*() {
  const settings = yield* AuthServiceSettings
  const client = yield* HttpClient.HttpClient
  return OpenIdVerifier.of({
    userInfo: (serverName, accessToken) => {
      const fail = (reason: string) => new OpenIdVerificationFailed({ serverName, reason })
      return Option.match(Option.fromNullable(settings.userInfoBaseUrls.get(serverName)), {
        onNone: () => Effect.fail(fail("no userinfo base URL configured for this server name")),
        onSome: (base) =>
          client.get(`${base.replace(/\/+$/, "")}/_matrix/federation/v1/openid/userinfo`, {
            urlParams: { access_token: Redacted.value(accessToken) }
          }).pipe(
            Effect.flatMap(HttpClientResponse.filterStatusOk),
            Effect.flatMap(HttpClientResponse.schemaBodyJson(UserInfo)),
            Effect.scoped,
            Effect.timeoutFail({ duration: requestTimeout, onTimeout: () => fail("timeout") }),
            Effect.map((info) => info.sub),
            // Never carry the request (its URL holds the token) into the error.
            Effect.catchTags({
              RequestError: (e) => Effect.fail(fail(`transport: ${e.reason}`)),
              ResponseError: (e) => Effect.fail(fail(`response: ${e.reason} status ${e.response.status}`)),
              ParseError: () => Effect.fail(fail("userinfo body is not {sub: string}"))
            })
          )
      })
    }
  })
})

/** Real verifier; needs an `HttpClient` (e.g. `FetchHttpClient.layer`). */
export const layer: Layer.Layer<OpenIdVerifier, never, AuthServiceSettings | HttpClient.HttpClient> = Layer.effect(
  OpenIdVerifier,
  make
)

/** Test verifier: a table `access_token → sub`; unknown tokens fail. */
export const layerTest = (table: Readonly<Record<string, string>>): Layer.Layer<OpenIdVerifier> =>
  Layer.succeed(
    OpenIdVerifier,
    OpenIdVerifier.of({
      userInfo: (serverName, accessToken) => {
        const token = Redacted.value(accessToken)
        return Object.hasOwn(table, token)
          ? Effect.succeed(table[token]!)
          : Effect.fail(new OpenIdVerificationFailed({ serverName, reason: "unknown token" }))
      }
    })
  )
