/**
 * The workspace contract driver for Teams: boots the real Teams adapter (botbuilder CloudAdapter on
 * the shared HTTP server) against the loopback Bot Connector emulator, and acts as Teams would
 * (thread messages with @mentions, `adaptiveCard/action` invokes on the buttons actually on the card,
 * `Action.Submit` messages for Reveal). Wired as src/app.ts wires it: the adapter gets the bridge
 * through `redactedPort`, so it only ever reads redacted copies.
 */
import { createTeamsWorkspace, type TeamsConfig, type TeamsWorkspace } from '../../adapters/teams/index.ts';
import type { Agent } from '../../src/agent/agent.ts';
import type { Bridge } from '../../src/bridge.ts';
import { redactedPort } from '../../src/engine/redact.ts';
import { HttpServer } from '../../src/http.ts';
import { silentLogger, type Logger } from '../../src/log.ts';
import { BotConnectorEmulator, cardOf, visibleText, type TeamsMessage, type TeamsUser } from '../emulators/bot-connector.ts';
import { createTestBridge, type TestBridge } from '../support/harness.ts';
import { MemoryChannel } from '../support/memory-ports.ts';
import type { ContractOperator, WorkspaceDriver } from './driver.ts';

/** The operators' channel in the emulated team. */
export const TEAMS_TEST_CHANNEL = '19:operators-channel@thread.tacv2';

export class TeamsDriver implements WorkspaceDriver {
  readonly name = 'teams' as const;
  emulator!: BotConnectorEmulator;
  workspace!: TeamsWorkspace;
  http!: HttpServer;
  testBridge!: TestBridge;
  customer!: MemoryChannel;

  constructor(
    private readonly options: {
      /** Overrides, or a function of the emulator (e.g. to point auth at its OpenID metadata). */
      config?: Partial<TeamsConfig> | ((emulator: BotConnectorEmulator) => Partial<TeamsConfig>);
      bridge?: Parameters<typeof createTestBridge>[0];
      /** The workspace's logger (default: silent). */
      logger?: Logger;
    } = {},
  ) {}

  get bridge(): Bridge {
    return this.testBridge.bridge;
  }

  async start(agent?: Agent): Promise<{ bridge: Bridge; customer: MemoryChannel }> {
    this.emulator = new BotConnectorEmulator();
    const serviceUrl = await this.emulator.start();
    this.customer = new MemoryChannel();
    this.testBridge = await createTestBridge({ ...this.options.bridge, ...(agent ? { agent } : {}), channels: [this.customer] });
    this.http = new HttpServer(silentLogger());
    const bridge = this.testBridge.bridge;
    this.workspace = createTeamsWorkspace({
      bridge: redactedPort(bridge, bridge.redactor),
      http: this.http,
      logger: this.options.logger ?? silentLogger(),
      config: {
        appId: '',
        appPassword: '',
        tenantId: '',
        appType: 'MultiTenant',
        channelId: TEAMS_TEST_CHANNEL,
        serviceUrl,
        // Local development's opt-out, on 127.0.0.1: outbound calls would need a token from
        // Microsoft. Authentication itself is tested with signed tokens (test/teams/auth.test.ts).
        allowUnauthenticated: true,
        // A 429 without Retry-After waits 20-60 ms here, not Teams' 1-3 s.
        throttleBackoffMs: 20,
        requestTimeoutMs: 5000,
        // Teams' real per-thread pacing is proven in its own test; here it would only slow the suite.
        threadLimits: [[1000, 100]],
        ...(typeof this.options.config === 'function' ? this.options.config(this.emulator) : this.options.config),
      },
    });
    this.testBridge.bridge.addWorkspace(this.workspace);
    const port = await this.http.listen(0, '127.0.0.1');
    this.emulator.botUrl = `http://127.0.0.1:${port}/api/messages`;
    await this.workspace.start();
    this.http.setReady(true);
    return { bridge: this.testBridge.bridge, customer: this.customer };
  }

  async stop(): Promise<void> {
    await this.settle().catch(() => {});
    await this.workspace?.stop();
    await this.http?.close();
    await this.testBridge?.close();
    await this.emulator?.stop();
  }

  /** The conversation's thread id in Teams, found the way a person would: by the ticket on the root. */
  async threadId(conversationId: string): Promise<string> {
    const conversation = await this.bridge.getConversation(conversationId);
    if (!conversation) throw new Error(`No conversation ${conversationId}`);
    const root = this.emulator.roots().find((r) => visibleText(r.activity).includes(`${conversation.ticket} · `));
    if (!root) throw new Error(`No Teams thread for ${conversation.ticket}`);
    return root.conversationId;
  }

  async threadTexts(conversationId: string): Promise<string[]> {
    const threadId = await this.threadId(conversationId);
    return this.emulator.replies(threadId, { fromBot: true }).map((m) => visibleText(m.activity));
  }

  /** The bot's briefing cards in the thread (replies carrying a card with a per-user refresh), oldest first. */
  async briefingMessages(conversationId: string): Promise<TeamsMessage[]> {
    const threadId = await this.threadId(conversationId);
    return this.emulator.replies(threadId, { fromBot: true }).filter((m) => cardOf(m.activity)?.refresh);
  }

