// A real OpenID Connect provider (panva/oidc-provider) for the OIDC tests, on loopback.
//
// Usage: node provider.mjs CONFIG.json. The config (written by tests/support/oidc_provider/__init__.py)
// holds the issuer, the port, the private signing keys as JWKs (the first key of an algorithm
// signs) and the clients: each gets tokens by the client credentials grant, signed with its
// `alg`, with its `claims` added. Access tokens are JWTs whose audience is the resource
// indicator asked for (`resource`), or the configured audience when none is asked for.
// GET /test/stats answers how often the JWKS and the discovery document were fetched.
import { readFileSync } from "node:fs";

import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const clients = new Map(config.clients.map((client) => [client.client_id, client]));
const stats = { jwks: 0, discovery: 0 };

const provider = new Provider(config.issuer, {
  clients: config.clients.map(({ client_id, client_secret }) => ({
    client_id,
    client_secret,
    grant_types: ["client_credentials"],
    redirect_uris: [],
    response_types: [],
  })),
  jwks: { keys: config.keys },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, _resource, client) => ({
        scope: "orders",
        accessTokenFormat: "jwt",
        accessTokenTTL: 300,
        jwt: { sign: { alg: clients.get(client.clientId).alg } },
      }),
    },
  },
  extraTokenClaims: (_ctx, token) => clients.get(token.clientId)?.claims,
});

provider.use(async (ctx, next) => {
  if (ctx.path === "/test/stats") {
    ctx.body = stats;
    return;
  }
  if (ctx.path === "/jwks") stats.jwks += 1;
  if (ctx.path === "/.well-known/openid-configuration") stats.discovery += 1;
  await next();
});

const server = provider.listen(config.port, "127.0.0.1", () => {
  process.stdout.write(`ready ${config.issuer}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
