/**
 * The workspace contract driver for the operator console: boots the real console on the shared HTTP
 * server and acts as its page does (signed-in sessions, the API's buttons, the live socket). What
 * the thread shows is read from the socket's pushes, so the suite also proves the live view keeps up.
 * The console reads the bridge through `redactedPort`, as app.ts wires it (startConsole does).
 */
import type { Agent } from '../../src/agent/agent.ts';
import type { Bridge } from '../../src/bridge.ts';
import type { MemoryChannel } from '../support/memory-ports.ts';
import { waitFor } from '../support/harness.ts';
import { startConsole, type ApiAnswer, type ConsoleRig, type OperatorClient } from '../console/support.ts';
import type { ContractOperator, WorkspaceDriver } from './driver.ts';

export class ConsoleDriver implements WorkspaceDriver {
  readonly name = 'console' as const;
  private rig?: ConsoleRig;
  private readonly clients = new Map<string, OperatorClient>();
  /** Texts told privately: pushed notices and the errors an action answered with (the page shows both). */
  private readonly told = new Map<string, string[]>();
  /** A manager's screen watching every conversation, as the page would show it. */
  private watcher?: OperatorClient;

  private get r(): ConsoleRig {
    if (!this.rig) throw new Error('ConsoleDriver: call start() first');
    return this.rig;
  }

  async start(agent: Agent): Promise<{ bridge: Bridge; customer: MemoryChannel }> {
    // The contract's operators, by their platform ids, plus a read-only manager who watches.
    this.rig = await startConsole({
      agent,
      config: {
        operators: [
          { id: 'U0DANA', name: 'Dana', role: 'operator' },
          { id: 'U0SAM', name: 'Sam', role: 'operator' },
          { id: 'watcher', name: 'Watcher', role: 'manager' },
        ],
      },
    });
    this.watcher = await this.rig.signIn('watcher');
    await this.watcher.connect();
    return { bridge: this.rig.bridge, customer: this.rig.customer };
  }

  async stop(): Promise<void> {
    await this.rig?.close();
    this.rig = undefined;
    this.clients.clear();
    this.told.clear();
  }

  async threadTexts(conversationId: string): Promise<string[]> {
    const view = await this.liveView(conversationId);
    return view.entries.map((e) => e.text);
  }

  async briefingCards(conversationId: string): Promise<string[]> {
    const view = await this.liveView(conversationId);
    return view.briefing ? [JSON.stringify(view.briefing)] : [];
  }

  async rootCard(conversationId: string): Promise<string> {
    await this.settle();
    const row = await waitFor(() => this.watcher!.inbox().get(conversationId), { what: 'the inbox row' });
    return JSON.stringify(row);
  }

  async clickClaim(conversationId: string, operator: ContractOperator): Promise<void> {
    await this.action(operator, conversationId, 'claim', {}, ['already_claimed']);
  }

  async clickOption(conversationId: string, operator: ContractOperator, optionId: string): Promise<void> {
    const client = await this.client(operator);
    const view = await client.view(conversationId);
    if (!view.briefing) throw new Error('No briefing on the conversation');
    await this.action(operator, conversationId, 'decide', { optionId, escalation: view.briefing.escalation }, ['invalid_transition', 'stale_briefing', 'not_owner']);
  }

  async replyInThread(conversationId: string, operator: ContractOperator, text: string): Promise<void> {
    await this.action(operator, conversationId, 'reply', { text, clientId: `c${Math.random().toString(36).slice(2)}` });
  }

  async returnWithNote(conversationId: string, operator: ContractOperator, note: string): Promise<void> {
    await this.action(operator, conversationId, 'return', { note });
  }

  /** The Reveal button on the message's line: the original comes back in that answer only (the page shows it to this person). */
  async clickReveal(conversationId: string, operator: ContractOperator, messageId: string): Promise<void> {
    const answer = await this.action(operator, conversationId, 'reveal', { messageId, requestId: requestId() }, ['not_owner', 'not_found']);
    const revealed = (answer?.body as { revealed?: { text: string } } | undefined)?.revealed;
    if (revealed) this.tell(operator, revealed.text);
  }

  /** The Route… dialog: an agent from the session's list, a note and the pin box. */
  async routeToAgent(conversationId: string, operator: ContractOperator, agent: string, options: { note?: string; pin?: boolean } = {}): Promise<void> {
    const client = await this.client(operator);
    const session = await client.get<{ settings: { agents: string[] } }>('session');
    if (session.body.settings.agents.length === 0) throw new Error('The console offers no Route action with one agent');
    await this.action(operator, conversationId, 'route', { agent, ...(options.note ? { note: options.note } : {}), ...(options.pin ? { pin: true } : {}), requestId: requestId() }, ['unknown_agent', 'single_agent', 'invalid_transition']);
  }

  async privateTexts(operator: ContractOperator): Promise<string[]> {
    const client = await this.client(operator);
    return [...client.notices(), ...(this.told.get(operator.userId) ?? [])];
  }

  async settle(): Promise<void> {
    await this.r.settle();
  }

  /** The thread as the watching manager's socket last received it, once it shows the stored version. */
  private async liveView(conversationId: string) {
    await this.settle();
    const watcher = this.watcher!;
    if (watcher.thread(conversationId) === undefined) watcher.show(conversationId);
    const stored = await this.r.bridge.getConversation(conversationId);
    return watcher.waitThread(conversationId, (v) => v.row.version >= (stored?.version ?? 0), 'the live thread to catch up');
  }

  private async client(operator: ContractOperator): Promise<OperatorClient> {
    let client = this.clients.get(operator.userId);
    if (!client) {
      client = await this.r.signIn(operator.userId);
      await client.connect();
      this.clients.set(operator.userId, client);
    }
    return client;
  }

  private tell(operator: ContractOperator, text: string): void {
    this.told.set(operator.userId, [...(this.told.get(operator.userId) ?? []), text]);
  }

  /** Presses a button; an expected refusal is what the page would show the person, anything else fails. */
  private async action(operator: ContractOperator, conversationId: string, action: string, body: Record<string, unknown>, expected: string[] = []): Promise<ApiAnswer | undefined> {
    const client = await this.client(operator);
    const answer = await client.act(conversationId, action, body);
    if (answer.status === 200) return answer;
    const error = answer.body.error;
    if (error && expected.includes(error.code)) {
      this.tell(operator, error.message);
      return undefined;
    }
    throw new Error(`console ${action} answered ${answer.status}: ${error?.message ?? 'no message'}`);
  }
}

/** The page's id for one press (it becomes the bridge's idempotency key). */
function requestId(): string {
  return `r${Math.random().toString(36).slice(2)}`;
}

/** The driver the contract suite runs. */
export function consoleDriver(): WorkspaceDriver {
  return new ConsoleDriver();
}