  async briefingCards(conversationId: string): Promise<string[]> {
    return (await this.briefingMessages(conversationId)).map((m) => JSON.stringify(cardOf(m.activity)));
  }

  async rootCard(conversationId: string): Promise<string> {
    const root = this.emulator.root(await this.threadId(conversationId));
    return JSON.stringify(cardOf(root!.activity));
  }

  async clickClaim(conversationId: string, operator: ContractOperator): Promise<void> {
    await this.click(conversationId, operator, 'Claim');
  }

  async clickOption(conversationId: string, operator: ContractOperator, optionId: string): Promise<void> {
    const conversation = await this.bridge.getConversation(conversationId);
    const option = conversation?.briefing?.options.find((o) => o.id === optionId);
    if (!option) throw new Error(`No option ${optionId} on the briefing`);
    await this.click(conversationId, operator, option.label);
  }

  async replyInThread(conversationId: string, operator: ContractOperator, text: string): Promise<void> {
    await this.postInThread(await this.threadId(conversationId), operator, text);
  }

  /** An operator writes in a Teams thread (a conversation's, or a briefing copy's); then the bridge settles. */
  async say(threadId: string, operator: ContractOperator, text: string, options: { mentionBot?: boolean } = {}): Promise<void> {
    await this.postInThread(threadId, operator, text, options.mentionBot === true);
    await this.settle();
  }

  /** A conversation the customer opened with `text`, escalated by the agent and claimed by `operator`; settled. */
  async heldConversation(customer: { id: string; name: string }, text: string, operator: ContractOperator): Promise<string> {
    const { conversation } = await this.bridge.customerMessage({ origin: 'api', customer, text });
    await this.settle();
    await this.clickClaim(conversation.id, operator);
    await this.settle();
    return conversation.id;
  }

  private async postInThread(threadId: string, operator: ContractOperator, text: string, mentionBot = false): Promise<void> {
    const res = await this.emulator.channelMessage({ threadId, from: user(operator), text, ...(mentionBot ? { mentionBot } : {}) });
    if (res.status !== 200) throw new Error(`Teams message answered ${res.status}`);
  }

  /** Teams' usual way: @mention the bot with `return <note>` in the thread. */
  async returnWithNote(conversationId: string, operator: ContractOperator, note: string): Promise<void> {
    const res = await this.emulator.channelMessage({ threadId: await this.threadId(conversationId), from: user(operator), text: `return ${note}`, mentionBot: true });
    if (res.status !== 200) throw new Error(`Teams message answered ${res.status}`);
  }

  /** The Reveal button (`Action.Submit`) under the mirrored message, clicked as `operator`. */
  async clickReveal(conversationId: string, operator: ContractOperator, messageId: string): Promise<void> {
    const threadId = await this.threadId(conversationId);
    const mirrored = this.emulator.replies(threadId, { fromBot: true }).find((m) => revealsMessage(cardOf(m.activity), messageId));
    if (!mirrored) throw new Error(`No Reveal button for message ${messageId} in the thread`);
    const res = await this.emulator.clickSubmit({ cardActivityId: mirrored.id, from: user(operator), title: 'Reveal' });
    if (res.status !== 200) throw new Error(`Teams message answered ${res.status}`);
  }

  /** Teams' usual way: @mention the bot with `route <agent> [--pin] [note]` in the thread. */
  async routeToAgent(conversationId: string, operator: ContractOperator, agent: string, options: { note?: string; pin?: boolean } = {}): Promise<void> {
    const text = ['route', agent, ...(options.pin ? ['--pin'] : []), ...(options.note ? [options.note] : [])].join(' ');
    const res = await this.emulator.channelMessage({ threadId: await this.threadId(conversationId), from: user(operator), text, mentionBot: true });
    if (res.status !== 200) throw new Error(`Teams message answered ${res.status}`);
  }

  async privateTexts(operator: ContractOperator): Promise<string[]> {
    return this.emulator.privateTexts(operator.userId);
  }

  /** Inbound turns start bridge work and bridge work starts Teams calls: drain both until quiet. */
  async settle(): Promise<void> {
    for (let round = 0; round < 4; round++) {
      await this.bridge.idle();
      await this.workspace.idle();
      await new Promise((r) => setImmediate(r));
    }
  }

  private async click(conversationId: string, operator: ContractOperator, title: string): Promise<void> {
    const latest = (await this.briefingMessages(conversationId)).at(-1);
    if (!latest) throw new Error('No briefing card in the thread');
    const result = await this.emulator.clickButton({ cardActivityId: latest.id, from: user(operator), title });
    if (result.status !== 200) throw new Error(`Teams invoke answered ${result.status}`);
  }
}

/** The card's Reveal button is for `messageId` (read from the button's data, as Teams would send it). */
function revealsMessage(card: Record<string, unknown> | undefined, messageId: string): boolean {
  const actions = (card?.actions ?? []) as Array<{ type?: string; data?: { action?: string; messageId?: string } }>;
  return actions.some((a) => a.type === 'Action.Submit' && a.data?.action === 'reveal' && a.data.messageId === messageId);
}

function user(operator: ContractOperator): TeamsUser {
  return { id: operator.userId, name: operator.name };
}
