/**
 * Reading what Teams sends: who acted, the text with the bot's own @mention removed, typed thread
 * commands (`return: note`, `close`, `route billing --pin`, `transfer: billing`...), and file
 * attachments as links. Pure functions over the activity JSON; the turn handler does the I/O.
 */
import type { Attachment, Operator } from '../../src/model.ts';
import { safeUrl } from '../../cards/teams/text.ts';

/** The parts of a Teams activity the bridge reads (Teams sends many more). */
export interface TeamsActivity {
  type?: string;
  id?: string;
  name?: string;
  text?: string;
  value?: unknown;
  serviceUrl?: string;
  channelId?: string;
  replyToId?: string;
  from?: { id?: string; name?: string; aadObjectId?: string; role?: string };
  recipient?: { id?: string; name?: string };
  conversation?: { id?: string; tenantId?: string; conversationType?: string; isGroup?: boolean };
  entities?: Array<{ type?: string; text?: string; mentioned?: { id?: string; name?: string } }>;
  attachments?: Array<{ contentType?: string; contentUrl?: string; name?: string; content?: unknown }>;
  channelData?: { tenant?: { id?: string }; channel?: { id?: string }; team?: { id?: string; aadGroupId?: string }; eventType?: string };
}

/** A typed command in a conversation's thread, or an ordinary message. */
export type ThreadCommand =
  | { kind: 'return'; note?: string }
  | { kind: 'close'; note?: string }
  | { kind: 'claim' }
  | { kind: 'takeover' }
  | { kind: 'help' }
  /** Pick the agent that answers: `route <agent> [--pin] [note]`. */
  | { kind: 'route'; agent?: string; pin: boolean; note?: string }
  /** Move the conversation to another queue: `transfer <queue> [note]`. */
  | { kind: 'transfer'; queue?: string; note?: string }
  | { kind: 'message'; text: string };

/** The Teams user behind an activity as a bridge operator (`teams:<user id>`). */
export function operatorFromActivity(activity: TeamsActivity): Operator | undefined {
  const id = activity.from?.id;
  if (!id) return undefined;
  return { id: `teams:${id}`, name: activity.from?.name?.trim() || 'Teams user', workspace: 'teams' };
}

/** The Teams user id of a bridge operator, when the operator acts from Teams. */
export function teamsUserId(operator: Operator): string | undefined {
  return operator.workspace === 'teams' && operator.id.startsWith('teams:') ? operator.id.slice('teams:'.length) : undefined;
}

/** The activity came from a bot (ours or another): never treat it as an operator. */
export function isFromBot(activity: TeamsActivity): boolean {
  const from = activity.from?.id ?? '';
  return activity.from?.role === 'bot' || from.startsWith('28:') || (!!from && from === activity.recipient?.id);
}

/**
 * The message text with the bot's own @mention removed (other mentions become `@Name`), and whether
 * the bot was mentioned. Mentions are matched through the activity's mention entities, like
 * botbuilder's `TurnContext.removeRecipientMention`.
 */
export function messageText(activity: TeamsActivity): { text: string; mentionedBot: boolean } {
  let text = activity.text ?? '';
  const botId = activity.recipient?.id;
  let mentionedBot = false;
  for (const entity of activity.entities ?? []) {
    if (entity.type !== 'mention' || !entity.text) continue;
    if (botId && entity.mentioned?.id === botId) {
      mentionedBot = true;
      text = text.split(entity.text).join(' ');
    }
  }
  text = text
    .replace(/<at>([\s\S]*?)<\/at>/gi, (_m, name: string) => `@${name}`)
    .replace(/&nbsp;/g, ' ')
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t]+/g, ' ')
    .trim();
  return { text, mentionedBot };
}

const COMMAND = /^(\/?)(return|close|claim|takeover|take over|route|transfer|help)\b\s*([:–—])?\s*([\s\S]*)$/i;

/**
 * Recognizes a typed command. With an @mention of the bot, `return <note>` and friends are commands.
 * Without one, only an unmistakable form counts (`return`, `return: note`, `/return note`), so a
 * reply like "Return the item to us" still reaches the customer.
 */
