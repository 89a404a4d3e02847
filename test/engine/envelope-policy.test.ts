/**
 * The envelope schema and the tool JSON Schema derived from it, and the policy: loading (one
 * clear ConfigError line for a bad file) and the tool gate (irreversible tools need approval,
 * refunds over the threshold too, approvals are used once).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { EscalateToolArgsSchema, escalateToolJsonSchema, HandoffEnvelopeSchema, OptionSchema } from '../../src/envelope.ts';
import { ConfigError } from '../../src/errors.ts';
import { argumentsHash, findApproval } from '../../src/engine/approvals.ts';
import type { Approval } from '../../src/model.ts';
import { DEFAULT_POLICY, gateToolCall, loadPolicy, PolicySchema, routeQueue, toolClass, type Policy } from '../../src/policy.ts';

// ---- a small JSON Schema checker (draft 2020-12 subset zod emits) -------------------------------

type Schema = Record<string, unknown>;
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);
const KEYWORDS = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'default', 'description', 'title',
  'minLength', 'maxLength', 'pattern', 'format', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
  'minItems', 'maxItems', 'anyOf', 'oneOf', 'allOf', 'not', '$ref', '$defs', 'examples',
]);

/** Problems with a schema as a JSON Schema document (not with data). */
function schemaProblems(schema: unknown, path = '#'): string[] {
  if (schema === true || schema === false) return [];
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return [`${path}: a schema must be an object or boolean`];
  const s = schema as Schema;
  const out: string[] = [];
  for (const key of Object.keys(s)) if (!KEYWORDS.has(key)) out.push(`${path}: unknown keyword ${key}`);
  if ('type' in s) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    for (const t of types) if (typeof t !== 'string' || !TYPES.has(t)) out.push(`${path}: bad type ${String(t)}`);
  }
  for (const k of ['minLength', 'maxLength', 'minItems', 'maxItems']) {
    if (k in s && !(Number.isInteger(s[k]) && (s[k] as number) >= 0)) out.push(`${path}: ${k} must be a non-negative integer`);
  }
  if ('pattern' in s) {
    try {
      new RegExp(s.pattern as string, 'u');
    } catch {
      out.push(`${path}: pattern does not compile`);
    }
  }
  if ('enum' in s && !(Array.isArray(s.enum) && s.enum.length > 0)) out.push(`${path}: enum must be a non-empty array`);
  if ('required' in s) {
    if (!Array.isArray(s.required) || s.required.some((r) => typeof r !== 'string')) out.push(`${path}: required must be strings`);
    else for (const r of s.required as string[]) if (!(s.properties && r in (s.properties as Schema))) out.push(`${path}: required "${r}" is not a property`);
  }
  if ('properties' in s) {
    if (!s.properties || typeof s.properties !== 'object') out.push(`${path}: properties must be an object`);
    else for (const [k, v] of Object.entries(s.properties as Schema)) out.push(...schemaProblems(v, `${path}/properties/${k}`));
  }
  if ('items' in s) out.push(...schemaProblems(s.items, `${path}/items`));
  if ('additionalProperties' in s && typeof s.additionalProperties === 'object') out.push(...schemaProblems(s.additionalProperties, `${path}/additionalProperties`));
  for (const k of ['anyOf', 'oneOf', 'allOf'] as const) {
    if (k in s) (s[k] as unknown[]).forEach((sub, i) => out.push(...schemaProblems(sub, `${path}/${k}/${i}`)));
  }
  return out;
}

