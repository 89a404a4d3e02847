/**
 * The ownership state machine, exhaustively: every (state, command) pair gives either the next
 * state, owner, history entry and a version bump of exactly one, or the exact typed error; plus
 * properties over random command sequences.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AlreadyClaimedError, BridgeError, InvalidTransitionError, NotOwnerError } from '../../src/errors.ts';
import type { Actor, Operator, OwnershipState } from '../../src/model.ts';
import { agentMaySpeak, transition, type Ownership, type OwnershipCommand } from '../../src/ownership.ts';

const DANA: Operator = { id: 'slack:U1', name: 'Dana', workspace: 'slack' };
const SAM: Operator = { id: 'teams:29:sam', name: 'Sam', workspace: 'teams' };
const AT = '2025-01-02T03:04:05.000Z';
const STATES: OwnershipState[] = ['agent', 'waiting', 'human', 'closed'];
const COMMAND_TYPES: OwnershipCommand['type'][] = ['escalate', 'claim', 'take_over', 'release', 'transfer', 'decide', 'return', 'close', 'reopen', 'requeue', 'fallback', 'expire'];

const op = (operator: Operator): Actor => ({ kind: 'operator', operator });
const SYSTEM: Actor = { kind: 'system' };
const CUSTOMER: Actor = { kind: 'customer' };

/** The state as the bridge keeps it: `human` always with its owner (Dana here), nobody otherwise. */
function ownership(state: OwnershipState, version = 7): Ownership {
  return state === 'human' ? { state, owner: DANA, ownershipVersion: version } : { state, ownershipVersion: version };
}

/** Named command variants: who acts matters (owner or not, operator or system). */
const COMMANDS = {
  'escalate by system': { type: 'escalate', by: SYSTEM, trigger: 'explicit_request', reason: 'The customer asked for a person' },
  'escalate by agent': { type: 'escalate', by: { kind: 'agent' }, trigger: 'agent_tool', reason: 'Needs a refund approval' },
  'claim by Dana': { type: 'claim', operator: DANA },
  'claim by Sam': { type: 'claim', operator: SAM },
  'take_over by Dana': { type: 'take_over', operator: DANA },
  'take_over by Sam': { type: 'take_over', operator: SAM },
  'release by Dana': { type: 'release', operator: DANA },
  'release by Sam': { type: 'release', operator: SAM },
  'transfer Dana->Sam': { type: 'transfer', operator: DANA, to: SAM },
  'transfer Dana->Dana': { type: 'transfer', operator: DANA, to: DANA },
  'transfer Sam->Dana': { type: 'transfer', operator: SAM, to: DANA },
  'transfer Sam->Sam': { type: 'transfer', operator: SAM, to: SAM },
  'decide by Dana': { type: 'decide', operator: DANA, optionId: 'approve_refund', note: 'ok up to 250' },
  'decide by Sam': { type: 'decide', operator: SAM, optionId: 'offer_credit' },
  'return by Dana': { type: 'return', operator: DANA, note: 'Refund issued by phone' },
  'return by Sam': { type: 'return', operator: SAM },
  'close by system': { type: 'close', by: SYSTEM },
  'close by Dana': { type: 'close', by: op(DANA), note: 'Solved' },
  'close by Sam': { type: 'close', by: op(SAM) },
  'close by customer': { type: 'close', by: CUSTOMER },
  'reopen by customer': { type: 'reopen', by: CUSTOMER },
  'requeue by Dana': { type: 'requeue', operator: DANA, queue: 'billing', note: 'a refund' },
  'requeue by Sam': { type: 'requeue', operator: SAM, queue: 'billing' },
  'fallback by timer': { type: 'fallback', reason: 'Unclaimed for 30 min' },
  'expire by timer': { type: 'expire', reason: 'The customer waited 30 min for the owner' },
} satisfies Record<string, OwnershipCommand>;
type CommandName = keyof typeof COMMANDS;

