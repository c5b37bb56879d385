// node oidc-provider with the device flow, as the benchmark's peer (bench/run.py starts it).
//
//   node bench/peers/oidc_provider_peer.js PORT
//
// Its default in-memory adapter (an LRU of 1000 entries), one public client
// `bench-device` allowed the device_code and refresh_token grants, listening on 127.0.0.1:PORT.
// Endpoints (oidc-provider defaults): POST /device/auth, POST /token,
// GET /.well-known/openid-configuration.
import Provider from 'oidc-provider';

const port = Number.parseInt(process.argv[2] ?? '3000', 10);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'bench-device',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: false },
  },
  scopes: ['openid', 'offline_access', 'profile'],
  // No access log, no request logging: the same as deviceflow at log level warning.
});

// Keep the peer quiet under load: oidc-provider emits events, it does not print them.
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`oidc-provider listening on ${issuer}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
