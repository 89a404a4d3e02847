/**
 * Slack's side of operator traffic, sent to an instance's `/slack/events` as Slack sends it:
 * signed requests; a message event that is not answered 200 within 3 s is sent again with the same
 * `event_id` and `X-Slack-Retry-Num`, up to 3 retries (Slack waits about a minute, then five; the
 * suite compresses that to RETRY_DELAYS_MS). Button clicks and slash commands are not retried by
 * Slack; the operator clicks or types again when the first try failed visibly.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { BRIEFING_ACTIONS, parseBriefingButtonValue } from '../../cards/slack/briefing.ts';
import type { SlackApiEmulator, StoredMessage } from '../emulators/slack-api.ts';
import { route, type BridgeProcess } from './processes.ts';
import { sleep } from './util.ts';

export const RETRY_DELAYS_MS = [1000, 5000, 15000];
const SLACK_TIMEOUT_MS = 3000;

export interface SlackOperator {
  userId: string;
  name: string;
}

export interface EventDelivery {
  eventId: string;
  /** 200 on some attempt. */
  accepted: boolean;
  /** What each attempt got: an HTTP status, `timeout` or `refused`. */
  outcomes: string[];
}

export class SlackSide {
  private eventCounter = 0;

  constructor(
    readonly emulator: SlackApiEmulator,
    private readonly instances: BridgeProcess[],
    private readonly signingSecret: string,
  ) {}

  /** The thread roots the bridge posted for a ticket (one, unless a root was posted twice). */
  roots(ticket: string): StoredMessage[] {
    const pattern = new RegExp(`(^|[^A-Z0-9-])${ticket.replace('-', '\\-')}([^0-9]|$)`);
    return this.emulator.messages.filter((m) => m.bot_id && !m.thread_ts && !hasButton(m, BRIEFING_ACTIONS.claim) && pattern.test(m.versions[0]?.text ?? m.text));
  }

  /** The newest briefing copy that offers Claim for this conversation now (else one that did: a stale client). */
  briefing(conversationId: string): StoredMessage | undefined {
    const cards = this.emulator.messages.filter((m) => m.bot_id && m.versions.some((v) => claimValue(v.blocks) === conversationId));
    return cards.filter((m) => claimValue(m.versions.at(-1)?.blocks) === conversationId).at(-1) ?? cards.at(-1);
  }

  /** An operator clicks Claim on the conversation's briefing, through `instance` (a stale client may still show the button). */
  async clickClaim(operator: SlackOperator, conversationId: string, preferred: number): Promise<string> {
    const card = this.briefing(conversationId);
    if (!card) return 'no_briefing';
    const payload = this.emulator.blockActionPayload({ channel: card.channel, ts: card.ts, actionId: BRIEFING_ACTIONS.claim, user: operator.userId, stale: true });
    return this.once(preferred, new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), 'application/x-www-form-urlencoded');
  }

  /** `/return <ticket> <note>` typed by an operator. */
  async slashReturn(operator: SlackOperator, ticket: string, note: string, channel: string, preferred: number): Promise<string> {
    const fields = this.emulator.slashCommand({ command: '/return', text: `${ticket} ${note}`, user: operator.userId, channel });
    return this.once(preferred, new URLSearchParams(fields).toString(), 'application/x-www-form-urlencoded');
  }

  /** An operator writes in a thread: Slack stores it, then delivers the message event (with retries). */
  async reply(operator: SlackOperator, root: StoredMessage, text: string, preferred: number): Promise<EventDelivery> {
    const event = this.emulator.postAsUser({ channel: root.channel, user: operator.userId, text, thread_ts: root.ts });
    return this.deliverEvent(event, preferred);
  }

  /** Delivers one Events API callback as Slack does: retried with the same event_id until a 200, at most 3 times. */
  async deliverEvent(event: Record<string, unknown>, preferred: number): Promise<EventDelivery> {
    const eventId = `Ev${Date.now().toString(36).toUpperCase()}${(this.eventCounter += 1)}${randomUUID().slice(0, 4)}`;
    const body = JSON.stringify({
      token: 'verification-token-unused',
      team_id: this.emulator.teamId,
      api_app_id: 'AEMULATED',
      event,
      type: 'event_callback',
      event_id: eventId,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ enterprise_id: null, team_id: this.emulator.teamId, user_id: this.emulator.botUserId, is_bot: true, is_enterprise_install: false }],
      is_ext_shared_channel: false,
      event_context: `4-${eventId}`,
    });
    const outcomes: string[] = [];
    for (let attempt = 0; attempt <= RETRY_DELAYS_MS.length; attempt++) {
      if (attempt > 0) await sleep(RETRY_DELAYS_MS[attempt - 1]!);
      const last = outcomes.at(-1);
      const headers: Record<string, string> = attempt > 0 ? { 'x-slack-retry-num': String(attempt), 'x-slack-retry-reason': last === 'timeout' ? 'http_timeout' : 'http_error' } : {};
      const outcome = await this.send(route(this.instances, preferred, attempt), body, 'application/json', headers);
      outcomes.push(outcome);
      if (outcome === '200') return { eventId, accepted: true, outcomes };
    }
    return { eventId, accepted: false, outcomes };
  }

  /** One request, not retried (clicks, commands). */
  private once(preferred: number, body: string, contentType: string): Promise<string> {
    return this.send(route(this.instances, preferred), body, contentType, {});
  }

  private async send(instance: BridgeProcess, body: string, contentType: string, headers: Record<string, string>): Promise<string> {
    const timestamp = Math.floor(Date.now() / 1000);
    const signature = `v0=${createHmac('sha256', this.signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
    try {
      const response = await fetch(`${instance.url}/slack/events`, {
        method: 'POST',
        headers: { 'content-type': contentType, 'x-slack-request-timestamp': String(timestamp), 'x-slack-signature': signature, ...headers },
        body,
        signal: AbortSignal.timeout(SLACK_TIMEOUT_MS),
      });
      await response.arrayBuffer().catch(() => undefined);
      return String(response.status);
    } catch (err) {
      return (err as Error).name === 'TimeoutError' ? 'timeout' : 'refused';
    }
  }
}

function buttonsOf(blocks: any[] | undefined): any[] {
  const out: any[] = [];
  for (const block of blocks ?? []) {
    const elements = block.type === 'actions' ? block.elements : block.accessory ? [block.accessory] : [];
    for (const element of elements ?? []) if (element?.type === 'button') out.push(element);
  }
  return out;
}

function hasButton(message: StoredMessage, actionId: string): boolean {
  return message.versions.some((v) => buttonsOf(v.blocks).some((b) => b.action_id === actionId));
}

function claimValue(blocks: any[] | undefined): string | undefined {
  const button = buttonsOf(blocks).find((b) => b.action_id === BRIEFING_ACTIONS.claim);
  return button ? parseBriefingButtonValue(button.value)?.conversationId : undefined;
}