type Expected =
  | { to: OwnershipState; owner?: Operator; reason: string; by: Actor; extra?: Record<string, unknown> }
  | { error: typeof InvalidTransitionError; command: string; message?: string }
  | { error: typeof NotOwnerError; holder: Operator; message: string }
  | { error: typeof AlreadyClaimedError; holder: Operator };

const invalid = (command: string, message?: string): Expected => ({ error: InvalidTransitionError, command, ...(message ? { message } : {}) });
const notOwner = (message: string): Expected => ({ error: NotOwnerError, holder: DANA, message });
const held: Expected = { error: AlreadyClaimedError, holder: DANA };

/** The full table. Rows left out of a state would fail the coverage test below. */
const TABLE: Record<OwnershipState, Record<CommandName, Expected>> = {
  agent: {
    'escalate by system': { to: 'waiting', reason: 'escalate', by: SYSTEM, extra: { trigger: 'explicit_request', note: 'The customer asked for a person' } },
    'escalate by agent': { to: 'waiting', reason: 'escalate', by: { kind: 'agent' }, extra: { trigger: 'agent_tool', note: 'Needs a refund approval' } },
    // A claim on a conversation still with the agent is a proactive take-over.
    'claim by Dana': { to: 'human', owner: DANA, reason: 'take_over', by: op(DANA) },
    'claim by Sam': { to: 'human', owner: SAM, reason: 'take_over', by: op(SAM) },
    'take_over by Dana': { to: 'human', owner: DANA, reason: 'take_over', by: op(DANA) },
    'take_over by Sam': { to: 'human', owner: SAM, reason: 'take_over', by: op(SAM) },
    'release by Dana': invalid('release', 'Cannot release a conversation that is with the agent.'),
    'release by Sam': invalid('release'),
    'transfer Dana->Sam': invalid('transfer', 'Cannot transfer a conversation that is with the agent.'),
    'transfer Dana->Dana': invalid('transfer'),
    'transfer Sam->Dana': invalid('transfer'),
    'transfer Sam->Sam': invalid('transfer'),
    'decide by Dana': invalid('decide', 'This briefing was already handled: the conversation is back with the agent.'),
    'decide by Sam': invalid('decide', 'This briefing was already handled: the conversation is back with the agent.'),
    'return by Dana': invalid('return', 'Cannot return a conversation that is with the agent.'),
    'return by Sam': invalid('return'),
    'close by system': { to: 'closed', reason: 'close', by: SYSTEM },
    'close by Dana': { to: 'closed', reason: 'close', by: op(DANA), extra: { note: 'Solved' } },
    'close by Sam': { to: 'closed', reason: 'close', by: op(SAM) },
    'close by customer': { to: 'closed', reason: 'close', by: CUSTOMER },
    'reopen by customer': invalid('reopen', 'Cannot reopen a conversation that is with the agent.'),
    'requeue by Dana': invalid('move', 'Cannot move a conversation that is with the agent.'),
    'requeue by Sam': invalid('move'),
    'fallback by timer': invalid('fall back', 'Cannot fall back a conversation that is with the agent.'),
    'expire by timer': invalid('expire', 'Cannot expire a conversation that is with the agent.'),
  },
  waiting: {
    'escalate by system': invalid('escalate', 'Cannot escalate a conversation that is waiting for a person.'),
    'escalate by agent': invalid('escalate'),
    'claim by Dana': { to: 'human', owner: DANA, reason: 'claim', by: op(DANA) },
    'claim by Sam': { to: 'human', owner: SAM, reason: 'claim', by: op(SAM) },
    'take_over by Dana': { to: 'human', owner: DANA, reason: 'claim', by: op(DANA) },
    'take_over by Sam': { to: 'human', owner: SAM, reason: 'claim', by: op(SAM) },
    'release by Dana': invalid('release', 'Cannot release a conversation that is waiting for a person.'),
    'release by Sam': invalid('release'),
    'transfer Dana->Sam': invalid('transfer'),
    'transfer Dana->Dana': invalid('transfer'),
    'transfer Sam->Dana': invalid('transfer'),
    'transfer Sam->Sam': invalid('transfer'),
    // Options can be decided without a claim, by anyone.
    'decide by Dana': { to: 'agent', reason: 'decide', by: op(DANA), extra: { optionId: 'approve_refund', note: 'ok up to 250' } },
    'decide by Sam': { to: 'agent', reason: 'decide', by: op(SAM), extra: { optionId: 'offer_credit' } },
    // "The agent can handle this": an unclaimed escalation may be sent back.
    'return by Dana': { to: 'agent', reason: 'return', by: op(DANA), extra: { note: 'Refund issued by phone' } },
    'return by Sam': { to: 'agent', reason: 'return', by: op(SAM) },
    'close by system': { to: 'closed', reason: 'close', by: SYSTEM },
    'close by Dana': { to: 'closed', reason: 'close', by: op(DANA), extra: { note: 'Solved' } },
    'close by Sam': { to: 'closed', reason: 'close', by: op(SAM) },
    'close by customer': { to: 'closed', reason: 'close', by: CUSTOMER },
    'reopen by customer': invalid('reopen'),
    // Another queue: a new escalation there, by anyone.
    'requeue by Dana': { to: 'waiting', reason: 'escalate', by: op(DANA), extra: { trigger: 'transfer', note: 'to billing: a refund' } },
    'requeue by Sam': { to: 'waiting', reason: 'escalate', by: op(SAM), extra: { trigger: 'transfer', note: 'to billing' } },
    // Nobody claimed in time: back to the agent, which knows nobody is available.
    'fallback by timer': { to: 'agent', reason: 'fallback', by: SYSTEM, extra: { note: 'Unclaimed for 30 min' } },
    'expire by timer': invalid('expire'),
  },
  human: {
    'escalate by system': invalid('escalate', 'Cannot escalate a conversation that is held by an operator.'),
    'escalate by agent': invalid('escalate'),
    'claim by Dana': held,
    'claim by Sam': held,
    'take_over by Dana': held,
    'take_over by Sam': held,
    'release by Dana': { to: 'waiting', reason: 'release', by: op(DANA) },
    'release by Sam': notOwner('Only Dana, who holds this conversation, can release it.'),
    'transfer Dana->Sam': { to: 'human', owner: SAM, reason: 'transfer', by: op(DANA), extra: { to_operator: SAM } },
    'transfer Dana->Dana': invalid('transfer', 'You already hold this conversation.'),
    'transfer Sam->Dana': notOwner('Only Dana, who holds this conversation, can transfer it.'),
    'transfer Sam->Sam': notOwner('Only Dana, who holds this conversation, can transfer it.'),
    'decide by Dana': { to: 'agent', reason: 'decide', by: op(DANA), extra: { optionId: 'approve_refund', note: 'ok up to 250' } },
    'decide by Sam': notOwner('Only Dana, who holds this conversation, can decide on it.'),
    'return by Dana': { to: 'agent', reason: 'return', by: op(DANA), extra: { note: 'Refund issued by phone' } },
    'return by Sam': notOwner('Only Dana, who holds this conversation, can return it.'),
    'close by system': { to: 'closed', reason: 'close', by: SYSTEM },
    'close by Dana': { to: 'closed', reason: 'close', by: op(DANA), extra: { note: 'Solved' } },
    'close by Sam': notOwner('Only Dana, who holds this conversation, can close it.'),
    // Non-operator actors (timeouts, the customer ending the chat) may close a held conversation.
    'close by customer': { to: 'closed', reason: 'close', by: CUSTOMER },
    'reopen by customer': invalid('reopen', 'Cannot reopen a conversation that is held by an operator.'),
    'requeue by Dana': { to: 'waiting', reason: 'escalate', by: op(DANA), extra: { trigger: 'transfer', note: 'to billing: a refund' } },
    'requeue by Sam': notOwner('Only Dana, who holds this conversation, can move it.'),
    'fallback by timer': invalid('fall back'),
    // The owner kept the customer waiting too long: back to the queue, nobody holds it.
    'expire by timer': { to: 'waiting', reason: 'expire', by: SYSTEM, extra: { note: 'The customer waited 30 min for the owner' } },
  },
  closed: {
    'escalate by system': invalid('escalate', 'Cannot escalate a conversation that is closed.'),
    'escalate by agent': invalid('escalate'),
    'claim by Dana': invalid('claim', 'Cannot claim a conversation that is closed.'),
    'claim by Sam': invalid('claim'),
    'take_over by Dana': invalid('take over', 'Cannot take over a conversation that is closed.'),
    'take_over by Sam': invalid('take over'),
    'release by Dana': invalid('release'),
    'release by Sam': invalid('release'),
    'transfer Dana->Sam': invalid('transfer'),
    'transfer Dana->Dana': invalid('transfer'),
    'transfer Sam->Dana': invalid('transfer'),
    'transfer Sam->Sam': invalid('transfer'),
    'decide by Dana': invalid('decide', 'Cannot decide a conversation that is closed.'),
    'decide by Sam': invalid('decide'),
    'return by Dana': invalid('return', 'Cannot return a conversation that is closed.'),
    'return by Sam': invalid('return'),
    'close by system': invalid('close', 'Cannot close a conversation that is closed.'),
    'close by Dana': invalid('close'),
    'close by Sam': invalid('close'),
    'close by customer': invalid('close'),
    'reopen by customer': { to: 'agent', reason: 'reopen', by: CUSTOMER },
    'requeue by Dana': invalid('move'),
    'requeue by Sam': invalid('move'),
    'fallback by timer': invalid('fall back'),
    'expire by timer': invalid('expire'),
  },
};

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('ownership transition table', () => {
  it('covers every (state, command type) pair', () => {
    for (const state of STATES) {
      const types = new Set(Object.keys(TABLE[state]).map((name) => COMMANDS[name as CommandName].type));
      expect([...types].sort()).toEqual([...COMMAND_TYPES].sort());
      expect(Object.keys(TABLE[state]).sort()).toEqual(Object.keys(COMMANDS).sort());
    }
  });

  for (const state of STATES) {
    describe(`from ${state}`, () => {
      for (const [name, expected] of Object.entries(TABLE[state]) as Array<[CommandName, Expected]>) {
        const outcome = 'error' in expected ? `fails with ${expected.error.name}` : `-> ${expected.to}${expected.owner ? ` (${expected.owner.name})` : ''}`;
        it(`${name} ${outcome}`, () => {
          const current = deepFreeze(ownership(state));
          const result = transition(current, COMMANDS[name], AT);
          if ('error' in expected) {
            expect(result.ok).toBe(false);
            if (result.ok) return;
            const error = result.error;
            expect(error).toBeInstanceOf(expected.error);
            expect(error).toBeInstanceOf(BridgeError);
            expect(error.name).toBe(expected.error.name);
            if (error instanceof InvalidTransitionError) {
              const e = expected as Extract<Expected, { command: string }>;
              expect(error.code).toBe('invalid_transition');
              expect(error.command).toBe(e.command);
              expect(error.state).toBe(state);
              if (e.message) expect(error.message).toBe(e.message);
            } else if (error instanceof NotOwnerError) {
              const e = expected as Extract<Expected, { message: string; holder: Operator }>;
              expect(error.code).toBe('not_owner');
              expect(error.holder).toEqual(DANA);
              expect(error.operator).toEqual(SAM);
              expect(error.message).toBe(e.message);
            } else if (error instanceof AlreadyClaimedError) {
              // The loser learns who holds it.
              expect(error.code).toBe('already_claimed');
              expect(error.holder).toEqual(DANA);
              expect(error.message).toBe('This conversation is already held by Dana.');
            }
            return;
          }
          expect(result.ok).toBe(true);
          if (!result.ok) return;
          expect(result.next.state).toBe(expected.to);
          expect(result.next.ownershipVersion).toBe(current.ownershipVersion + 1);
          if (expected.owner) expect(result.next.owner).toEqual(expected.owner);
          else expect(result.next).not.toHaveProperty('owner');
          expect(result.entry).toEqual({ from: state, to: expected.to, reason: expected.reason, by: expected.by, at: AT, ...(expected.extra ?? {}) });
        });
      }
    });
  }

  it('names the ticket in AlreadyClaimedError when the caller knows it', () => {
    expect(new AlreadyClaimedError(DANA, 'HB-1042').message).toBe('HB-1042 is already held by Dana.');
  });

  it('never mutates its input and is deterministic', () => {
    for (const state of STATES) {
      for (const command of Object.values(COMMANDS)) {
        const current = ownership(state);
        const snapshot = structuredClone(current);
        const a = transition(current, command, AT);
        const b = transition(current, command, AT);
        expect(current).toEqual(snapshot);
        expect(a.ok).toBe(b.ok);
        if (a.ok && b.ok) expect(a).toEqual(b);
        if (!a.ok && !b.ok) expect(a.error.message).toBe(b.error.message);
      }
    }
  });

  it('omits an empty note from the history entry', () => {
    const r = transition(ownership('human'), { type: 'return', operator: DANA }, AT);
    expect(r.ok && r.entry).not.toHaveProperty('note');
    const c = transition(ownership('waiting'), { type: 'close', by: SYSTEM, note: '' }, AT);
    expect(c.ok && c.entry).not.toHaveProperty('note');
  });

  it('drops the owner on every way out of human except transfer', () => {
    for (const name of ['release by Dana', 'decide by Dana', 'return by Dana', 'close by Dana', 'close by system', 'close by customer'] as const) {
      const r = transition(ownership('human'), COMMANDS[name], AT);
      expect(r.ok, name).toBe(true);
      if (r.ok) expect(r.next.owner, name).toBeUndefined();
    }
  });
});

