/**
 * Adaptive Card 1.5 building blocks for Teams: the few element shapes the bridge uses, and the
 * card buttons as `Action.Execute` (Universal Actions) with an `Action.Submit` fallback for older
 * clients. Untrusted text only ever goes into `TextRun`s, which Adaptive Cards never parse as markdown.
 */
import { z } from 'zod';
import { clean, clip, safeUrl } from './text.ts';

export const CARD_SCHEMA = 'http://adaptivecards.io/schemas/adaptive-card.json';
export const CARD_CONTENT_TYPE = 'application/vnd.microsoft.card.adaptive';

/** Any card element (TextBlock, RichTextBlock, Container, ActionSet, Input.Text, ...). */
export type CardElement = { type: string } & Record<string, unknown>;

export interface CardAction {
  type: 'Action.Execute' | 'Action.Submit';
  title: string;
  verb?: string;
  data: CardActionData;
  style?: 'default' | 'positive' | 'destructive';
  fallback?: CardAction;
  associatedInputs?: 'auto' | 'none';
}

/**
 * A mention in a card (`msteams.entities`): Teams renders `text` where it appears in a TextBlock.
 * `type: 'tag'` mentions a Teams tag, notifying everyone who has it.
 */
export interface MentionEntity {
  type: 'mention';
  text: string;
  mentioned: { id: string; name: string; type?: 'tag' };
}

/** A link button (no round trip to the bot). */
export interface OpenUrlAction {
  type: 'Action.OpenUrl';
  title: string;
  url: string;
}

export interface AdaptiveCard {
  type: 'AdaptiveCard';
  $schema: string;
  version: '1.5';
  body: CardElement[];
  actions?: Array<CardAction | OpenUrlAction>;
  refresh?: { action: CardAction; userIds: string[] };
  msteams?: { width?: 'Full'; entities?: MentionEntity[] };
  fallbackText?: string;
}

/**
 * What each card button does. `refresh` is the Universal Actions per-viewer refresh; `reveal` (on a
 * mirrored message with masked values) sends its owner the original privately.
 */
export const CARD_VERBS = ['claim', 'option', 'return', 'close', 'takeover', 'refresh', 'reveal'] as const;
export type CardVerb = (typeof CARD_VERBS)[number];

/** The data every bridge button carries; Teams echoes it back (plus input values such as `note`). */
export interface CardActionData {
  /** Marks the payload as ours, so other apps' submits in the channel are ignored. */
  handoff: 1;
  conversationId: string;
  action: CardVerb;
  optionId?: string;
  /** On option buttons: which escalation the card briefs (1 for the first), so a stale card decides nothing. */
  escalation?: number;
  /** On a Reveal button: the mirrored message whose masked values it reveals. */
  messageId?: string;
}

/** Parsed action from an `adaptiveCard/action` invoke or an `Action.Submit` message. */
export interface ParsedCardAction {
  conversationId: string;
  action: CardVerb;
  optionId?: string;
  escalation?: number;
  messageId?: string;
  note?: string;
}

const ActionDataSchema = z.object({
  handoff: z.literal(1),
  conversationId: z.string().min(1).max(100),
  action: z.enum(CARD_VERBS),
  optionId: z.string().min(1).max(60).optional(),
  escalation: z.number().int().positive().optional(),
  messageId: z.string().min(1).max(100).optional(),
  note: z.string().max(4000).optional(),
});

/**
 * Reads a card action from an invoke value (`{ action: { verb, data } }`) or a submit's `value`
 * (the data object itself). Undefined for anything that is not a bridge button.
 */
export function parseCardAction(value: unknown): ParsedCardAction | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  const inner = v.action && typeof v.action === 'object' ? (v.action as Record<string, unknown>) : undefined;
  const data = inner ? inner.data : v;
  const parsed = ActionDataSchema.safeParse(data);
  if (!parsed.success) return undefined;
  const { conversationId, action, optionId, escalation, messageId, note } = parsed.data;
  if (action === 'option' && !optionId) return undefined;
  if (action === 'reveal' && !messageId) return undefined;
  const trimmed = note?.trim();
  return {
    conversationId,
    action,
    ...(optionId ? { optionId } : {}),
    ...(escalation ? { escalation } : {}),
    ...(action === 'reveal' ? { messageId } : {}),
    ...(trimmed ? { note: trimmed } : {}),
  };
}

/** A button: `Action.Execute` with the verb, falling back to an `Action.Submit` with the same data. */
export function button(title: string, data: CardActionData, style: CardAction['style'] = 'default'): CardAction {
  const label = clip(clean(title).replace(/\s+/g, ' ').trim(), 75) || data.action;
  return {
    type: 'Action.Execute',
    title: label,
    verb: data.action,
    data,
    ...(style !== 'default' ? { style } : {}),
    fallback: { type: 'Action.Submit', title: label, data, ...(style !== 'default' ? { style } : {}) },
  };
}

/** A plain `Action.Submit` (no invoke): Teams posts its data to the bot as a message's `value`. */
export function submitButton(title: string, data: CardActionData): CardAction {
  return { type: 'Action.Submit', title: clip(clean(title).replace(/\s+/g, ' ').trim(), 75) || data.action, data };
}

/** A link button, for an http(s) URL only; undefined for anything else. */
export function openUrl(title: string, url: string): OpenUrlAction | undefined {
  const safe = safeUrl(url);
  return safe ? { type: 'Action.OpenUrl', title: clip(clean(title).replace(/\s+/g, ' ').trim(), 75), url: safe } : undefined;
}

/** A TextBlock for the bridge's own words (never untrusted text: TextBlock parses markdown). */
export function textBlock(text: string, extra: Record<string, unknown> = {}): CardElement {
  return { type: 'TextBlock', text, wrap: true, ...extra };
}

/** One run of literal text inside a RichTextBlock. */
export interface Run {
  text: string;
  weight?: 'bolder';
  italic?: boolean;
  color?: 'attention' | 'warning' | 'good' | 'accent';
  isSubtle?: boolean;
  size?: 'medium' | 'large';
}

/** A paragraph of literal runs: safe for untrusted text (no markdown, no links, no mentions). */
export function richText(runs: Run[], extra: Record<string, unknown> = {}): CardElement {
  return {
    type: 'RichTextBlock',
    inlines: runs.filter((r) => r.text.length > 0).map((r) => ({ type: 'TextRun', ...r, text: clean(r.text) })),
    ...extra,
  };
}

/** A labelled line: bold label, literal value. */
export function labelled(label: string, value: string, max: number): CardElement {
  return richText([{ text: `${label}: `, weight: 'bolder' }, { text: clip(clean(value), max) }], { spacing: 'small' });
}

/** The texts a person would read on the card, in order (for summaries, tests and size checks). */
export function cardText(card: { body?: unknown[]; actions?: unknown[] }): string[] {
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    if (n.type === 'TextBlock' && typeof n.text === 'string') out.push(n.text);
    if (n.type === 'RichTextBlock' && Array.isArray(n.inlines)) {
      out.push(n.inlines.map((i) => (i && typeof i === 'object' ? String((i as Record<string, unknown>).text ?? '') : String(i))).join(''));
      return;
    }
    for (const key of ['body', 'items', 'columns', 'actions', 'inlines']) if (key in n) walk(n[key]);
    if (typeof n.title === 'string' && String(n.type).startsWith('Action.')) out.push(`[${n.title}]`);
  };
  walk(card.body);
  walk(card.actions);
  return out;
}
