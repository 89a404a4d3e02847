/**
 * The bridge exactly as `npm start` assembles it (startBridge from environment variables), with the
 * web chat and Slack both on: a customer in the widget's socket, an operator in Slack (loopback Web
 * API emulator, signed requests), and the handoff going both ways.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startBridge } from '../../src/app.ts';
import { silentLogger } from '../../src/log.ts';
import { SlackApiEmulator, SlackEventsClient } from '../emulators/slack-api.ts';
import { waitFor } from '../support/harness.ts';
import { VisitorSocket } from '../webchat/support.ts';

const dir = mkdtempSync(join(tmpdir(), 'wiring-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('a web chat customer is handed to a Slack operator and back, through the assembled app', { timeout: 60_000 }, async () => {
  const slackApi = await new SlackApiEmulator().start();
  slackApi.addUser({ id: 'UDANA0001', name: 'dana', displayName: 'Dana', realName: 'Dana Scully' });
  slackApi.addChannel('CSUPPORT01', 'support');
  const signingSecret = '0123456789abcdef0123456789abcdef';
  const running = await startBridge(
    {
      PORT: '0',
      HOST: '127.0.0.1',
      STORE_URL: join(dir, 'bridge.sqlite'),
      BRAND_NAME: 'Northwind',
      SLACK_BOT_TOKEN: slackApi.botToken,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_CHANNEL_ID: 'CSUPPORT01',
      SLACK_API_URL: slackApi.url,
    },
    { logger: silentLogger() },
  );
  const base = `http://127.0.0.1:${running.port}`;
  const slack = new SlackEventsClient(`${base}/slack/events`, signingSecret, slackApi.teamId);
  let visitor: VisitorSocket | undefined;
  try {
    expect(running.running).toEqual(['webchat', 'slack']);
    const session = (await (await fetch(`${base}/webchat/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { token: string; conversationId: string };
    visitor = await VisitorSocket.open(`ws://127.0.0.1:${running.port}/webchat/ws`);
    visitor.send({ type: 'hello', token: session.token });
    await visitor.ready();

    visitor.say('How do I reset my password?');
    await visitor.message((f) => f.role === 'agent' && f.text.includes('Forgot password'), 'FAQ answer');
    visitor.say('That did not help. I want to talk to a human please');
    const escalated = await visitor.message((f) => f.notice === 'escalated', 'escalation notice');
    const ticket = /HB-\d+/.exec(escalated.text)![0];

    // Slack got the thread and a briefing with a Claim button.
    const briefing = await waitFor(() => slackApi.messages.find((m) => JSON.stringify(m.blocks ?? []).includes('Claim')), { what: 'briefing in Slack' });
    expect(JSON.stringify(briefing.blocks)).toContain(ticket);
    const root = slackApi.messages.find((m) => !m.thread_ts && m.text.includes(ticket))!;
    const click = await slack.interaction(slackApi.blockActionPayload({ channel: briefing.channel, ts: briefing.ts, actionId: /claim/i, user: 'UDANA0001' }));
    expect(click.status).toBe(200);
    await visitor.message((f) => f.notice === 'joined' && f.text.includes('Dana'), 'joined notice');

    const reply = await slack.event(slackApi.postAsUser({ channel: root.channel, user: 'UDANA0001', text: 'Hi, Dana here. I unlocked your account.', thread_ts: root.ts }));
    expect(reply.status).toBe(200);
    const relayed = await visitor.message((f) => f.text === 'Hi, Dana here. I unlocked your account.', 'operator reply in the widget');
    expect(relayed.name).toBe('Dana');

    // The customer's next message shows in the Slack thread; the agent stays silent.
    visitor.say('It works, thank you!');
    await waitFor(() => slackApi.replies(root.channel, root.ts).some((m) => m.text.includes('It works, thank you!')), { what: 'customer message mirrored' });

    const command = await slack.command(slackApi.slashCommand({ command: '/return', text: 'Account unlocked after identity check', user: 'UDANA0001', channel: 'CSUPPORT01' }));
    expect(command.status).toBe(200);
    await visitor.message((f) => f.notice === 'returned', 'back with the assistant');
    const grounded = await visitor.message((f) => f.role === 'agent' && f.text.includes('Account unlocked after identity check'), 'agent answer grounded in the note');
    expect(grounded.name).not.toBe('Dana');
    await waitFor(() => slackApi.replies(root.channel, root.ts).some((m) => /returned/i.test(m.text) && m.text.includes('Account unlocked after identity check')), { what: 'return recorded in the thread' });
  } finally {
    visitor?.close();
    await running.stop();
    await slackApi.stop();
  }
});
