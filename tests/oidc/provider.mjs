// A real OpenID Provider for authgate's login tests: npm `oidc-provider` on loopback.
//
// Usage: node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Prints "ready ISSUER" on stdout once listening. Logins go through its development
// interactions (any login name, any password); the login name becomes `sub`.
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: `User ${id}` };
      },
    };
  },
  cookies: { keys: ['authgate-test-only'] },
  features: { devInteractions: { enabled: true } },
  ttl: { AuthorizationCode: 60, IdToken: 300, AccessToken: 300, Interaction: 600, Session: 600, Grant: 600 },
});
// Plain http on loopback: oidc-provider would otherwise insist on TLS-terminated proxies.
provider.proxy = false;

provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