export function parseThreadCommand(text: string, mentionedBot: boolean): ThreadCommand {
  const match = COMMAND.exec(text.trim());
  if (!match) return { kind: 'message', text };
  const [, slash, word, separator, rest = ''] = match;
  const note = rest.trim();
  if (!mentionedBot && !slash && !separator && note) return { kind: 'message', text };
  switch (word!.toLowerCase()) {
    case 'return':
      return { kind: 'return', ...(note ? { note } : {}) };
    case 'close':
      return { kind: 'close', ...(note ? { note } : {}) };
    case 'claim':
      return { kind: 'claim' };
    case 'takeover':
    case 'take over':
      return { kind: 'takeover' };
    case 'route':
      return { kind: 'route', ...routeArguments(note) };
    case 'transfer': {
      const { word: queue, rest } = firstWord(note);
      return { kind: 'transfer', ...(queue ? { queue } : {}), ...(rest ? { note: rest } : {}) };
    }
    default:
      return { kind: 'help' };
  }
}

/** `billing --pin why` (or `--pin billing why`): the agent, whether to pin, and the note. */
function routeArguments(text: string): { agent?: string; pin: boolean; note?: string } {
  let rest = text;
  let agent: string | undefined;
  let pin = false;
  for (;;) {
    const { word, rest: after } = firstWord(rest);
    if (!word) break;
    if (/^--?pin$/i.test(word)) pin = true;
    else if (agent === undefined) agent = word;
    else break;
    rest = after;
  }
  return { ...(agent ? { agent } : {}), pin, ...(rest ? { note: rest } : {}) };
}

/** The first word (a trailing `:` or `,` dropped) and the trimmed rest. */
function firstWord(text: string): { word?: string; rest: string } {
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text.trim());
  if (!match) return { rest: '' };
  const word = match[1]!.replace(/[:,]+$/, '');
  return { ...(word ? { word } : {}), rest: match[2]!.trim() };
}

/** What `help` answers, privately. */
export const HELP_TEXT = [
  'In a conversation thread:',
  '• Reply normally: if you hold the conversation, the customer gets it; otherwise it stays an internal note.',
  '• Start with // for an internal note.',
  "• 'claim' (or the card's Claim button) takes the conversation.",
  "• 'return: what you did' hands it back to the agent with your note (or @mention me: 'return what you did').",
  "• 'close' closes it.",
  "• 'route: billing' (or @mention me: 'route billing --pin why') hands it to another agent; --pin keeps it there. Anyone may route.",
  "• 'transfer: billing why it moves' moves it to another queue as a new escalation there.",
  '• Reveal (under a message with masked values) sends the owner the original in a private chat; each reveal is logged.',
].join('\n');

const TEAMS_HOSTED = /(^|\.)(asm\.skype\.com|smba\.trafficmanager\.net|teams\.microsoft\.com|graph\.microsoft\.com)$/i;

/** Files the operator attached, as links the customer can follow (inline card payloads and Teams-hosted images are skipped). */
export function attachmentsFromActivity(activity: TeamsActivity): Attachment[] {
  const out: Attachment[] = [];
  for (const a of activity.attachments ?? []) {
    const type = a.contentType ?? '';
    if (type === 'text/html' || type.startsWith('application/vnd.microsoft.card')) continue;
    let url: string | undefined;
    if (type === 'application/vnd.microsoft.teams.file.download.info') {
      const downloadUrl = (a.content as { downloadUrl?: unknown } | null | undefined)?.downloadUrl;
      url = safeUrl(typeof downloadUrl === 'string' ? downloadUrl : undefined) ?? safeUrl(a.contentUrl);
    } else {
      url = safeUrl(a.contentUrl);
    }
    // Images pasted inline live behind Teams' own authentication: a customer could not open them.
    if (!url || TEAMS_HOSTED.test(new URL(url).hostname)) continue;
    const name = a.name?.trim() || safeDecode(new URL(url).pathname.split('/').pop() || '') || 'file';
    out.push({ name, url, ...(type && type !== 'reference' && !type.startsWith('application/vnd.microsoft') ? { contentType: type } : {}) });
  }
  return out;
}

/** `decodeURIComponent`, or the text as it is when it is not validly encoded. */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
