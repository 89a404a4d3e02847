/**
 * What an operator sees privately: the note modal for Return / Close, the ephemeral picker when
 * `/return` could mean several conversations, and short private notices.
 */
import type { types } from '@slack/bolt';
import type { Conversation } from '../../src/model.ts';
import { LIMITS, type SlackMessage } from './limits.ts';
import { ownerLabel } from './status.ts';
import { escapeMrkdwn, fit, mrkdwn, plain, quote } from './text.ts';

/** Return or close: the two hand-backs an operator can make with a note. */
export type HandBack = 'return' | 'close';

/** callback_ids of the note modals, and the ids of their note input. */
export const NOTE_MODAL = {
  return: 'handoff_return_note',
  close: 'handoff_close_note',
  blockId: 'note',
  actionId: 'note',
} as const;

/** action_ids of the picker buttons. */
export const PICKER_ACTIONS = { return: 'picker_return', close: 'picker_close' } as const;

/** Longest note an operator can type in the modal. */
export const MAX_NOTE = 2000;

/** What the modal carries through Slack untouched (private_metadata). */
export interface NoteModalMetadata {
  conversationId: string;
  /** Where to tell the operator if something goes wrong after the modal closed. */
  channel?: string;
  threadTs?: string;
}

/** The modal that asks for the note before returning (or closing) a conversation. */
export function noteModal(kind: HandBack, conversation: Conversation, metadata: NoteModalMetadata): types.ModalView {
  const ticket = conversation.ticket;
  return {
    type: 'modal',
    callback_id: NOTE_MODAL[kind],
    private_metadata: fit(JSON.stringify(metadata), LIMITS.privateMetadata),
    title: { type: 'plain_text', text: kind === 'return' ? 'Return to agent' : 'Close conversation' },
    submit: { type: 'plain_text', text: kind === 'return' ? 'Return' : 'Close' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      {
        type: 'section',
        text: {
          type: 'mrkdwn',
          text: fit(
            kind === 'return'
              ? `*${escapeMrkdwn(ticket)}* goes back to the AI agent. Your note is the first thing it reads; tell it what changed and what to do next.`
              : `*${escapeMrkdwn(ticket)}* will be closed. The note stays in the thread and the conversation's history.`,
            LIMITS.sectionText,
          ),
        },
      },
      {
        type: 'input',
        block_id: NOTE_MODAL.blockId,
        optional: true,
        label: { type: 'plain_text', text: kind === 'return' ? 'Note for the agent' : 'Closing note' },
        element: {
          type: 'plain_text_input',
          action_id: NOTE_MODAL.actionId,
          multiline: true,
          max_length: MAX_NOTE,
          placeholder: { type: 'plain_text', text: kind === 'return' ? 'e.g. Refund approved by finance; confirm the new delivery date.' : 'e.g. Solved by phone.' },
        },
      },
    ],
  };
}

/** Reads the metadata back from a submitted modal; undefined if it is not ours. */
export function parseNoteModalMetadata(raw: unknown): NoteModalMetadata | undefined {
  if (typeof raw !== 'string' || !raw) return undefined;
  try {
    const data = JSON.parse(raw) as Partial<NoteModalMetadata>;
    if (typeof data.conversationId !== 'string' || data.conversationId.length === 0) return undefined;
    return {
      conversationId: data.conversationId,
      ...(typeof data.channel === 'string' ? { channel: data.channel } : {}),
      ...(typeof data.threadTs === 'string' ? { threadTs: data.threadTs } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * The ephemeral picker for `/return` (or `/close-ticket`) when the operator holds several conversations.
 * Each button's value is `<conversationId>|<pickId>`; the note waits in the store under `pickId`.
 */
export function pickerMessage(kind: HandBack, conversations: Conversation[], pickId: string): SlackMessage {
  const verb = kind === 'return' ? 'return to the agent' : 'close';
  const shown = conversations.slice(0, 40);
  const blocks: types.KnownBlock[] = [
    { type: 'section', text: { type: 'mrkdwn', text: `You hold ${conversations.length} conversations. Which one do you want to ${verb}?` } },
  ];
  for (const conversation of shown) {
    const c = conversation.customer;
    blocks.push({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: fit(`*${escapeMrkdwn(conversation.ticket)}* · ${escapeMrkdwn(c.name ?? c.email ?? c.id)} · ${escapeMrkdwn(conversation.queue)}${conversation.subject ? `\n${escapeMrkdwn(conversation.subject)}` : ''}`, LIMITS.sectionText),
      },
      accessory: {
        type: 'button',
        action_id: PICKER_ACTIONS[kind],
        text: { type: 'plain_text', text: plain(`${kind === 'return' ? 'Return' : 'Close'} ${conversation.ticket}`, LIMITS.buttonText) },
        value: fit(`${conversation.id}|${pickId}`, LIMITS.buttonValue),
      },
    });
  }
  if (conversations.length > shown.length) {
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `${conversations.length - shown.length} more not shown; name the ticket: \`/return HB-1042 your note\`.` }] });
  }
  return { text: `Which conversation do you want to ${verb}?`, blocks };
}