/** Validates data against the subset of JSON Schema above; returns the first few errors. */
function validate(schema: unknown, data: unknown, path = '$'): string[] {
  if (schema === true || schema === undefined) return [];
  if (schema === false) return [`${path}: nothing allowed`];
  const s = schema as Schema;
  const errors: string[] = [];
  const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (s.type) {
    const types = (Array.isArray(s.type) ? s.type : [s.type]) as string[];
    const t = typeOf(data);
    const ok = types.some((want) => want === t || (want === 'integer' && Number.isInteger(data)) || (want === 'number' && t === 'number'));
    if (!ok) return [`${path}: expected ${types.join('|')}, got ${t}`];
  }
  if (s.enum && !(s.enum as unknown[]).includes(data)) errors.push(`${path}: not in enum`);
  if (typeof data === 'string') {
    if (typeof s.minLength === 'number' && [...data].length < s.minLength) errors.push(`${path}: too short`);
    if (typeof s.maxLength === 'number' && [...data].length > s.maxLength) errors.push(`${path}: too long`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(data)) errors.push(`${path}: pattern`);
  }
  if (Array.isArray(data)) {
    if (typeof s.maxItems === 'number' && data.length > s.maxItems) errors.push(`${path}: too many items`);
    if (typeof s.minItems === 'number' && data.length < s.minItems) errors.push(`${path}: too few items`);
    data.forEach((item, i) => errors.push(...validate(s.items, item, `${path}[${i}]`)));
  }
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const record = data as Record<string, unknown>;
    for (const r of (s.required as string[] | undefined) ?? []) if (!(r in record)) errors.push(`${path}: missing ${r}`);
    for (const [k, v] of Object.entries(record)) {
      const sub = (s.properties as Schema | undefined)?.[k];
      if (sub !== undefined) errors.push(...validate(sub, v, `${path}.${k}`));
      else if (s.additionalProperties === false) errors.push(`${path}: unexpected ${k}`);
    }
  }
  return errors;
}

const VALID_ARGS = {
  reason: 'Refund over the limit',
  priority: 'high',
  summary: 'Ana wants a refund of 270 USD for a broken monitor (order A1002). Eligible; over the 100 USD limit.',
  intent: 'Refund a broken monitor',
  entities: { ids: ['A1002'], amounts: [{ value: 270, currency: 'USD', raw: '$270' }], dates: ['2025-01-01'], emails: ['ana@example.com'] },
  constraints: ['Refunds over 100 USD need approval'],
  sentiment: 'frustrated',
  actionsTaken: [{ tool: 'lookup_order', input: { order_id: 'A1002' }, output: { total: 270 }, ok: true }],
  pendingQuestion: 'Approve the 270 USD refund?',
  options: [{ id: 'approve_refund', label: 'Approve refund of 270 USD', risk: 'high', approvesTool: 'issue_refund' }],
  queue: 'billing',
};

describe('escalateToolJsonSchema', () => {
  const schema = escalateToolJsonSchema();

  it('is a JSON Schema object with no $schema, and plain JSON', () => {
    expect(schema).not.toHaveProperty('$schema');
    expect(schema.type).toBe('object');
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
    expect(schemaProblems(schema)).toEqual([]);
  });

  it('requires what an operator needs, and leaves what the bridge fills to the bridge', () => {
    expect([...(schema.required as string[])].sort()).toEqual(['intent', 'pendingQuestion', 'reason', 'summary']);
    const properties = schema.properties as Record<string, Schema>;
    expect(Object.keys(properties).sort()).toEqual(
      ['actionsTaken', 'constraints', 'entities', 'intent', 'options', 'pendingQuestion', 'priority', 'queue', 'reason', 'sentiment', 'summary'].sort(),
    );
    expect(properties).not.toHaveProperty('trigger');
    expect(properties).not.toHaveProperty('ticket');
    expect(properties.priority!.enum).toEqual(['low', 'normal', 'high', 'urgent']);
    expect(properties.reason).toMatchObject({ type: 'string', minLength: 1, maxLength: 300 });
    expect(properties.summary!.description).toMatch(/2-3 sentences/);
  });

  it('is a fresh copy each time (callers may edit it)', () => {
    const a = escalateToolJsonSchema();
    (a.properties as Schema).reason = 'changed';
    expect((escalateToolJsonSchema().properties as Record<string, Schema>).reason!.type).toBe('string');
  });

  it('accepts what the zod schema accepts and rejects what it rejects', () => {
    const cases: Array<[string, unknown]> = [
      ['valid', VALID_ARGS],
      ['minimal', { reason: 'r', summary: 's', intent: 'i', pendingQuestion: 'q' }],
      ['upper-case option id', { ...VALID_ARGS, options: [{ id: 'Approve_Refund', label: 'Approve' }] }],
      ['missing reason', { summary: 's', intent: 'i', pendingQuestion: 'q' }],
      ['empty summary', { ...VALID_ARGS, summary: '' }],
      ['bad priority', { ...VALID_ARGS, priority: 'whenever' }],
      ['bad option id', { ...VALID_ARGS, options: [{ id: 'not valid!', label: 'x' }] }],
      ['too many options', { ...VALID_ARGS, options: Array(6).fill({ id: 'a', label: 'b' }) }],
      ['long reason', { ...VALID_ARGS, reason: 'r'.repeat(301) }],
      ['amount without value', { ...VALID_ARGS, entities: { amounts: [{ currency: 'USD' }] } }],
    ];
    for (const [name, data] of cases) {
      const zodOk = EscalateToolArgsSchema.safeParse(data).success;
      const jsonOk = validate(schema, data).length === 0;
      expect(jsonOk, `${name}: JSON Schema says ${jsonOk}, zod says ${zodOk}`).toBe(zodOk);
    }
  });

  it('agrees with zod on generated option ids (the JSON pattern has no /i flag)', () => {
    const optionSchema = ((schema.properties as Record<string, Schema>).options!.items as Schema);
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'aZ09_-!é '.split('')), minLength: 1, maxLength: 12 }), (id) => {
        const data = { id, label: 'x' };
        expect(validate(optionSchema, data).length === 0).toBe(OptionSchema.safeParse(data).success);
      }),
    );
  });
});

