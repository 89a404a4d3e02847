import { describe, expect, it } from 'vitest';
import { emailConfigFromEnv, resolveEmailConfig } from '../../adapters/email/config.ts';
import { ConfigError } from '../../src/errors.ts';

const base = { EMAIL_ADDRESS: 'support@acme.test', SMTP_URL: 'smtp://mail.acme.test:587' };

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('email settings from the environment', () => {
  it('the channel is off when EMAIL_ADDRESS is unset', () => {
    expect(emailConfigFromEnv({})).toBeUndefined();
    expect(emailConfigFromEnv({ SMTP_URL: 'smtp://x' })).toBeUndefined();
  });

  it('reads every setting, with defaults for the optional ones', () => {
    expect(emailConfigFromEnv(base)).toEqual({ address: 'support@acme.test', smtpUrl: 'smtp://mail.acme.test:587', inboundPort: 2525 });
    expect(
      emailConfigFromEnv({ ...base, SMTP_INBOUND_PORT: '25', SMTP_INBOUND_HOST: '127.0.0.1', EMAIL_BRAND_NAME: 'Acme Support', EMAIL_MAX_MESSAGE_BYTES: '5000000' }),
    ).toEqual({ address: 'support@acme.test', smtpUrl: 'smtp://mail.acme.test:587', inboundPort: 25, inboundHost: '127.0.0.1', brandName: 'Acme Support', maxMessageBytes: 5_000_000 });
  });

  it('names the variable to fix', () => {
    expect(configError(() => emailConfigFromEnv({ EMAIL_ADDRESS: 'support@acme.test' })).variable).toBe('SMTP_URL');
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_ADDRESS: 'not-an-address' })).variable).toBe('EMAIL_ADDRESS');
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_ADDRESS: 'support+x@acme.test' })).variable).toBe('EMAIL_ADDRESS');
    expect(configError(() => emailConfigFromEnv({ ...base, SMTP_URL: 'http://mail.acme.test' })).variable).toBe('SMTP_URL');
    expect(configError(() => emailConfigFromEnv({ ...base, SMTP_INBOUND_PORT: 'twenty-five' })).variable).toBe('SMTP_INBOUND_PORT');
    expect(configError(() => emailConfigFromEnv({ ...base, SMTP_INBOUND_PORT: '70000' })).variable).toBe('SMTP_INBOUND_PORT');
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_MAX_MESSAGE_BYTES: '10' })).variable).toBe('EMAIL_MAX_MESSAGE_BYTES');
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_TLS_KEY: 'pem' })).variable).toBe('EMAIL_TLS_CERT');
  });

  it('reads the sender and abuse settings', () => {
    expect(
      emailConfigFromEnv({
        ...base,
        EMAIL_AUTHSERV_ID: 'mx.acme.test, mx2.acme.test',
        EMAIL_TRUSTED_RELAYS: '192.0.2.0/24, 2001:db8::1',
        EMAIL_TRUST_REPLY_TO: 'forms@acme.test,@forms.acme.test',
        EMAIL_AUTO_REPLIES_PER_ADDRESS: '3',
        EMAIL_AUTO_REPLIES_PER_DOMAIN: '0',
        SMTP_INBOUND_MAX_CONNECTIONS: '50',
        SMTP_INBOUND_MAX_CONNECTIONS_PER_IP: '5',
        SMTP_INBOUND_PRE_MAIL_TIMEOUT_MS: '5000',
        EMAIL_PARSE_CONCURRENCY: '1',
        EMAIL_SPOOL_DIR: '/var/spool/bridge',
      }),
    ).toEqual({
      address: 'support@acme.test',
      smtpUrl: 'smtp://mail.acme.test:587',
      inboundPort: 2525,
      authservIds: ['mx.acme.test', 'mx2.acme.test'],
      trustedRelays: ['192.0.2.0/24', '2001:db8::1'],
      replyToTrusted: ['forms@acme.test', '@forms.acme.test'],
      autoReplyLimit: { perAddress: 3, perDomain: 0 },
      maxConnections: 50,
      maxConnectionsPerIp: 5,
      preMailTimeoutMs: 5000,
      parseConcurrency: 1,
      spoolDir: '/var/spool/bridge',
    });
    expect(resolveEmailConfig({ address: 'support@acme.test', smtpUrl: 'smtp://x', inboundPort: 0 })).toMatchObject({
      authservIds: [],
      trustedRelays: [],
      replyToTrusted: [],
      autoReplyLimit: { perAddress: 5, perDomain: 50, windowMs: 3_600_000 },
      maxConnections: 100,
      maxConnectionsPerIp: 10,
      preMailTimeoutMs: 10_000,
      parseConcurrency: 1,
    });
  });

  it('names the sender or abuse setting to fix', () => {
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_TRUSTED_RELAYS: 'mx.acme.test' })).variable).toBe('EMAIL_TRUSTED_RELAYS');
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_TRUSTED_RELAYS: '10.0.0.0/33' })).variable).toBe('EMAIL_TRUSTED_RELAYS');
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_TRUST_REPLY_TO: 'forms' })).variable).toBe('EMAIL_TRUST_REPLY_TO');
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_AUTO_REPLIES_PER_ADDRESS: 'many' })).variable).toBe('EMAIL_AUTO_REPLIES_PER_ADDRESS');
    expect(configError(() => emailConfigFromEnv({ ...base, SMTP_INBOUND_MAX_CONNECTIONS_PER_IP: '0' })).variable).toBe('SMTP_INBOUND_MAX_CONNECTIONS_PER_IP');
    expect(configError(() => emailConfigFromEnv({ ...base, SMTP_INBOUND_PRE_MAIL_TIMEOUT_MS: '-1' })).variable).toBe('SMTP_INBOUND_PRE_MAIL_TIMEOUT_MS');
    expect(configError(() => emailConfigFromEnv({ ...base, EMAIL_PARSE_CONCURRENCY: '1.5' })).variable).toBe('EMAIL_PARSE_CONCURRENCY');
  });

  it('fills defaults and normalizes the address', () => {
    const resolved = resolveEmailConfig({ address: 'Support@ACME.test', smtpUrl: 'smtps://u:p@mail.acme.test', inboundPort: 0 });
    expect(resolved).toMatchObject({
      address: 'Support@acme.test',
      inboundHost: '0.0.0.0',
      brandName: 'Support',
      maxMessageBytes: 10 * 1024 * 1024,
      serverName: 'acme.test',
    });
  });
});