/** Splits a picker button value back into conversation id and pick id. */
export function parsePickerValue(value: unknown): { conversationId: string; pickId: string } | undefined {
  if (typeof value !== 'string' || !value) return undefined;
  const bar = value.lastIndexOf('|');
  if (bar <= 0) return undefined;
  return { conversationId: value.slice(0, bar), pickId: value.slice(bar + 1) };
}

/** Private notices, as escaped mrkdwn. */
export const notices = {
  alreadyClaimed: (holder: string, ticket: string) => `:lock: *${escapeMrkdwn(ticket)}* is already held by *${escapeMrkdwn(holder)}*.`,
  claimed: (ticket: string) => `:raising_hand: You hold *${escapeMrkdwn(ticket)}*. Reply in its thread to talk to the customer; start with \`//\` for an internal note.`,
  holdsNothing: (kind: HandBack) => `You don't hold any conversation to ${kind === 'return' ? 'return' : 'close'}. Claim one from its briefing first, or name a ticket: \`/${kind === 'return' ? 'return' : 'close-ticket'} HB-1042 note\`.`,
  unknownTicket: (ticket: string) => `No conversation with ticket *${escapeMrkdwn(ticket)}*.`,
  notInThread: () => 'This message is not in a conversation thread the bridge knows.',
  done: (kind: HandBack, ticket: string) =>
    kind === 'return' ? `:leftwards_arrow_with_hook: *${escapeMrkdwn(ticket)}* is back with the agent.` : `:lock: *${escapeMrkdwn(ticket)}* is closed.`,
  failed: (message: string) => `:warning: ${mrkdwn(message, 2000)}`,
  notRecordedYet: () => ':hourglass_flowing_sand: Your reply could not be recorded yet, so the customer does not have it. Slack will deliver it to the bridge again in a moment; no need to resend.',
  notRecorded: () => ':warning: Your reply could not be recorded and did not reach the customer. Please send it again.',
  state: (conversation: Conversation) => `*${escapeMrkdwn(conversation.ticket)}*: ${ownerLabel(conversation)}`,
  /** The original of a message with masked values, for the owner only (an ephemeral message). */
  revealed: (ticket: string, original: string) =>
    `:unlock: Only you see this; the reveal is logged in *${escapeMrkdwn(ticket)}*'s history.\n${quote(mrkdwn(original, 12000))}`,
  routed: (ticket: string, agent: string, pinned: boolean) =>
    `:twisted_rightwards_arrows: *${escapeMrkdwn(ticket)}* now goes to the *${escapeMrkdwn(agent)}* agent${pinned ? ', pinned until someone picks again' : ''}.`,
  /** `/route` without an agent: how to use it, and which agents there are. */
  routeUsage: (agents: readonly string[]) =>
    agents.length === 0
      ? ':warning: One agent runs here: there is no other agent to route to.'
      : `:warning: Name the agent: \`/route HB-1042 ${escapeMrkdwn(agents[0]!)} [--pin] [note]\`. Agents: ${agents.map(escapeMrkdwn).join(', ')}.`,
} as const;
