import { describe, expect, it } from 'vitest';
import { resolveWebChatConfig, webChatConfigFromEnv } from '../../adapters/webchat/config.ts';
import { reconnectDelay } from '../../adapters/webchat/widget/client.ts';
import { ConfigError } from '../../src/errors.ts';

const SECRET = '0123456789abcdef0123456789abcdef';

describe('web chat settings', () => {
  it('the web chat stays off without WEBCHAT_SESSION_SECRET', () => {
    expect(webChatConfigFromEnv({})).toBeUndefined();
  });

  it('reads every variable, with defaults for the rest', () => {
    const config = webChatConfigFromEnv({
      WEBCHAT_SESSION_SECRET: SECRET,
      WEBCHAT_IDENTITY_SECRET: 'identity-secret-123',
      WEBCHAT_REQUIRE_IDENTITY: 'true',
      PUBLIC_URL: 'https://support.example.com/',
      BRAND_NAME: 'Northwind',
      WEBCHAT_MAX_MESSAGE_CHARS: '1000',
      WEBCHAT_RATE_PER_MINUTE: '12',
      WEBCHAT_ALLOWED_ORIGINS: 'https://shop.example.com, https://www.example.com',
      TRUST_PROXY: '1',
      WEBCHAT_TOKEN_TTL_MINUTES: '90',
    })!;
    const resolved = resolveWebChatConfig(config);
    expect(resolved).toMatchObject({
      requireIdentity: true,
      publicUrl: 'https://support.example.com',
      brandName: 'Northwind',
      assistantName: 'Assistant',
      maxMessageChars: 1000,
      ratePerMinute: 12,
      burst: 5,
      allowedOrigins: ['https://shop.example.com', 'https://www.example.com'],
      trustProxy: true,
      tokenTtlMs: 90 * 60_000,
    });
    expect(resolveWebChatConfig({ sessionSecret: SECRET }).tokenTtlMs).toBe(24 * 3600_000);
  });

  it('a bad value stops start-up naming the variable and what it expects', () => {
    const fails = (env: Record<string, string>, variable: string) => {
      const attempt = () => resolveWebChatConfig(webChatConfigFromEnv({ WEBCHAT_SESSION_SECRET: SECRET, ...env })!);
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(new RegExp(`^${variable}:`));
    };
    fails({ WEBCHAT_SESSION_SECRET: 'short' }, 'WEBCHAT_SESSION_SECRET');
    fails({ WEBCHAT_MAX_MESSAGE_CHARS: 'lots' }, 'WEBCHAT_MAX_MESSAGE_CHARS');
    fails({ WEBCHAT_RATE_PER_MINUTE: '-1' }, 'WEBCHAT_RATE_PER_MINUTE');
    fails({ WEBCHAT_TOKEN_TTL_MINUTES: 'forever' }, 'WEBCHAT_TOKEN_TTL_MINUTES');
    fails({ WEBCHAT_REQUIRE_IDENTITY: 'true' }, 'WEBCHAT_IDENTITY_SECRET');
    fails({ WEBCHAT_REQUIRE_IDENTITY: 'maybe' }, 'WEBCHAT_REQUIRE_IDENTITY');
    fails({ PUBLIC_URL: 'support.example.com' }, 'PUBLIC_URL');
    fails({ WEBCHAT_ALLOWED_ORIGINS: 'https://shop.example.com/path' }, 'WEBCHAT_ALLOWED_ORIGINS');
  });
});

describe('widget reconnection', () => {
  it('backs off exponentially with jitter and never waits more than 30 s', () => {
    expect(reconnectDelay(0, () => 0)).toBe(250);
    expect(reconnectDelay(0, () => 1)).toBe(500);
    expect(reconnectDelay(3, () => 1)).toBe(4000);
    expect(reconnectDelay(50, () => 1)).toBe(30_000);
  });
});
