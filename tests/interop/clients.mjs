// Third-party OAuth / OpenID Connect client libraries from npm completing a device login
// (RFC 8628) against a deviceflow server, for tests/interop/test_interop_clients.py.
//
// Usage: node clients.mjs LIBRARY ISSUER CLIENT_ID SCOPE
//   LIBRARY: openid-client (6.x), openid-client-5 (5.x, installed under that npm alias),
//            oauth4webapi
// Each library discovers the server from ISSUER, asks for a device code, polls the token
// endpoint until the login is approved, validates the ID token the way it does for its users,
// and refreshes once. Progress goes to stdout as one JSON object per line:
//   {"event":"code", "user_code", "verification_uri", "verification_uri_complete", "interval"}
//   {"event":"tokens", "tokens": {...}, "claims": {...}}      (the library's validated claims)
//   {"event":"refreshed", "tokens": {...}, "claims": {...}}
//   {"event":"error", "message", "name", "error"}             (then exit 1)
// HTTPS is trusted through NODE_EXTRA_CA_CERTS (the test's CA); nothing is insecure on purpose.

const [library, issuer, clientId, scope] = process.argv.slice(2);
if (!library || !issuer || !clientId || !scope) {
  console.error('usage: node clients.mjs LIBRARY ISSUER CLIENT_ID SCOPE');
  process.exit(2);
}

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function tokenFields(tokens) {
  const { access_token, id_token, refresh_token, token_type, expires_in, scope: granted } = tokens;
  return { access_token, id_token, refresh_token, token_type, expires_in, scope: granted };
}

function codeFields(response) {
  const { user_code, verification_uri, verification_uri_complete, interval, expires_in } = response;
  return { user_code, verification_uri, verification_uri_complete, interval, expires_in };
}

// openid-client 6: discovery(), initiateDeviceAuthorization(), pollDeviceAuthorizationGrant()
// (which handles authorization_pending and slow_down), refreshTokenGrant().
async function openidClient6() {
  const client = await import('openid-client');
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None());
  const authorization = await client.initiateDeviceAuthorization(config, { scope });
  emit('code', codeFields(authorization));
  const tokens = await client.pollDeviceAuthorizationGrant(config, authorization);
  emit('tokens', { tokens: tokenFields(tokens), claims: tokens.claims() });
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  emit('refreshed', { tokens: tokenFields(refreshed), claims: refreshed.claims() ?? null });
}

// openid-client 5: Issuer.discover(), client.deviceAuthorization(), handle.poll(), refresh().
// v5 checks the ID token's signature against the JWKS itself.
async function openidClient5() {
  const { Issuer } = await import('openid-client-5');
  const found = await Issuer.discover(issuer);
  const client = new found.Client({ client_id: clientId, token_endpoint_auth_method: 'none' });
  const handle = await client.deviceAuthorization({ scope });
  emit('code', {
    user_code: handle.user_code,
    verification_uri: handle.verification_uri,
    verification_uri_complete: handle.verification_uri_complete,
    interval: handle.interval,
    expires_in: handle.expires_in,
  });
  const tokens = await handle.poll();
  emit('tokens', { tokens: tokenFields(tokens), claims: tokens.claims() });
  const refreshed = await client.refresh(tokens.refresh_token);
  emit('refreshed', {
    tokens: tokenFields(refreshed), claims: refreshed.id_token ? refreshed.claims() : null,
  });
}

// oauth4webapi: the low-level request/process pairs; the polling loop is the application's
// (RFC 8628 §3.5: wait `interval` seconds, add 5 on slow_down).
async function oauth4webapi() {
  const oauth = await import('oauth4webapi');
  const issuerUrl = new URL(issuer);
  const as = await oauth.processDiscoveryResponse(
    issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm: 'oidc' }),
  );
  const client = { client_id: clientId };
  const auth = oauth.None();
  const authorization = await oauth.processDeviceAuthorizationResponse(
    as, client,
    await oauth.deviceAuthorizationRequest(as, client, auth, new URLSearchParams({ scope })),
  );
  emit('code', codeFields(authorization));
  let interval = authorization.interval ?? 5;
  let tokens;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, interval * 1000));
    try {
      tokens = await oauth.processDeviceCodeResponse(
        as, client,
        await oauth.deviceCodeGrantRequest(as, client, auth, authorization.device_code),
      );
      break;
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && err.error === 'authorization_pending') continue;
      if (err instanceof oauth.ResponseBodyError && err.error === 'slow_down') {
        interval += 5;
        continue;
      }
      throw err;
    }
  }
  emit('tokens', { tokens: tokenFields(tokens), claims: oauth.getValidatedIdTokenClaims(tokens) });
  const refreshed = await oauth.processRefreshTokenResponse(
    as, client, await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token),
  );
  emit('refreshed', {
    tokens: tokenFields(refreshed), claims: oauth.getValidatedIdTokenClaims(refreshed) ?? null,
  });
}

const flows = { 'openid-client': openidClient6, 'openid-client-5': openidClient5, oauth4webapi };
if (!(library in flows)) {
  console.error(`unknown library ${library}; one of ${Object.keys(flows).join(', ')}`);
  process.exit(2);
}
try {
  await flows[library]();
} catch (err) {
  emit('error', { message: String(err?.message ?? err), name: err?.name, error: err?.error });
  process.exit(1);
}
