/**
 * Block Kit limits, and a checker that lists every violation in a message or view.
 * Card builders truncate to these numbers; tests (and the adapter, in debug logs) run the checker.
 */
import type { types } from '@slack/bolt';

/** Slack's published limits for the blocks we build. */
export const LIMITS = {
  blocksPerMessage: 50,
  blocksPerView: 100,
  sectionText: 3000,
  sectionFields: 10,
  fieldText: 2000,
  headerText: 150,
  contextElements: 10,
  contextText: 3000,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2000,
  actionId: 255,
  blockId: 255,
  confirmTitle: 100,
  confirmText: 300,
  confirmButton: 30,
  viewTitle: 24,
  viewSubmit: 24,
  viewClose: 24,
  privateMetadata: 3000,
  inputLabel: 2000,
  inputPlaceholder: 150,
  /** Slack truncates message text beyond this. */
  messageText: 40000,
  /**
   * Our budget for all the text in one message's blocks together. Slack refuses a message whose
   * blocks add up to more than about 12,000 characters (`msg_blocks_too_long`, undocumented, counted
   * with some overhead of its own) even when every element is within its limit.
   */
  messageBlocksText: 11000,
} as const;

/** All the text in a message's blocks: every string `text` field, however deeply nested (buttons and confirmations included). */
export function blocksTextLength(blocks: readonly unknown[] | undefined): number {
  let total = 0;
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) for (const item of node) walk(item);
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'text' && typeof value === 'string') total += value.length;
        else walk(value);
      }
    }
  };
  walk(blocks ?? []);
  return total;
}

/** A message as the cards build it: fallback text (notifications, screen readers) plus blocks. */
export interface SlackMessage {
  text: string;
  blocks?: types.KnownBlock[];
}

/** Every Block Kit limit the message (or modal view) breaks; empty when it is valid. */
export function blockKitViolations(message: { text?: string; blocks?: readonly unknown[] }, kind: 'message' | 'view' = 'message'): string[] {
  const problems: string[] = [];
  const blocks = (message.blocks ?? []) as Array<Record<string, unknown>>;
  const maxBlocks = kind === 'message' ? LIMITS.blocksPerMessage : LIMITS.blocksPerView;
  if (blocks.length > maxBlocks) problems.push(`${blocks.length} blocks (max ${maxBlocks})`);
  const blocksText = blocksTextLength(blocks);
  if (kind === 'message' && blocksText > LIMITS.messageBlocksText) problems.push(`blocks hold ${blocksText} characters of text (budget ${LIMITS.messageBlocksText})`);
  if (message.text !== undefined && message.text.length > LIMITS.messageText) problems.push(`text ${message.text.length} chars`);
  const textOf = (o: unknown): string => ((o as { text?: unknown } | undefined)?.text as string | undefined) ?? '';
  const check = (what: string, value: string | undefined, max: number, min = 0) => {
    if (value === undefined) return;
    if (value.length > max) problems.push(`${what}: ${value.length} chars (max ${max})`);
    if (value.length < min) problems.push(`${what}: empty`);
  };
  const checkButton = (where: string, el: Record<string, unknown>) => {
    check(`${where} button text`, textOf(el.text), LIMITS.buttonText, 1);
    check(`${where} action_id`, el.action_id as string | undefined, LIMITS.actionId);
    check(`${where} value`, el.value as string | undefined, LIMITS.buttonValue);
    const confirm = el.confirm as Record<string, unknown> | undefined;
    if (confirm) {
      check(`${where} confirm title`, textOf(confirm.title), LIMITS.confirmTitle, 1);
      check(`${where} confirm text`, textOf(confirm.text), LIMITS.confirmText, 1);
      check(`${where} confirm button`, textOf(confirm.confirm), LIMITS.confirmButton, 1);
      check(`${where} deny button`, textOf(confirm.deny), LIMITS.confirmButton, 1);
    }
  };
  const actionIds = new Set<string>();
  blocks.forEach((block, i) => {
    const where = `block ${i} (${String(block.type)})`;
    check(`${where} block_id`, block.block_id as string | undefined, LIMITS.blockId);
    switch (block.type) {
      case 'header':
        check(`${where} text`, textOf(block.text), LIMITS.headerText, 1);
        break;
      case 'section': {
        const fields = (block.fields ?? []) as unknown[];
        if (block.text === undefined && fields.length === 0) problems.push(`${where}: neither text nor fields`);
        if (block.text !== undefined) check(`${where} text`, textOf(block.text), LIMITS.sectionText, 1);
        if (fields.length > LIMITS.sectionFields) problems.push(`${where}: ${fields.length} fields (max ${LIMITS.sectionFields})`);
        fields.forEach((f, j) => check(`${where} field ${j}`, textOf(f), LIMITS.fieldText, 1));
        const accessory = block.accessory as Record<string, unknown> | undefined;
        if (accessory?.type === 'button') checkButton(where, accessory);
        break;
      }
      case 'context': {
        const elements = (block.elements ?? []) as unknown[];
        if (elements.length === 0 || elements.length > LIMITS.contextElements) problems.push(`${where}: ${elements.length} elements`);
        elements.forEach((e, j) => check(`${where} element ${j}`, textOf(e), LIMITS.contextText, 1));
        break;
      }
      case 'actions': {
        const elements = (block.elements ?? []) as Array<Record<string, unknown>>;
        if (elements.length === 0 || elements.length > LIMITS.actionsElements) problems.push(`${where}: ${elements.length} elements`);
        for (const el of elements) {
          if (el.type === 'button') checkButton(where, el);
          const id = el.action_id as string | undefined;
          if (id !== undefined) {
            if (actionIds.has(id)) problems.push(`${where}: duplicate action_id ${id}`);
            actionIds.add(id);
          }
        }
        break;
      }
      case 'input': {
        check(`${where} label`, textOf(block.label), LIMITS.inputLabel, 1);
        const element = block.element as Record<string, unknown> | undefined;
        check(`${where} placeholder`, textOf(element?.placeholder), LIMITS.inputPlaceholder);
        break;
      }
      default:
        break;
    }
  });
  return problems;
}
