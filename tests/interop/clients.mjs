// Third-party OAuth / OpenID Connect client libraries from npm completing a device login
// (RFC 8628) against a deviceflow server, for tests/interop/test_interop_clients.py.
//
// Usage: node clients.mjs LIBRARY ISSUER CLIENT_ID SCOPE
//   LIBRARY: openid-client (6.x), openid-client-5 (5.x, installed under that npm alias),
//            oauth4webapi, oauth4webapi-rfc8414 (the same, discovering through RFC 8414's
//            /.well-known/oauth-authorization-server{path} instead of OpenID discovery), or
//            openid-client-code (openid-client 6, authorization code + PKCE)
// Each library discovers the server from ISSUER, asks for a device code, polls the token
// endpoint until the login is approved, validates the ID token the way it does for its users,
// and refreshes once. Progress goes to stdout as one JSON object per line:
//   {"event":"code", "user_code", "verification_uri", "verification_uri_complete", "interval"}
//   {"event":"tokens", "tokens": {...}, "claims": {...}}      (the library's validated claims)
//   {"event":"refreshed", "tokens": {...}, "claims": {...}}
//   {"event":"error", "message", "name", "error"}             (then exit 1)
// openid-client-code is a native app (RFC 8252): it listens on a free loopback port, prints
//   {"event":"authorize", "url", "redirect_uri"}
// for the browser (the test), catches the redirect with the code, and exchanges it.
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
async function oauth4webapi(algorithm = 'oidc') {
  const oauth = await import('oauth4webapi');
  const issuerUrl = new URL(issuer);
  const as = await oauth.processDiscoveryResponse(
    issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm }),
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

// openid-client 6, authorization code + PKCE S256 (RFC 6749 §4.1, RFC 7636, RFC 8252 §7.3):
// buildAuthorizationUrl() with state and nonce, the redirect caught on 127.0.0.1, then
// authorizationCodeGrant() checks state, iss (RFC 9207), nonce and the ID token.
async function openidClient6Code() {
  const client = await import('openid-client');
  const http = await import('node:http');
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None());
  let received;
  const callback = new Promise((resolve) => { received = resolve; });
  const listener = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('Signed in: you can close this tab.');
    received(req.url);
  });
  await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const redirectUri = `http://127.0.0.1:${listener.address().port}/callback`;
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope, state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  emit('authorize', { url: url.href, redirect_uri: redirectUri });
  const path = await callback;
  listener.close();
  const tokens = await client.authorizationCodeGrant(config, new URL(path, redirectUri), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  emit('tokens', { tokens: tokenFields(tokens), claims: tokens.claims() });
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  emit('refreshed', { tokens: tokenFields(refreshed), claims: refreshed.claims() ?? null });
}

const flows = {
  'openid-client': openidClient6,
  'openid-client-code': openidClient6Code,
  'openid-client-5': openidClient5,
  oauth4webapi: () => oauth4webapi('oidc'),
  'oauth4webapi-rfc8414': () => oauth4webapi('oauth2'),
};
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