describe('HandoffEnvelopeSchema', () => {
  it('fills defaults for everything but the core fields', () => {
    expect(HandoffEnvelopeSchema.parse({ reason: 'r', trigger: 't', summary: 's', intent: 'i', pendingQuestion: 'q' })).toEqual({
      reason: 'r',
      trigger: 't',
      priority: 'normal',
      summary: 's',
      intent: 'i',
      entities: { ids: [], amounts: [], dates: [], emails: [] },
      constraints: [],
      sentiment: 'neutral',
      actionsTaken: [],
      pendingQuestion: 'q',
      options: [],
      queue: 'general',
      ticket: '',
    });
  });

  it('rejects what a card could not show', () => {
    const base = { reason: 'r', trigger: 't', summary: 's', intent: 'i', pendingQuestion: 'q' };
    expect(HandoffEnvelopeSchema.safeParse({ ...base, trigger: 'x'.repeat(61) }).success).toBe(false);
    expect(HandoffEnvelopeSchema.safeParse({ ...base, options: [{ id: 'a', label: 'l'.repeat(76) }] }).success).toBe(false);
    expect(HandoffEnvelopeSchema.safeParse({ ...base, entities: { ids: Array(21).fill('x') } }).success).toBe(false);
    expect(HandoffEnvelopeSchema.safeParse({ ...base, ticket: 'T'.repeat(41) }).success).toBe(false);
  });
});

describe('loadPolicy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  /** The error loadPolicy throws, checked to be one ConfigError line naming POLICY_FILE and the path. */
  const failure = (path: string): ConfigError => {
    let error: unknown;
    try {
      loadPolicy(path);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.code).toBe('config');
    expect(e.variable).toBe('POLICY_FILE');
    expect(e.message.startsWith('POLICY_FILE: ')).toBe(true);
    expect(e.message).toContain(path);
    expect(e.message).not.toMatch(/[\r\n]/);
    return e;
  };

  it('without a path, returns the default policy', () => {
    expect(loadPolicy(undefined)).toBe(DEFAULT_POLICY);
    expect(loadPolicy('')).toBe(DEFAULT_POLICY);
  });

  it('fills defaults around a partial file', () => {
    const policy = loadPolicy(file('partial.json', JSON.stringify({ refund: { threshold: 50 }, compliance: { words: ['abogado'] } })));
    expect(policy.refund).toEqual({ threshold: 50, currency: 'USD', tools: ['issue_refund'], amountArg: 'amount' });
    expect(policy.compliance.words).toEqual(['abogado']);
    expect(policy.behaviour).toEqual({ repeatThreshold: 3, turnCap: 12, toolErrorLimit: 1 });
    expect(policy.queues).toEqual({ default: 'general', rules: [] });
  });

  it('a missing file', () => {
    expect(failure(join(dir, 'nope.json')).message).toMatch(/expected a readable JSON file at .*nope\.json \(ENOENT/);
  });

  it('a directory', () => {
    failure(dir);
  });

  it('invalid JSON, even when the parser quotes several lines of it (it used to span lines)', () => {
    const e = failure(file('broken.json', '{\n  "refund": {\n    "threshold": 50,\n  }\n}\n'));
    expect(e.message).toMatch(/not valid JSON|Expected|Unexpected/);
    failure(file('words.json', 'hello\nworld'));
    failure(file('empty.json', ''));
  });

  it('a schema violation names the field', () => {
    expect(failure(file('threshold.json', JSON.stringify({ refund: { threshold: -1 } }))).message).toContain(': refund.threshold: ');
    expect(failure(file('class.json', JSON.stringify({ tools: { issue_refund: 'dangerous' } }))).message).toContain(': tools.issue_refund: ');
    expect(failure(file('repeat.json', JSON.stringify({ behaviour: { repeatThreshold: 1 } }))).message).toContain(': behaviour.repeatThreshold: ');
    expect(failure(file('word.json', JSON.stringify({ compliance: { words: ['x'] } }))).message).toContain(': compliance.words.0: ');
    expect(failure(file('root.json', '[1, 2]')).message).toContain(': (root): ');
    expect(failure(file('null.json', 'null')).message).toContain(': (root): ');
  });

  it('an invalid queue regex', () => {
    const e = failure(file('regex.json', JSON.stringify({ queues: { rules: [{ match: '(refund', queue: 'billing' }] } })));
    expect(e.message).toContain('queues.rules: "(refund" is not a valid regular expression');
    failure(file('regex-nl.json', JSON.stringify({ queues: { rules: [{ match: '(a\nb', queue: 'billing' }] } })));
  });
});

