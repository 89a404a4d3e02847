/**
 * The manifest installs the app as built: every command, shortcut, event, scope and the Home tab
 * the adapter relies on is declared, and nothing points anywhere but /slack/events.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BRIEFING_ACTIONS } from '../../cards/slack/briefing.ts';
import { COMMANDS, SHORTCUTS } from '../../adapters/slack/listeners.ts';

const manifest = parse(readFileSync(new URL('../../manifest/slack.yaml', import.meta.url), 'utf8'));

describe('the Slack app manifest', () => {
  it('declares the commands and message shortcuts the adapter listens for', () => {
    expect(manifest.features.slash_commands.map((c: any) => c.command).sort()).toEqual(Object.values(COMMANDS).sort());
    expect(manifest.features.shortcuts.map((s: any) => [s.type, s.callback_id]).sort()).toEqual(Object.values(SHORTCUTS).map((id) => ['message', id]).sort());
    expect(BRIEFING_ACTIONS.claim).toBe('briefing_claim');
  });

  it('declares /route with the usage the adapter parses', () => {
    const route = manifest.features.slash_commands.find((c: any) => c.command === COMMANDS.route);
    expect(route).toBeDefined();
    expect(route.usage_hint).toContain('--pin');
    expect(route.should_escape).toBe(false);
  });

  it('subscribes to channel messages and enables interactivity and Socket Mode', () => {
    expect(manifest.settings.event_subscriptions.bot_events).toEqual(expect.arrayContaining(['message.channels', 'message.groups', 'app_home_opened']));
    expect(manifest.features.app_home.home_tab_enabled).toBe(true);
    expect(manifest.settings.interactivity.is_enabled).toBe(true);
    expect(manifest.settings.socket_mode_enabled).toBe(true);
    const urls = [manifest.settings.event_subscriptions.request_url, manifest.settings.interactivity.request_url, ...manifest.features.slash_commands.map((c: any) => c.url)];
    for (const url of urls) expect(new URL(url).pathname).toBe('/slack/events');
  });

  it('asks for the scopes the Web API calls and events need', () => {
    const scopes: string[] = manifest.oauth_config.scopes.bot;
    // chat.postMessage/update/postEphemeral, users.info, files.info, conversations.replies/history/info, commands,
    // usergroups.list (views.publish and chat.getPermalink need none).
    for (const scope of ['chat:write', 'users:read', 'files:read', 'channels:history', 'groups:history', 'channels:read', 'groups:read', 'commands', 'metadata.message:read', 'usergroups:read']) {
      expect(scopes).toContain(scope);
    }
  });
});
