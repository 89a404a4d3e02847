/**
 * When the console runs and who may sign in, from the environment.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { consoleConfigFromEnv, parseOperators } from '../../adapters/console/index.ts';
import { DEFAULT_OPERATOR, resolveConsoleConfig } from '../../adapters/console/config.ts';
import { ConfigError } from '../../src/errors.ts';

describe('when the console runs', () => {
  it('runs by default when it is the only workspace, so a bridge with nothing configured has somewhere to work', () => {
    const config = consoleConfigFromEnv({}, { otherWorkspaces: [] });
    expect(config).toBeDefined();
    expect(resolveConsoleConfig(config!).operators).toEqual([DEFAULT_OPERATOR]);
  });

  it('stays off beside Slack or Teams unless CONSOLE_ENABLED is true', () => {
    expect(consoleConfigFromEnv({}, { otherWorkspaces: ['slack'] })).toBeUndefined();
    expect(consoleConfigFromEnv({ CONSOLE_ENABLED: 'true' }, { otherWorkspaces: ['slack', 'teams'] })?.otherWorkspaces).toEqual(['slack', 'teams']);
  });

  it('CONSOLE_ENABLED=false turns it off even alone', () => {
    expect(consoleConfigFromEnv({ CONSOLE_ENABLED: 'false' }, { otherWorkspaces: [] })).toBeUndefined();
  });

  it('names the variable when a value is wrong', () => {
    expect(() => consoleConfigFromEnv({ CONSOLE_ENABLED: 'maybe' }, { otherWorkspaces: [] })).toThrow(/CONSOLE_ENABLED/);
    expect(() => consoleConfigFromEnv({ CONSOLE_TOKEN: 'short' }, { otherWorkspaces: [] })).toThrow(/CONSOLE_TOKEN: a random token of at least 16/);
    expect(() => consoleConfigFromEnv({ CONSOLE_SLA_MINUTES: '0' }, { otherWorkspaces: [] })).toThrow(/CONSOLE_SLA_MINUTES/);
    expect(() => consoleConfigFromEnv({ CONSOLE_OPERATORS: 'dana', CONSOLE_OPERATORS_FILE: 'x.json' }, { otherWorkspaces: [] })).toThrow(/not both/);
  });

  it('reads the shared token, the response target, the brand and the session length', () => {
    const config = resolveConsoleConfig(
      consoleConfigFromEnv({ CONSOLE_TOKEN: 'a-long-shared-token-123', CONSOLE_SLA_MINUTES: '3', BRAND_NAME: 'Northwind', CONSOLE_SESSION_HOURS: '12', PUBLIC_URL: 'https://support.example.com/' }, { otherWorkspaces: [] })!,
    );
    expect(config).toMatchObject({ token: 'a-long-shared-token-123', slaMs: 180_000, brandName: 'Northwind', sessionTtlMs: 12 * 3600_000, publicUrl: 'https://support.example.com' });
  });
});

describe('who may sign in', () => {
  it('CONSOLE_OPERATORS lists id:Name pairs, with an optional :manager', () => {
    expect(parseOperators('dana:Dana Scully, sam:Sam,lee:Lee Chen:manager')).toEqual([
      { id: 'dana', name: 'Dana Scully', role: 'operator' },
      { id: 'sam', name: 'Sam', role: 'operator' },
      { id: 'lee', name: 'Lee Chen', role: 'manager' },
    ]);
  });

  it('refuses ids that could not be part of an operator id, names missing, and the same id twice', () => {
    expect(() => parseOperators('dana smith:Dana')).toThrow(ConfigError);
    expect(() => parseOperators('dana:')).toThrow(/id:Name/);
    expect(() => consoleConfigFromEnv({ CONSOLE_OPERATORS: 'dana:Dana,DANA:Other' }, { otherWorkspaces: [] })).toThrow(/appears twice/);
  });

  it('CONSOLE_OPERATORS_FILE holds people with roles and personal tokens', () => {
    const dir = mkdtempSync(join(tmpdir(), 'console-config-'));
    const file = join(dir, 'operators.json');
    writeFileSync(file, JSON.stringify({ operators: [{ id: 'dana', name: 'Dana Scully', token: 'dana-personal-token-0001' }, { id: 'lee', name: 'Lee Chen', role: 'manager' }] }));
    const config = resolveConsoleConfig(consoleConfigFromEnv({ CONSOLE_OPERATORS_FILE: file }, { otherWorkspaces: [] })!);
    expect(config.operators).toEqual([
      { id: 'dana', name: 'Dana Scully', role: 'operator', token: 'dana-personal-token-0001' },
      { id: 'lee', name: 'Lee Chen', role: 'manager' },
    ]);
    writeFileSync(file, JSON.stringify([{ id: 'dana', name: 'Dana', role: 'boss' }]));
    expect(() => consoleConfigFromEnv({ CONSOLE_OPERATORS_FILE: file }, { otherWorkspaces: [] })).toThrow(/CONSOLE_OPERATORS_FILE: .*role/);
    expect(() => consoleConfigFromEnv({ CONSOLE_OPERATORS_FILE: join(dir, 'missing.json') }, { otherWorkspaces: [] })).toThrow(/readable JSON file/);
  });

  it('a personal token must be long and must not be the shared one', () => {
    expect(() => resolveConsoleConfig({ operators: [{ id: 'dana', name: 'Dana', role: 'operator', token: 'short' }] })).toThrow(/at least 16/);
    expect(() => resolveConsoleConfig({ token: 'same-token-for-both-0001', operators: [{ id: 'dana', name: 'Dana', role: 'operator', token: 'same-token-for-both-0001' }] })).toThrow(/differ/);
  });
});
