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
