/**
 * What each commit means for the numbers managers watch, as a pure function of the conversation
 * before and after it: the Prometheus observations this instance makes once the commit succeeds,
 * and the per-day index entries (written in the same commit) that the daily digest reads, so the
 * digest is the same whichever instance writes it.
 */
import type { Conversation, HistoryEntry } from '../model.ts';
import type { IndexWrite } from '../store/store.ts';

/** One thing that happened, with the seconds it took where that matters. */
export type Observation =
  | { kind: 'conversation' }
  | { kind: 'escalation'; trigger: string }
  | { kind: 'deferred'; trigger: string }
  | { kind: 'claim'; seconds: number }
  | { kind: 'first_reply'; seconds: number }
  | { kind: 'handled'; seconds: number; how: string }
  | { kind: 'fallback' }
  | { kind: 'return'; operatorId: string; name: string };

export function observe(before: Conversation, after: Conversation): Observation[] {
  const out: Observation[] = [];
  if (before.version === 0) out.push({ kind: 'conversation' });
  if (!before.pendingEscalation && after.pendingEscalation) out.push({ kind: 'deferred', trigger: after.pendingEscalation.trigger });
  const added = after.history.slice(before.history.length);
  for (const entry of added) {
    switch (entry.reason) {
      case 'escalate':
        out.push({ kind: 'escalation', trigger: entry.trigger ?? 'unknown' });
        break;
      case 'claim': {
        const asked = lastBefore(after.history, entry, (h) => h.reason === 'escalate' || h.reason === 'release' || h.reason === 'expire');
        if (asked) out.push({ kind: 'claim', seconds: seconds(asked.at, entry.at) });
        break;
      }
      case 'fallback':
        out.push({ kind: 'fallback' });
        break;
      case 'return':
      case 'decide':
      case 'close': {
        if (entry.from === 'human') {
          const took = lastBefore(after.history, entry, (h) => h.to === 'human' && h.from !== 'human');
          if (took) out.push({ kind: 'handled', seconds: seconds(took.at, entry.at), how: entry.reason });
        }
        if (entry.reason === 'return' && entry.by.kind === 'operator') out.push({ kind: 'return', operatorId: entry.by.operator.id, name: entry.by.operator.name });
        break;
      }
    }
  }
  // The first thing a person said to the customer since they took the conversation.
  if (after.state === 'human') {
    const took = [...after.history].reverse().find((h) => h.to === 'human' && h.from !== 'human');
    const newReply = after.messages.slice(before.messages.length).find((m) => m.author.role === 'operator' && m.visibility === 'public');
    if (took && newReply) {
      const earlier = before.messages.some((m) => m.author.role === 'operator' && m.visibility === 'public' && m.at >= took.at);
      if (!earlier) out.push({ kind: 'first_reply', seconds: seconds(took.at, newReply.at) });
    }
  }
  return out;
}

/** The digest's per-day sets: `day:<date>:<what>` with conversation ids (and figures where needed). */
export function dayIndexes(observations: Observation[], conversationId: string, at: string): IndexWrite[] {
  const day = at.slice(0, 10);
  const key = (what: string) => `day:${day}:${what}`;
  const writes: IndexWrite[] = [];
  for (const o of observations) {
    switch (o.kind) {
      case 'conversation':
        writes.push({ op: 'add', key: key('conversations'), member: conversationId });
        break;
      case 'escalation':
        writes.push({ op: 'add', key: key('escalations'), member: conversationId }, { op: 'add', key: key('triggers'), member: `${o.trigger}|${conversationId}` });
        break;
      case 'claim':
        writes.push({ op: 'add', key: key('claims'), member: `${conversationId}|${Math.round(o.seconds)}|${at}` });
        break;
      case 'fallback':
        writes.push({ op: 'add', key: key('fallbacks'), member: conversationId });
        break;
      case 'return':
        writes.push({ op: 'add', key: key('returns'), member: `${o.operatorId}|${conversationId}|${at}|${o.name.replace(/\|/g, '/')}` });
        break;
      default:
        break;
    }
  }
  return writes;
}

function lastBefore(history: HistoryEntry[], entry: HistoryEntry, match: (h: HistoryEntry) => boolean): HistoryEntry | undefined {
  const at = history.indexOf(entry);
  for (let i = at - 1; i >= 0; i--) if (match(history[i]!)) return history[i];
  return undefined;
}

function seconds(from: string, to: string): number {
  return Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000);
}
