/**
 * Counts what people saw, from what the destinations actually received: the Slack emulator's stored
 * posts, the SMTP sink's mail, the frames each visitor's socket got. The transcript in the store
 * says what was committed (and in which order); the drivers say what each sender was told.
 *
 * - customer → thread: every customer message the customer was told was taken (web chat echo, SMTP
 *   250) appears in the conversation's Slack thread exactly once, in transcript order.
 * - owner → customer: every owner reply Slack got a 200 for reaches the customer exactly once (by
 *   its number: a second transcript message with the same text is a duplicate), in order.
 * - agent → customer: every committed agent reply reaches the customer, in order; a customer
 *   message the agent owed an answer to and never answered is lost; two answers to one turn are a duplicate.
 * - notices → customer: escalated/joined/returned notices, the same way.
 * - claims: each raced escalation ends with exactly one claim (one owner).
 * - muted: agent messages committed (so delivered) after an escalation and before the hand-back.
 * - Slack duplicates: two bridge posts with the same idempotency key (message metadata), or two thread
 *   roots; customer messages posted twice are counted under customer → thread instead.
 * A message whose sender was told it failed (and never got a success) is reported, not counted as lost.
 */
import { messageIdDomain, outboundMessageId } from '../../adapters/email/threading.ts';
import type { Conversation, Message } from '../../src/model.ts';
import type { Store } from '../../src/store/store.ts';
import type { SlackApiEmulator, StoredMessage } from '../emulators/slack-api.ts';
import type { Customer } from './customers.ts';
import type { SlackSide } from './operators.ts';
import { outOfOrder } from './util.ts';

export interface DirectionCounts {
  lost: number;
  duplicated: number;
  outOfOrder: number;
}

export interface Counts {
  customerToThread: DirectionCounts;
  ownerToCustomer: DirectionCounts;
  agentToCustomer: DirectionCounts;
  noticesToCustomer: DirectionCounts;
  claimsWithoutOneOwner: number;
  mutedAgentMessages: number;
  slackDuplicatePosts: number;
}

/** One owner reply as the operator (through Slack) sent it. */
export interface OperatorReply {
  conversationId: string;
  marker: string;
  accepted: boolean;
  outcomes: string[];
}

/** One escalation that two operators raced to claim. */
export interface ClaimRace {
  conversationId: string;
  /** Rounds of simultaneous clicks (a round is repeated when no claim shows up). */
  rounds: number;
  clicks: string[];
  /** Who the drivers saw as owner after the race, if anyone. */
  owner?: string;
  problem?: string;
}

export interface CountInput {
  customers: Customer[];
  replies: OperatorReply[];
  races: ClaimRace[];
  slack: SlackSide;
  emulator: SlackApiEmulator;
  store: Store;
  supportAddress: string;
}

export interface CountResult {
  counts: Counts;
  /** Context for the figures: what was sent, refused, retried, resent. */
  info: Record<string, number>;
  /** One line per counted problem: which message, which direction. */
  details: string[];
}

const MARKER = /#(r\d+[we]\d+[co]\d+)(?!\d)/g;

export function markersIn(text: string, kind?: 'c' | 'o'): string[] {
  return [...text.matchAll(MARKER)].map((m) => `#${m[1]}`).filter((m) => !kind || new RegExp(`${kind}\\d+$`).test(m));
}

/** The number at the end of a marker: its place in its sender's sequence. */
function sequenceNumber(marker: string): number {
  return Number(/(\d+)$/.exec(marker)?.[1] ?? NaN);
}

const zero = (): DirectionCounts => ({ lost: 0, duplicated: 0, outOfOrder: 0 });

export function emptyCounts(): Counts {
  return {
    customerToThread: zero(),
    ownerToCustomer: zero(),
    agentToCustomer: zero(),
    noticesToCustomer: zero(),
    claimsWithoutOneOwner: 0,
    mutedAgentMessages: 0,
    slackDuplicatePosts: 0,
  };
}

