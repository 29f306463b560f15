// Test-only OpenID provider (the certified `oidc-provider` package), started by tests/oidc_provider.py.
// Settings from the environment: PORT, CLIENTS (JSON list of client metadata), USERS_FILE (JSON
// {login: {"groups": [...]}}, read again for every token so a test can remove a group),
// API_AUDIENCE (the default resource), SHORT_TTL_CLIENT (a client whose access tokens live 1 s).
// Sign-in uses the package's development interactions: any password, the login is the subject.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const audience = process.env.API_AUDIENCE;
const shortClient = process.env.SHORT_TTL_CLIENT || '';

function user(login) {
  const users = JSON.parse(readFileSync(process.env.USERS_FILE, 'utf8'));
  return users[login];
}

// A fresh signing key per start: restarting the provider is a key rotation.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

const resources = (ctx) => {
  const asked = ctx.oidc.params?.resource;
  if (!asked) return [audience];
  return Array.isArray(asked) ? asked : [asked];
};

const provider = new Provider(issuer, {
  clients: JSON.parse(process.env.CLIENTS),
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'groups', 'api'],
  claims: { openid: ['sub'], profile: ['name'], groups: ['groups'] },
  cookies: { keys: [randomUUID()] },
  async findAccount(ctx, id) {
    if (!user(id)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: `User ${id}`, groups: user(id)?.groups ?? [] };
      },
    };
  },
  // First-party client: every request is consented to (the test users never see a consent page).
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile groups api');
    grant.addOIDCClaims(['name', 'groups']);
    for (const resource of resources(ctx)) grant.addResourceScope(resource, 'api');
    await grant.save();
    return grant;
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf ?? audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator, client) => ({
        scope: 'api',
        audience: resourceIndicator,
        accessTokenTTL: client.clientId === shortClient ? 1 : 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  async extraTokenClaims(ctx, token) {
    const found = user(token.accountId);
    return found ? { groups: found.groups, name: `User ${token.accountId}` } : undefined;
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening at ${issuer}`);
});
