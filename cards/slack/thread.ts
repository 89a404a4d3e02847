/**
 * What goes into a conversation's Slack thread: the root (customer, origin, ticket, owner), one reply
 * per transcript message labelled by its author (the bridge's own system messages record who claimed,
 * decided, returned with which note, or closed). A message whose values were masked gets a Reveal
 * button (the owner sees the original privately).
 * Every customer- or agent-written character is escaped: nothing from outside can ping or disguise a link.
 */
import type { types } from '@slack/bolt';
import type { Conversation, Message } from '../../src/model.ts';
import { blocksTextLength, LIMITS, type SlackMessage } from './limits.ts';
import { ownerLabel } from './status.ts';
import { escapeMrkdwn, fit, mrkdwn, plain, splitMrkdwn } from './text.ts';

/** action_ids on thread messages. */
export const THREAD_ACTIONS = { reveal: 'thread_reveal' } as const;

/** Longest transcript text mirrored in one Slack message; the rest is cut with a note. */
const MAX_MESSAGE_TEXT = 12000;

const ORIGIN_LABEL: Record<string, string> = { webchat: 'web chat', email: 'email', api: 'API' };

/** The thread's root message: who the customer is, where they wrote from, the ticket and who owns it now. */
export function threadRoot(conversation: Conversation): SlackMessage {
  const c = conversation.customer;
  const customer = c.name ?? c.email ?? c.id;
  const origin = ORIGIN_LABEL[conversation.origin] ?? conversation.origin;
  const lines = [
    `:speech_balloon: *${escapeMrkdwn(conversation.ticket)}* · *${escapeMrkdwn(customer)}*${c.email && c.email !== customer ? ` (${escapeMrkdwn(c.email)})` : ''} via ${escapeMrkdwn(origin)}`,
  ];
  if (conversation.subject) lines.push(`*Subject:* ${escapeMrkdwn(conversation.subject.replace(/\s+/g, ' '))}`);
  return {
    text: fit(`${escapeMrkdwn(conversation.ticket)} · ${escapeMrkdwn(customer)} via ${escapeMrkdwn(origin)} · owner: ${ownerLabel(conversation)}`, 3000),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: fit(lines.join('\n'), LIMITS.sectionText) } },
      {
        type: 'context',
        elements: [
          { type: 'mrkdwn', text: fit(`*Owner:* ${ownerLabel(conversation)}`, LIMITS.contextText) },
          { type: 'mrkdwn', text: fit(`*Queue:* ${escapeMrkdwn(conversation.queue)}`, LIMITS.contextText) },
          { type: 'mrkdwn', text: 'Replies in this thread from the owner reach the customer; start with `//` for an internal note.' },
        ],
      },
    ],
  };
}

/** What the thread adds to the escalation ladder's internal notices (from the Slack configuration). */
export interface ThreadContext {
  /** User group (`S...`) a reminder mentions: the queue's on-call group. */
  oncallGroup?: string;
  /** The managers' channel, linked from the "sent to the managers" line. */
  managersChannel?: string;
  /** The conversation the thread mirrors: with it, a message with masked values gets a Reveal button. */
  conversationId?: string;
}

/** What a Reveal button carries: `<conversation id>|<message id>`. */
export function revealButtonValue(conversationId: string, messageId: string): string {
  return `${conversationId}|${messageId}`;
}

export function parseRevealButtonValue(value: unknown): { conversationId: string; messageId: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const parts = value.split('|');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return undefined;
  return { conversationId: parts[0], messageId: parts[1] };
}

/** Ids that may go into a mention or channel link as they are. */
const USER_GROUP_ID = /^S[A-Z0-9]{2,}$/;
const CHANNEL_ID = /^[CG][A-Z0-9]{2,}$/;