/** The sum of every count: 0 means nothing was lost, doubled, reordered, double-owned or said while muted. */
export function total(counts: Counts): number {
  let sum = counts.claimsWithoutOneOwner + counts.mutedAgentMessages + counts.slackDuplicatePosts;
  for (const d of [counts.customerToThread, counts.ownerToCustomer, counts.agentToCustomer, counts.noticesToCustomer]) sum += d.lost + d.duplicated + d.outOfOrder;
  return sum;
}

export async function countRun(input: CountInput): Promise<CountResult> {
  const counts = emptyCounts();
  const details: string[] = [];
  const info: Record<string, number> = {
    customerMessagesSent: 0,
    customerMessagesAccepted: 0,
    customerMessagesRefused: 0,
    customerResends: 0,
    customerMessagesInThreads: 0,
    ownerRepliesSent: 0,
    ownerRepliesAccepted: 0,
    ownerRepliesRefused: 0,
    ownerRepliesShown: 0,
    slackEventRetries: 0,
    agentReplies: 0,
    unansweredTurns: 0,
    emailResendsSameMessageId: 0,
    repeatedFramesHidden: 0,
    webchatReconnects: 0,
    webchatSessionsRefused: 0,
    claimRaces: input.races.length,
    claimRounds: 0,
  };
  const domain = messageIdDomain(input.supportAddress);
  const bot = input.emulator.messages.filter((m) => m.bot_id);

  for (const reply of input.replies) {
    info.ownerRepliesSent! += 1;
    if (reply.accepted) info.ownerRepliesAccepted! += 1;
    else {
      info.ownerRepliesRefused! += 1;
      details.push(`owner → customer: ${reply.marker} refused after Slack's retries (${reply.outcomes.join(', ')}); not counted as lost`);
    }
    info.slackEventRetries! += reply.outcomes.length - 1;
  }

  for (const customer of input.customers) {
    const who = `${customer.label} (${customer.channel})`;
    for (const sent of customer.sent) {
      info.customerMessagesSent! += 1;
      info.customerResends! += Math.max(0, sent.attempts - 1);
      if (sent.acceptedAt) info.customerMessagesAccepted! += 1;
      else {
        info.customerMessagesRefused! += 1;
        details.push(`customer → thread: ${sent.marker} of ${who} never accepted (${sent.errors.join(', ') || 'no answer'}); not counted as lost`);
      }
    }
    if (customer.channel === 'webchat') {
      info.webchatReconnects! += Math.max(0, customer.connects - 1);
      info.webchatSessionsRefused! += customer.abandoned.length;
      for (const id of customer.abandoned) details.push(`customer view: ${who} was refused its session and had to start over, leaving ${id}`);
    }
    const accepted = customer.sent.filter((s) => s.acceptedAt).map((s) => s.marker);
    const conversation = customer.conversationId ? await input.store.getConversation(customer.conversationId) : undefined;
    if (!conversation) {
      counts.customerToThread.lost += accepted.length;
      details.push(`customer → thread: ${who} has no conversation in the store; ${accepted.length} accepted message(s) lost`);
      continue;
    }
    const transcript = conversation.messages;
    const position = new Map(transcript.map((m, i) => [m.id, i]));

    // ---- customer → thread ------------------------------------------------------------------
    const stored = transcript.filter((m) => m.author.role === 'customer').flatMap((m) => markersIn(m.text, 'c').map((marker) => ({ marker, index: position.get(m.id)! })));
    const storedIndex = new Map<string, number>();
    const storedTimes = new Map<string, number>();
    for (const s of stored) {
      storedTimes.set(s.marker, (storedTimes.get(s.marker) ?? 0) + 1);
      if (storedIndex.has(s.marker)) {
        counts.customerToThread.duplicated += 1;
        details.push(`customer → thread: ${s.marker} of ${who} stored twice in the transcript`);
      } else storedIndex.set(s.marker, s.index);
    }
    for (const marker of accepted) {
      if (!storedIndex.has(marker)) {
        counts.customerToThread.lost += 1;
        details.push(`customer → thread: ${marker} of ${who} was accepted but is not in the transcript`);
      }
    }
    const roots = input.slack.roots(conversation.ticket);
    // Extra roots that share an idempotency key are counted with the keys below.
    const rootKeys = roots.map((r) => r.metadata?.event_payload?.key).filter((k): k is string => typeof k === 'string');
    const extraRoots = roots.length - 1 - (rootKeys.length - new Set(rootKeys).size);
    if (extraRoots > 0) {
      counts.slackDuplicatePosts += extraRoots;
      details.push(`slack: ${conversation.ticket} has ${roots.length} thread roots`);
    }
    const rootTs = new Set(roots.map((r) => r.ts));
    const posts = bot.filter((m) => m.thread_ts && rootTs.has(m.thread_ts) && m.ts !== m.thread_ts && !m.reply_broadcast && !hasButtons(m));
    const occurrences = new Map<string, number>();
    const threadOrder: Array<{ marker: string; index: number }> = [];
    for (const post of posts) {
      for (const marker of new Set(markersIn(post.text, 'c'))) {
        const seen = occurrences.get(marker) ?? 0;
        occurrences.set(marker, seen + 1);
        if (seen === 0 && storedIndex.has(marker)) threadOrder.push({ marker, index: storedIndex.get(marker)! });
      }
    }
    for (const [marker] of storedIndex) {
      const n = occurrences.get(marker) ?? 0;
      if (n > 0) info.customerMessagesInThreads! += 1;
      if (n === 0) {
        counts.customerToThread.lost += 1;
        details.push(`customer → thread: ${marker} of ${who} (${conversation.ticket}) never appeared in the Slack thread`);
      } else if (n > storedTimes.get(marker)!) {
        // A message stored twice was counted above; its second post is not counted again.
        counts.customerToThread.duplicated += n - storedTimes.get(marker)!;
        details.push(`customer → thread: ${marker} of ${who} (${conversation.ticket}) appears ${n} times in the Slack thread`);
      }
    }
    // In order as committed, and as sent (each customer sends one message at a time, so both should agree).
    const byTranscript = outOfOrder(threadOrder.map((t) => t.index));
    const bySending = outOfOrder(threadOrder.map((t) => sequenceNumber(t.marker)));
    const threadDisorder = bySending.count > byTranscript.count ? bySending : byTranscript;
    counts.customerToThread.outOfOrder += threadDisorder.count;
    for (const i of threadDisorder.misplaced) details.push(`customer → thread: ${threadOrder[i]!.marker} of ${who} (${conversation.ticket}) out of order in the Slack thread`);

    // ---- what the customer saw ------------------------------------------------------------------
    const visible = customerView(customer, transcript, domain, info);
    for (const v of visible) if (!v.message) details.push(`customer view: ${who} got "${v.text.slice(0, 60)}" that is not in the transcript`);
    const shownIds = new Set(visible.flatMap((v) => (v.message ? [v.message.id] : [])));
    const direction = (m: Message): DirectionCounts => (m.author.role === 'agent' ? counts.agentToCustomer : m.author.role === 'operator' ? counts.ownerToCustomer : counts.noticesToCustomer);
    for (const m of transcript) {
      if (m.visibility !== 'public' || m.author.role === 'customer' || m.author.role === 'operator') continue;
      if (m.author.role === 'agent') info.agentReplies! += 1;
      if (!shownIds.has(m.id)) {
        direction(m).lost += 1;
        details.push(`${m.author.role === 'agent' ? 'agent' : 'notice'} → customer: ${who} (${conversation.ticket}) never got ${m.id} "${m.text.slice(0, 50)}"`);
      }
    }
    // Owner replies by their number: each accepted one shown exactly once.
    const ownerShown = new Map<string, Set<string>>();
    for (const v of visible) {
      for (const marker of markersIn(v.text, 'o')) {
        const keys = ownerShown.get(marker) ?? new Set<string>();
        keys.add(v.key);
        ownerShown.set(marker, keys);
      }
    }
    for (const reply of input.replies.filter((r) => r.conversationId === conversation.id && r.accepted)) {
      const n = ownerShown.get(reply.marker)?.size ?? 0;
      if (n > 0) info.ownerRepliesShown! += 1;
      if (n === 0) {
        counts.ownerToCustomer.lost += 1;
        const inTranscript = transcript.find((m) => markersIn(m.text, 'o').includes(reply.marker));
        const where = !inTranscript ? 'not in the transcript' : inTranscript.visibility !== 'public' ? 'stored as an internal note' : 'stored but never delivered';
        details.push(`owner → customer: ${reply.marker} (${conversation.ticket}) got 200 from the bridge (${reply.outcomes.join(', ')}) but never reached ${who}: ${where}`);
      } else if (n > 1) {
        counts.ownerToCustomer.duplicated += n - 1;
        details.push(`owner → customer: ${reply.marker} reached ${who} ${n} times`);
      }
    }
    const sequence = visible.filter((v) => v.message && v.message.author.role !== 'customer');
    const disorder = outOfOrder(sequence.map((v) => position.get(v.message!.id)!));
    let ownerMisplaced = 0;
    for (const i of disorder.misplaced) {
      const m = sequence[i]!.message!;
      if (m.author.role === 'operator') ownerMisplaced += 1;
      else direction(m).outOfOrder += 1;
      details.push(`${m.author.role} → customer: ${who} (${conversation.ticket}) saw ${m.id} "${m.text.slice(0, 40)}" out of order`);
    }
    // Owner replies also in the order the owner sent them (one at a time, so the transcript should agree).
    const ownerSequence = visible.flatMap((v) => markersIn(v.text, 'o')).filter((m, i, all) => all.indexOf(m) === i);
    const ownerBySending = outOfOrder(ownerSequence.map(sequenceNumber));
    if (ownerBySending.count > ownerMisplaced) {
      for (const i of ownerBySending.misplaced) details.push(`owner → customer: ${who} (${conversation.ticket}) saw ${ownerSequence[i]} before an owner reply sent earlier`);
    }
    counts.ownerToCustomer.outOfOrder += Math.max(ownerMisplaced, ownerBySending.count);

    // ---- the transcript: muted agent, owed answers, repeated notices --------------------------------
    walkTranscript(conversation, counts, info, details, who);
  }

  // ---- claims ------------------------------------------------------------------------------------
  for (const race of input.races) {
    info.claimRounds! += race.rounds;
    const conversation = await input.store.getConversation(race.conversationId);
    const escalations = (conversation?.history ?? []).map((h, i) => ({ h, i })).filter(({ h }) => h.reason === 'escalate');
    const start = escalations.at(-1)?.i ?? -1;
    const after = (conversation?.history ?? []).slice(start + 1);
    const end = after.findIndex((h) => ['return', 'close', 'decide'].includes(h.reason));
    const episode = end < 0 ? after : after.slice(0, end);
    const claims = episode.filter((h) => h.reason === 'claim' || h.reason === 'take_over');
    if (race.problem || claims.length !== 1) {
      counts.claimsWithoutOneOwner += 1;
      details.push(`claims: ${conversation?.ticket ?? race.conversationId} ended with ${claims.length} claim(s)${race.problem ? ` (${race.problem})` : ''}; clicks: ${race.clicks.join(', ')}`);
    } else if (end < 0 && (conversation?.state !== 'human' || !conversation.owner)) {
      counts.claimsWithoutOneOwner += 1;
      details.push(`claims: ${conversation?.ticket} claimed once but ends ${conversation?.state} without an owner`);
    }
  }

  // ---- Slack: one post per idempotency key --------------------------------------------------------
  const byKey = new Map<string, StoredMessage[]>();
  for (const m of bot) {
    const key = m.metadata?.event_payload?.key;
    if (typeof key !== 'string') continue;
    byKey.set(key, [...(byKey.get(key) ?? []), m]);
  }
  for (const [key, posts] of byKey) {
    // A customer message posted twice is counted under customer → thread.
    if (posts.length < 2 || markersIn(posts[0]!.text, 'c').length > 0) continue;
    counts.slackDuplicatePosts += posts.length - 1;
    details.push(`slack: ${posts.length} posts with key ${key}: "${posts[0]!.text.slice(0, 60)}"`);
  }
  return { counts, info, details };
}

