// node oidc-provider (panva) with the device flow, RFC 7009 revocation and RFC 7662 introspection
// enabled, for deviceflow's interop test.
// Usage: node provider.mjs PORT   → prints "READY <issuer>" once it listens on 127.0.0.1:PORT.
// Loopback only; the dev interactions (a login form that accepts any username) stand in for a
// real login, which is all the test needs. oidc-provider's device authorization response carries
// no "interval", so the client must fall back to 5 seconds (RFC 8628 §3.2).
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node provider.mjs PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const configuration = {
  clients: [
    {
      client_id: 'deviceflow-cli',
      client_name: 'deviceflow CLI interop',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
    {
      // A confidential client: RFC 7662 introspection needs client authentication.
      client_id: 'deviceflow-confidential',
      client_secret: 'interop-only-confidential-secret',
      client_name: 'deviceflow CLI interop (confidential)',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: {
      enabled: true,
      // A client learns about its own tokens only.
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
  },
  scopes: ['openid', 'offline_access', 'profile'],
  claims: { openid: ['sub'], profile: ['preferred_username'] },
  cookies: { keys: ['deviceflow-interop-only'] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, preferred_username: id }; } };
  },
  // Refresh tokens for public clients too (the CLI is one).
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token'),
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    // Auto-consent: the test is about the device flow, not the consent screen.
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid offline_access profile');
    await grant.save();
    return grant;
  },
};

const provider = new Provider(issuer, configuration);
process.on('SIGTERM', () => process.exit(0));
provider.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