/** One transcript message as a thread reply, labelled by author; internal notes and notices look different. */
export function threadMessage(message: Message, context: ThreadContext = {}): SlackMessage {
  const name = message.author.name;
  let label: string;
  switch (message.author.role) {
    case 'customer':
      label = `:bust_in_silhouette: *${escapeMrkdwn(name ?? 'Customer')}* (customer)`;
      break;
    case 'agent':
      label = `:robot_face: *${escapeMrkdwn(name ?? 'AI agent')}*${name ? ' (agent)' : ''}`;
      break;
    case 'operator':
      label = `:technologist: *${escapeMrkdwn(name ?? 'Operator')}* (operator${message.source ? `, ${escapeMrkdwn(message.source.workspace)}` : ''})`;
      break;
    case 'system':
      // Public system messages are status notices the customer saw; internal ones record who did what.
      label = message.visibility === 'public' ? ':speech_balloon: *Customer was told:*' : ':information_source:';
      if (message.notice === 'reminder') label = ':alarm_clock:';
      if (message.notice === 'managers') label = ':mega:';
      break;
  }
  if (message.visibility === 'internal' && message.author.role !== 'system') {
    label = `:memo: *Internal note* · ${escapeMrkdwn(name ?? message.author.role)}`;
  }
  const body = message.text.trim().length > 0 ? bodyText(message.text) : '';
  const files = (message.attachments ?? []).map((a) => `:paperclip: ${mrkdwn(a.name, 300)}: ${mrkdwn(a.url, 2000)}`);
  const separator = message.author.role === 'system' ? ' ' : '\n';
  const head = [label, body, ladderSuffix(message, context)].filter((p) => p.length > 0).join(separator);
  const text = fit([head, ...files].join('\n'), LIMITS.messageText);
  if (!(message.masked && message.masked > 0) || !context.conversationId) return { text };
  return { text, blocks: withRevealButton(text, revealButtonValue(context.conversationId, message.id)) };
}

/**
 * The message as sections (Slack shows blocks instead of `text`) followed by the Reveal button.
 * A message longer than the blocks budget (about 11,000 characters) is cut there with a note.
 */
function withRevealButton(text: string, value: string): types.KnownBlock[] {
  const actions: types.ActionsBlock = {
    type: 'actions',
    block_id: 'thread_reveal',
    elements: [{ type: 'button', action_id: THREAD_ACTIONS.reveal, text: { type: 'plain_text', text: 'Reveal', emoji: true }, value: fit(value, LIMITS.buttonValue) }],
  };
  const cutNote = '\n_(cut to fit Slack)_';
  const budget = LIMITS.messageBlocksText - blocksTextLength([actions]);
  const shown = text.length <= budget ? text : fit(text, budget - cutNote.length) + cutNote;
  const sections: types.KnownBlock[] = splitMrkdwn(shown, LIMITS.sectionText).map((chunk) => ({ type: 'section', text: { type: 'mrkdwn', text: chunk } }));
  return [...sections, actions];
}

/** The on-call mention on a reminder, the channel link on a "sent to the managers" line. */
function ladderSuffix(message: Message, context: ThreadContext): string {
  if (message.author.role !== 'system' || message.visibility !== 'internal') return '';
  if (message.notice === 'reminder' && context.oncallGroup && USER_GROUP_ID.test(context.oncallGroup)) return `<!subteam^${context.oncallGroup}>`;
  if (message.notice === 'managers' && context.managersChannel && CHANNEL_ID.test(context.managersChannel)) return `→ <#${context.managersChannel}>`;
  return '';
}

/** A plain line from the bridge into the thread (e.g. a file that could not be relayed). */
export function bridgeLine(text: string): SlackMessage {
  return { text: `:information_source: ${mrkdwn(text, 3000)}` };
}

function bodyText(raw: string): string {
  const escaped = escapeMrkdwn(raw);
  if (escaped.length <= MAX_MESSAGE_TEXT) return escaped;
  return `${fit(escaped, MAX_MESSAGE_TEXT)}\n_(${raw.length} characters; cut to fit Slack)_`;
}

/** The thread root's plain-text title (used where Slack wants plain text, e.g. modal headers). */
export function conversationTitle(conversation: Conversation, max = 75): string {
  const c = conversation.customer;
  return plain(`${conversation.ticket} · ${c.name ?? c.email ?? c.id}`, max);
}