/** One message as the customer's client shows it, mapped to the transcript when it can be. */
interface Visible {
  key: string;
  text: string;
  message: Message | undefined;
}

function customerView(customer: Customer, transcript: Message[], domain: string, info: Record<string, number>): Visible[] {
  const byId = new Map(transcript.map((m) => [m.id, m]));
  if (customer.channel === 'webchat') {
    info.repeatedFramesHidden! += customer.frames.length - customer.shown().length;
    return customer
      .shown()
      .filter((f) => f.frame.role !== 'customer')
      .map((f) => ({ key: f.frame.id, text: f.frame.text, message: byId.get(f.frame.id) }));
  }
  const byMessageId = new Map(transcript.map((m) => [outboundMessageId(m.id, domain), m]));
  info.emailResendsSameMessageId! += customer.mailbox().length - customer.shown().length;
  return customer.shown().map((mail) => ({ key: mail.messageId, text: mail.text, message: byMessageId.get(mail.messageId) }));
}

/**
 * Walks the transcript in commit order: an agent message while escalated or held is a mute
 * violation; one with no customer message (or hand-back) to answer is a duplicate answer; a
 * customer message in agent state with no answer (or escalation) after it is an unanswered turn;
 * the same notice twice in a row is a duplicate notice.
 */
function walkTranscript(conversation: Conversation, counts: Counts, info: Record<string, number>, details: string[], who: string): void {
  let muted = false;
  let owed = false;
  let lastSpeaker: string | undefined;
  let lastNotice: string | undefined;
  for (const m of conversation.messages) {
    if (m.visibility !== 'public') continue;
    if (m.notice) {
      if (m.notice === lastNotice) {
        counts.noticesToCustomer.duplicated += 1;
        details.push(`notice → customer: ${who} (${conversation.ticket}) "${m.notice}" notice twice in a row`);
      }
      lastNotice = m.notice;
      if (m.notice === 'escalated' || m.notice === 'joined' || m.notice === 'released' || m.notice === 'transferred') {
        muted = true;
        owed = false;
      } else if (m.notice === 'returned' || m.notice === 'reopened') {
        muted = false;
        owed = lastSpeaker === 'customer';
      } else if (m.notice === 'closed') {
        muted = true;
        owed = false;
      }
      continue;
    }
    lastNotice = undefined;
    lastSpeaker = m.author.role;
    if (m.author.role === 'customer') {
      if (!muted) owed = true;
    } else if (m.author.role === 'agent') {
      if (muted) {
        counts.mutedAgentMessages += 1;
        details.push(`muted: ${who} (${conversation.ticket}) agent message ${m.id} committed while the conversation was with a person`);
      } else if (!owed) {
        counts.agentToCustomer.duplicated += 1;
        details.push(`agent → customer: ${who} (${conversation.ticket}) second agent answer ${m.id} with nothing new to answer`);
      }
      owed = false;
    }
  }
  if (owed) {
    info.unansweredTurns! += 1;
    counts.agentToCustomer.lost += 1;
    details.push(`agent → customer: ${who} (${conversation.ticket}) last customer message was never answered`);
  }
}

function hasButtons(message: StoredMessage): boolean {
  return message.versions.some((v) => (v.blocks ?? []).some((b: any) => b.type === 'actions' || b.accessory?.type === 'button'));
}
