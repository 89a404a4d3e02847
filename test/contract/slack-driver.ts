/**
 * The workspace contract driver for Slack: boots the real Slack adapter against the loopback Web API
 * emulator and acts as Slack would (signed events, button clicks, `/return`, `/route`). The adapter
 * reads the bridge through `redactedPort`, as in src/app.ts (see test/slack/fixture.ts).
 */
import type { Agent } from '../../src/agent/agent.ts';
import type { Bridge } from '../../src/bridge.ts';
import { CHANNEL, startSlackFixture, type SlackFixture } from '../slack/fixture.ts';
import type { MemoryChannel } from '../support/memory-ports.ts';
import type { ContractOperator, WorkspaceDriver } from './driver.ts';

export class SlackDriver implements WorkspaceDriver {
  readonly name = 'slack' as const;
  private fixture?: SlackFixture;

  private get f(): SlackFixture {
    if (!this.fixture) throw new Error('SlackDriver: call start() first');
    return this.fixture;
  }

  async start(agent: Agent): Promise<{ bridge: Bridge; customer: MemoryChannel }> {
    this.fixture = await startSlackFixture({ agent });
    return { bridge: this.fixture.bridge, customer: this.fixture.customer };
  }

  async stop(): Promise<void> {
    await this.fixture?.close();
    this.fixture = undefined;
  }

  async threadTexts(conversationId: string): Promise<string[]> {
    return this.f.threadTexts(conversationId);
  }

  async briefingCards(conversationId: string): Promise<string[]> {
    const copies = await this.f.briefings(conversationId);
    return copies.map((c) => JSON.stringify(this.f.emulator.message(c.channel, c.ts)?.versions.at(-1) ?? null));
  }

  async rootCard(conversationId: string): Promise<string> {
    const root = await this.f.root(conversationId);
    return JSON.stringify(this.f.emulator.message(root.channel, root.ts)?.versions.at(-1) ?? null);
  }

  async clickClaim(conversationId: string, operator: ContractOperator): Promise<void> {
    this.ensureUser(operator);
    // A later claimer may still see the Claim button before their client refreshes: allow a stale click.
    await this.expectOk(this.f.click(conversationId, operator.userId, 'briefing_claim', { stale: true }), 'Claim');
  }

  async clickOption(conversationId: string, operator: ContractOperator, optionId: string): Promise<void> {
    this.ensureUser(operator);
    await this.expectOk(this.f.click(conversationId, operator.userId, `briefing_option:${optionId}`, { stale: true }), `option ${optionId}`);
  }

  async replyInThread(conversationId: string, operator: ContractOperator, text: string): Promise<void> {
    this.ensureUser(operator);
    await this.f.reply(conversationId, operator.userId, text);
  }

  async returnWithNote(conversationId: string, operator: ContractOperator, note: string): Promise<void> {
    this.ensureUser(operator);
    const conversation = await this.f.bridge.getConversation(conversationId);
    if (!conversation) throw new Error(`no conversation ${conversationId}`);
    // Name the ticket so the command is unambiguous even if the operator holds several.
    const command = this.f.emulator.slashCommand({ command: '/return', text: `${conversation.ticket} ${note}`, user: operator.userId, channel: CHANNEL });
    const answer = await this.f.events.command(command);
    if (answer.status !== 200) throw new Error(`/return answered ${answer.status}`);
  }

  async clickReveal(conversationId: string, operator: ContractOperator, messageId: string): Promise<void> {
    this.ensureUser(operator);
    if (!(await this.f.bridge.getConversation(conversationId))?.messages.some((m) => m.id === messageId)) throw new Error(`no message ${messageId} in ${conversationId}`);
    await this.expectOk(this.f.clickReveal(messageId, operator.userId), 'Reveal');
  }

  async routeToAgent(conversationId: string, operator: ContractOperator, agent: string, options: { note?: string; pin?: boolean } = {}): Promise<void> {
    this.ensureUser(operator);
    const conversation = await this.f.bridge.getConversation(conversationId);
    if (!conversation) throw new Error(`no conversation ${conversationId}`);
    const text = [conversation.ticket, agent, ...(options.pin ? ['--pin'] : []), ...(options.note ? [options.note] : [])].join(' ');
    await this.expectOk(this.f.command(operator.userId, '/route', text), '/route');
  }

  async privateTexts(operator: ContractOperator): Promise<string[]> {
    const ephemeral = this.f.emulator.ephemerals.filter((e) => e.user === operator.userId).map((e) => e.text);
    const responses = this.f.emulator.responsesFor(operator.userId).map((r) => String(r.text ?? ''));
    return [...ephemeral, ...responses];
  }

  async settle(): Promise<void> {
    await this.f.settle();
  }

  /** Contract operators may be new to the emulator: make Slack know their display name. */
  private ensureUser(operator: ContractOperator): void {
    if (!this.f.emulator.users.has(operator.userId)) {
      this.f.emulator.addUser({ id: operator.userId, name: operator.name.toLowerCase().replace(/\s+/g, '.'), displayName: operator.name });
    }
  }

  private async expectOk(status: Promise<number>, what: string): Promise<void> {
    const code = await status;
    if (code !== 200) throw new Error(`Slack answered ${code} to ${what}`);
  }
}

/** The driver the contract suite runs. */
export function slackDriver(): WorkspaceDriver {
  return new SlackDriver();
}