describe('toolClass and routeQueue', () => {
  it('unknown tools count as write', () => {
    expect(toolClass(DEFAULT_POLICY, 'lookup_order')).toBe('read');
    expect(toolClass(DEFAULT_POLICY, 'issue_refund')).toBe('irreversible');
    expect(toolClass(DEFAULT_POLICY, 'launch_rocket')).toBe('write');
  });

  it('routes by the first matching rule, case-insensitively, else the default queue', () => {
    expect(routeQueue(DEFAULT_POLICY, 'My INVOICE is wrong')).toBe('billing');
    expect(routeQueue(DEFAULT_POLICY, 'locked out of my account, and a refund')).toBe('billing');
    expect(routeQueue(DEFAULT_POLICY, 'forgot my password')).toBe('accounts');
    expect(routeQueue(DEFAULT_POLICY, 'hello')).toBe('general');
  });
});

describe('gateToolCall and approvals', () => {
  const refundAsWrite: Policy = PolicySchema.parse({ refund: { threshold: 100 }, tools: { issue_refund: 'write', lookup_order: 'read', delete_account: 'irreversible' } });
  const dana = { id: 'test:dana', name: 'Dana', workspace: 'test' };
  /** An operator approved exactly this call (the card showed these arguments). */
  const approvalOf = (tool: string, args: unknown, id = `apr_${tool}`): Approval => ({ id, tool, argsHash: argumentsHash(args), escalation: 1, by: dana, at: '2026-01-01T00:00:00.000Z' });
  const gate = (policy: Policy, call: { tool: string; args: unknown }, approvals: Approval[]) => gateToolCall(policy, call, findApproval({ approvals }, policy, call));

  it('read and write tools run without a person and use no approval', () => {
    expect(gate(DEFAULT_POLICY, { tool: 'lookup_order', args: { order_id: 'A1' } }, [])).toEqual({ allow: true });
    expect(gate(DEFAULT_POLICY, { tool: 'update_shipping_address', args: {} }, [])).toEqual({ allow: true });
    expect(gate(DEFAULT_POLICY, { tool: 'unknown_tool', args: null }, [])).toEqual({ allow: true });
    // An approval for a tool that does not need one is kept.
    expect(gate(DEFAULT_POLICY, { tool: 'lookup_order', args: {} }, [approvalOf('lookup_order', {})])).toEqual({ allow: true });
  });

  it('irreversible tools need an approval of this very call, and use it', () => {
    expect(gate(DEFAULT_POLICY, { tool: 'cancel_subscription', args: {} }, [])).toEqual({
      allow: false,
      trigger: 'irreversible_tool',
      reason: "cancel_subscription cannot be undone and needs a person's approval",
    });
    const approval = approvalOf('cancel_subscription', { plan: 'pro' });
    expect(gate(DEFAULT_POLICY, { tool: 'cancel_subscription', args: { plan: 'pro' } }, [approval])).toEqual({ allow: true, approval });
    // Other arguments, or another tool's approval, do not count.
    expect(gate(DEFAULT_POLICY, { tool: 'cancel_subscription', args: { plan: 'team' } }, [approval])).toMatchObject({ allow: false, trigger: 'irreversible_tool' });
    expect(gate(DEFAULT_POLICY, { tool: 'cancel_subscription', args: {} }, [approvalOf('issue_refund', {})])).toMatchObject({ allow: false, trigger: 'irreversible_tool' });
  });

  it('an approval of 270 USD on order A1002 cannot refund another amount or another order', () => {
    const approved = { order_id: 'A1002', amount: 270 };
    const approvals = [approvalOf('issue_refund', approved)];
    for (const policy of [DEFAULT_POLICY, refundAsWrite]) {
      expect(gate(policy, { tool: 'issue_refund', args: { amount: 270, order_id: 'A1002' } }, approvals)).toMatchObject({ allow: true, approval: approvals[0] });
      expect(gate(policy, { tool: 'issue_refund', args: { order_id: 'A1002', amount: 2700 } }, approvals)).toMatchObject({ allow: false });
      expect(gate(policy, { tool: 'issue_refund', args: { order_id: 'A1003', amount: 270 } }, approvals)).toMatchObject({ allow: false });
      expect(gate(policy, { tool: 'issue_refund', args: { order_id: 'A1002', amount: 270, note: 'extra' } }, approvals)).toMatchObject({ allow: false });
    }
  });

  it('a refund approved from chat (before any call) covers only the amount the operator saw', () => {
    const fromChat: Approval = { id: 'apr_1_approve_refund', tool: 'issue_refund', amount: 250, escalation: 1, by: dana, at: '2026-01-01T00:00:00.000Z' };
    expect(gate(DEFAULT_POLICY, { tool: 'issue_refund', args: { order_id: 'A1', amount: 250 } }, [fromChat])).toMatchObject({ allow: true });
    expect(gate(DEFAULT_POLICY, { tool: 'issue_refund', args: { order_id: 'A1', amount: 900 } }, [fromChat])).toMatchObject({ allow: false });
  });

  it('a refund over the threshold needs a person, whatever the tool class', () => {
    const over = { tool: 'issue_refund', args: { order_id: 'A1', amount: 250 } };
    const verdict = { allow: false, trigger: 'refund_threshold', amount: 250, reason: 'Refund of 250 USD is over the 100 USD policy limit' };
    expect(gate(DEFAULT_POLICY, over, [])).toEqual(verdict);
    expect(gate(refundAsWrite, over, [])).toEqual(verdict);
    expect(gate(refundAsWrite, { tool: 'issue_refund', args: { amount: '250' } }, [])).toMatchObject({ trigger: 'refund_threshold', amount: 250 });
  });

  it('at or under the threshold, only the tool class decides', () => {
    expect(gate(refundAsWrite, { tool: 'issue_refund', args: { amount: 100 } }, [])).toEqual({ allow: true });
    expect(gate(refundAsWrite, { tool: 'issue_refund', args: { amount: 20 } }, [])).toEqual({ allow: true });
    // In the default policy the refund tool is irreversible: even a small refund asks a person.
    expect(gate(DEFAULT_POLICY, { tool: 'issue_refund', args: { amount: 20 } }, [])).toMatchObject({ allow: false, trigger: 'irreversible_tool' });
  });

  it('a refund whose amount cannot be read asks a person (it used to pass as 0)', () => {
    for (const args of [{}, { amount: null }, { amount: '' }, { amount: 'a lot' }, { amount: '250 USD' }, { amount: true }, { amount: Number.NaN }, { amount: Infinity }, null, 'amount=250']) {
      const v = gate(refundAsWrite, { tool: 'issue_refund', args }, []);
      expect(v, JSON.stringify(args)).toMatchObject({ allow: false, trigger: 'refund_threshold' });
      expect(v).not.toHaveProperty('amount');
    }
    // Approved by a person, for exactly these arguments: it runs.
    expect(gate(refundAsWrite, { tool: 'issue_refund', args: {} }, [approvalOf('issue_refund', {})])).toMatchObject({ allow: true });
  });

  it('reads the amount from the policy-named argument', () => {
    const policy = PolicySchema.parse({ refund: { threshold: 10, amountArg: 'value', currency: 'EUR' }, tools: { issue_refund: 'write' } });
    expect(gate(policy, { tool: 'issue_refund', args: { value: 11, amount: 1 } }, [])).toMatchObject({ trigger: 'refund_threshold', amount: 11, reason: 'Refund of 11 EUR is over the 10 EUR policy limit' });
    expect(gate(policy, { tool: 'issue_refund', args: { value: 9, amount: 1000 } }, [])).toEqual({ allow: true });
  });

  it('an approval is used once: once reserved, the next identical call asks again', () => {
    const call = { tool: 'issue_refund', args: { order_id: 'A1', amount: 250 } };
    for (const policy of [DEFAULT_POLICY, refundAsWrite]) {
      const approvals = [approvalOf('issue_refund', call.args), approvalOf('cancel_subscription', {})];
      const first = gate(policy, call, approvals);
      expect(first).toMatchObject({ allow: true, approval: { tool: 'issue_refund' } });
      approvals[0]!.usedAt = '2026-01-01T00:01:00.000Z'; // what the reservation commit records
      expect(gate(policy, call, approvals)).toMatchObject({ allow: false, trigger: 'refund_threshold' });
    }
  });

  it('two approvals of the same call allow two uses', () => {
    const approvals = [approvalOf('cancel_subscription', {}, 'a1'), approvalOf('cancel_subscription', {}, 'a2')];
    for (let i = 0; i < 2; i++) {
      const v = gate(DEFAULT_POLICY, { tool: 'cancel_subscription', args: {} }, approvals);
      expect(v.allow).toBe(true);
      if (v.allow) v.approval!.usedAt = 'now';
    }
    expect(gate(DEFAULT_POLICY, { tool: 'cancel_subscription', args: {} }, approvals).allow).toBe(false);
  });

  it('argument hashes ignore key order and see every value', () => {
    expect(argumentsHash({ a: 1, b: { c: [1, 2] } })).toBe(argumentsHash({ b: { c: [1, 2] }, a: 1 }));
    expect(argumentsHash({ a: 1 })).not.toBe(argumentsHash({ a: '1' }));
    expect(argumentsHash({ a: [1, 2] })).not.toBe(argumentsHash({ a: [2, 1] }));
  });

  it('property: never lets an unapproved irreversible tool or over-threshold refund through', () => {
    const tool = fc.constantFrom('issue_refund', 'cancel_subscription', 'lookup_order', 'update_shipping_address', 'delete_account', 'other');
    const amount = fc.oneof(fc.double({ noNaN: false }), fc.integer({ min: -1000, max: 1000 }), fc.string(), fc.constant(undefined), fc.constant(null));
    fc.assert(
      fc.property(fc.constantFrom(DEFAULT_POLICY, refundAsWrite), tool, amount, fc.subarray(['issue_refund', 'cancel_subscription', 'delete_account', 'lookup_order']), amount, (policy, name, amt, approvedTools, approvedAmount) => {
        // Approvals of these tools, for some amount that may or may not be the one called with.
        const approvals = approvedTools.map((t) => approvalOf(t, { amount: approvedAmount }));
        const v = gate(policy, { tool: name, args: { amount: amt } }, approvals);
        const approved = approvedTools.includes(name) && argumentsHash({ amount: approvedAmount }) === argumentsHash({ amount: amt });
        if (toolClass(policy, name) === 'irreversible' && !approved) expect(v.allow).toBe(false);
        if (policy.refund.tools.includes(name) && !approved) {
          const n = Number(amt);
          const readable = typeof amt === 'number' || (typeof amt === 'string' && amt.trim() !== '');
          if (!readable || !Number.isFinite(n) || n > policy.refund.threshold) expect(v).toMatchObject({ allow: false, trigger: 'refund_threshold' });
        }
        if (v.allow && v.approval) expect(approved).toBe(true);
        if (!v.allow) expect(v.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });
});