describe('agentMaySpeak (the mute invariant)', () => {
  it('lets the agent speak only in agent state and at the version its turn started from', () => {
    expect(agentMaySpeak({ state: 'agent', ownershipVersion: 3 }, 3)).toBe(true);
    expect(agentMaySpeak({ state: 'agent', ownershipVersion: 4 }, 3)).toBe(false);
    expect(agentMaySpeak({ state: 'agent', ownershipVersion: 2 }, 3)).toBe(false);
    for (const state of ['waiting', 'human', 'closed'] as const) expect(agentMaySpeak({ ...ownership(state, 3) }, 3)).toBe(false);
  });

  it('a round trip away from the agent and back still silences a turn started before it', () => {
    let o: Ownership = { state: 'agent', ownershipVersion: 0 };
    const startedAt = o.ownershipVersion;
    for (const command of [COMMANDS['escalate by system'], COMMANDS['claim by Dana'], COMMANDS['return by Dana']]) {
      const r = transition(o, command, AT);
      if (!r.ok) throw r.error;
      o = r.next;
    }
    expect(o.state).toBe('agent');
    expect(agentMaySpeak(o, startedAt)).toBe(false);
    expect(agentMaySpeak(o, o.ownershipVersion)).toBe(true);
  });
});

describe('ownership properties over random command sequences', () => {
  const OPERATORS: Operator[] = [DANA, SAM, { id: 'slack:U3', name: 'Lee', workspace: 'slack' }];
  const operator = fc.constantFrom(...OPERATORS);
  const actor: fc.Arbitrary<Actor> = fc.oneof(
    fc.constantFrom<Actor>({ kind: 'system' }, { kind: 'customer' }, { kind: 'agent' }),
    operator.map((o): Actor => ({ kind: 'operator', operator: o })),
  );
  const command: fc.Arbitrary<OwnershipCommand> = fc.oneof(
    fc.record({ type: fc.constant('escalate' as const), by: actor, trigger: fc.constantFrom('explicit_request', 'compliance', 'agent_tool'), reason: fc.string() }),
    fc.record({ type: fc.constant('claim' as const), operator }),
    fc.record({ type: fc.constant('take_over' as const), operator }),
    fc.record({ type: fc.constant('release' as const), operator }),
    fc.record({ type: fc.constant('transfer' as const), operator, to: operator }),
    fc.record({ type: fc.constant('decide' as const), operator, optionId: fc.constantFrom('approve_refund', 'offer_credit') }, { requiredKeys: ['type', 'operator', 'optionId'] }),
    fc.record({ type: fc.constant('return' as const), operator, note: fc.string() }, { requiredKeys: ['type', 'operator'] }),
    fc.record({ type: fc.constant('close' as const), by: actor, note: fc.string() }, { requiredKeys: ['type', 'by'] }),
    fc.record({ type: fc.constant('reopen' as const), by: actor }),
  );
  const start: fc.Arbitrary<Ownership> = fc.oneof(
    fc.constantFrom<OwnershipState>('agent', 'waiting', 'closed').map((state): Ownership => ({ state, ownershipVersion: 0 })),
    operator.map((owner): Ownership => ({ state: 'human', owner, ownershipVersion: 0 })),
  );

  it('never human without an owner, never an owner outside human, version +1 per successful transition', () => {
    fc.assert(
      fc.property(start, fc.array(command, { maxLength: 60 }), (initial, commands) => {
        let current = initial;
        let successes = 0;
        for (const cmd of commands) {
          const before = current;
          const result = transition(before, cmd, AT);
          if (!result.ok) {
            expect(result.error).toBeInstanceOf(BridgeError);
            expect([InvalidTransitionError, NotOwnerError, AlreadyClaimedError].some((E) => result.error instanceof E)).toBe(true);
            // Typed errors only where they make sense.
            if (result.error instanceof AlreadyClaimedError) expect(before.state).toBe('human');
            if (result.error instanceof NotOwnerError) {
              expect(before.state).toBe('human');
              expect(result.error.holder).toEqual(before.owner);
            }
            continue;
          }
          successes++;
          current = result.next;
          expect(current.ownershipVersion).toBe(before.ownershipVersion + 1);
          expect(current.state === 'human').toBe(current.owner !== undefined);
          expect(result.entry.from).toBe(before.state);
          expect(result.entry.to).toBe(current.state);
          expect(result.entry.at).toBe(AT);
          // Only a claim, take-over or transfer changes who holds it.
          if (current.owner && current.owner.id !== before.owner?.id) expect(['claim', 'take_over', 'transfer']).toContain(cmd.type);
          // A held conversation only changes hands through its owner (or a non-operator closing it).
          if (before.state === 'human' && 'operator' in cmd && cmd.type !== 'claim' && cmd.type !== 'take_over') expect(cmd.operator.id).toBe(before.owner!.id);
        }
        expect(current.ownershipVersion).toBe(initial.ownershipVersion + successes);
      }),
      { numRuns: 500 },
    );
  });

  it('a claim race has exactly one winner, and every loser is told who won', () => {
    fc.assert(
      fc.property(fc.array(operator, { minLength: 2, maxLength: 10 }), (claimers) => {
        let current: Ownership = { state: 'waiting', ownershipVersion: 1 };
        const winners: Operator[] = [];
        for (const claimer of claimers) {
          const r = transition(current, { type: 'claim', operator: claimer }, AT);
          if (r.ok) {
            winners.push(claimer);
            current = r.next;
          } else {
            expect(r.error).toBeInstanceOf(AlreadyClaimedError);
            expect((r.error as AlreadyClaimedError).holder).toEqual(claimers[0]);
          }
        }
        expect(winners).toEqual([claimers[0]]);
        expect(current).toEqual({ state: 'human', owner: claimers[0], ownershipVersion: 2 });
      }),
    );
  });
});
