// An independent OpenID provider for Cairn's CA tests: panva/oidc-provider (OpenID Certified),
// on 127.0.0.1 only. Usage: node server.js PORT [JWK]
//
// Its discovery document and JWKS are the provider's own. Tokens come from the provider's own
// IdToken machinery through one extra grant type, `urn:cairn:test:mint` (POST /token with
// client_id=sigstore, client_secret=cairn-test, email=..., optionally email_verified=false), so
// a test needs no browser login. The device flow (RFC 8628) is on too, for `cairn login`. JWK, if given, is the private EC P-256 key the provider signs
// with, so a test can also make tokens the provider would never issue (expired, wrong audience)
// under a key the provider publishes.
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.js PORT [JWK]');
  process.exit(2);
}
const jwk = process.argv[3]
  ? JSON.parse(process.argv[3])
  : { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'test-key' };

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  jwks: { keys: [{ ...jwk, use: 'sig', alg: 'ES256' }] },
  clients: [{
    client_id: 'sigstore',
    client_secret: 'cairn-test',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['urn:cairn:test:mint', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: [],
    redirect_uris: [],
    id_token_signed_response_alg: 'ES256',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
  ttl: { IdToken: 600 },
  cookies: { keys: ['cairn-test-only'] },
  // The device authorization grant (RFC 8628) with the provider's own pages, for `cairn
  // login`: the test plays the user's browser (enter the code, sign in as any login, consent).
  features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
  // The ID token carries the scopes' claims (e-mail), as Sigstore CAs need, even when an
  // access token is issued alongside it.
  conformIdTokenClaims: false,
  // Any login is an account whose e-mail is the login, verified.
  findAccount: (ctx, id) => ({
    accountId: id,
    claims: () => ({ sub: id, email: id, email_verified: true }),
  }),
});

provider.registerGrantType('urn:cairn:test:mint', async (ctx, next) => {
  const { email } = ctx.oidc.params;
  const verified = ctx.oidc.params.email_verified !== 'false';
  const token = new provider.IdToken({ sub: email, email, email_verified: verified }, { ctx });
  token.scope = 'openid email';
  ctx.body = { id_token: await token.issue({ use: 'idtoken' }), token_type: 'Bearer' };
  await next();
}, ['email', 'email_verified']);

provider.on('server_error', (ctx, error) => console.error(error));
provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
