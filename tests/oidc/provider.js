// A real OpenID Connect provider for the portal's tests (tests/e2e/test_oidc_sign_in.py), built on
// node's oidc-provider. Everything comes from the environment:
//   OIDC_PORT            loopback port to listen on (the issuer is http://127.0.0.1:<port>)
//   OIDC_CLIENTS         JSON list of clients: {client_id, client_secret?, redirect_uris}
//   OIDC_ACCOUNTS        JSON object: login name -> claims (email, email_verified, name, ...)
//   OIDC_AUDIENCE        the audience of access tokens (a JWT, resource indicators)
//   OIDC_JWKS            optional JSON {keys: [private JWK]}: the signing keys, so a test can also
//                        sign tokens the provider's key really signed (an expired one, say)
// devInteractions gives the login form (any password); consent is granted without asking, as a
// hospital's provider does for its own applications. Prints "listening <issuer>" when ready.
import Provider from "oidc-provider";

const port = Number(process.env.OIDC_PORT || 0);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.OIDC_CLIENTS || "[]");
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || "{}");
const audience = process.env.OIDC_AUDIENCE || "";
const jwks = process.env.OIDC_JWKS ? JSON.parse(process.env.OIDC_JWKS) : undefined;

const configuration = {
  ...(jwks ? { jwks } : {}),
  clients: clients.map((client) => ({
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: client.client_secret ? "client_secret_post" : "none",
    ...client,
  })),
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "given_name", "family_name"],
  },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Only a client that asks for the portal (resource=<audience>) gets a JWT for it; the portal's
      // own sign-in gets an opaque token for the userinfo endpoint, as with Keycloak or Entra ID.
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (ctx, resourceIndicator) => ({
        scope: "openid profile email",
        audience: resourceIndicator,
        accessTokenFormat: "jwt",
        accessTokenTTL: 600,
      }),
    },
  },
  // Grant every client what it asks for: no consent screen for the hospital's own applications.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid profile email");
    grant.addOIDCClaims(["email", "email_verified", "name"]);
    if (audience) grant.addResourceScope(audience, "openid profile email");
    await grant.save();
    return grant;
  },
  pkce: { required: () => false },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
};

const provider = new Provider(issuer, configuration);
provider.proxy = false;
const server = provider.listen(port, "127.0.0.1", () => {
  console.log(`listening ${issuer}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
