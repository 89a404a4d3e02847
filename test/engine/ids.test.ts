import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newConversationId, newMessageId } from '../../src/ids.ts';

describe('newConversationId', () => {
  it('is conv_, the creation second in 8 hex digits, then 80 random bits', () => {
    const id = newConversationId(new Date('2026-11-30T06:30:10.172Z'));
    expect(id).toMatch(/^conv_[0-9a-f]{28}$/);
    expect(id.slice(5, 13)).toBe(Math.floor(Date.parse('2026-11-30T06:30:10Z') / 1000).toString(16));
  });

  it('sorts by creation time: a later second always sorts after an earlier one', () => {
    const seconds = fc.integer({ min: 0, max: 0xffffffff });
    fc.assert(
      fc.property(seconds, seconds, (a, b) => {
        fc.pre(a !== b);
        const [early, late] = a < b ? [a, b] : [b, a];
        expect(newConversationId(new Date(early * 1000)) < newConversationId(new Date(late * 1000 + 999))).toBe(true);
      }),
    );
  });

  it('does not repeat within one second', () => {
    const now = new Date();
    const ids = new Set(Array.from({ length: 10_000 }, () => newConversationId(now)));
    expect(ids.size).toBe(10_000);
  });
});

describe('newMessageId', () => {
  it('is msg_ and 20 hex digits: a random UUID\'s first 20, dashes left out', () => {
    const ids = Array.from({ length: 10_000 }, () => newMessageId());
    for (const id of ids) expect(id).toMatch(/^msg_[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{3}$/);
    expect(new Set(ids).size).toBe(10_000);
  });
});
