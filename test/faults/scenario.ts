/**
 * One fault run, and the latency measurement.
 *
 * The run: web chat and email customers each send numbered messages (a burst of FAQ questions to the
 * agent, then, for some, "I want to talk to a person" and more numbered messages while waiting and
 * while held). Two Slack operators race to claim each escalation, clicking at the same moment on
 * different instances; the owner answers with numbered replies, and some conversations are returned
 * to the agent, after which the customer asks again. Meanwhile: the chaos proxy disturbs every
 * chat.postMessage; instance B is killed with SIGKILL mid-burst and started again; the SMTP sink is
 * down for a while; Redis is stopped and started again while owners are replying. Then the run waits
 * until no work is due anywhere and counts (count.ts).
 *
 * The latency measurement: web chat customers on both instances ask FAQ questions one at a time and
 * time each answer frame, first with Slack calm, then with every chat.postMessage answered 429
 * Retry-After 3.
 */
import { countRun, type ClaimRace, type CountResult, type OperatorReply } from './count.ts';
import { EmailCustomer, WebChatCustomer, type Customer } from './customers.ts';
import { CHANNEL, DANA, SAM, SUPPORT_ADDRESS, type Rig } from './rig.ts';
import { between, percentile, seeded, sleep, until } from './util.ts';

export interface ScenarioOptions {
  run: number;
  seed: number;
  webchatCustomers: number;
  emailCustomers: number;
  /** Every n-th customer asks for a person. */
  escalateEvery: number;
  /** Every n-th escalated conversation is returned to the agent afterwards. */
  returnEvery: number;
  /** FAQ questions before the request for a person (a burst). */
  agentQuestions: number;
  /** Numbered customer messages while waiting for / talking with a person. */
  humanMessages: number;
  /** Numbered owner replies per claimed conversation. */
  ownerReplies: number;
  /** Questions after a return to the agent. */
  afterReturnQuestions: number;
  /** Questions in total for customers who never ask for a person. */
  plainQuestions: number;
  smtpDownMs: number;
  redisDownMs: number;
  /** Time between the kill -9 of instance B and its restart. */
  restartAfterMs: number;
  /** Longest wait for every destination to drain after the traffic. */
  settleTimeoutMs: number;
  log?: (line: string) => void;
}

export interface ScenarioResult extends CountResult {
  run: number;
  durationMs: number;
  settleMs: number;
  settled: boolean;
  timeline: Array<{ atMs: number; what: string }>;
  chaos: { posts: number; rateLimited: number; serverErrors: number; dropped: number };
}

const QUESTIONS = [
  'How do I reset my password?',
  'Where is my order?',
  'What is your refund policy?',
  'What are your opening hours?',
  'How do I cancel my subscription?',
  'How do I change my shipping address?',
  'How do I track my package?',
  'Can I return an item?',
];
const DETAILS = [
  'The parcel label shows a different street.',
  'I ordered it on Monday morning.',
  'My account email is the one I am writing from.',
  'The box arrived with a dent in one corner.',
  'I tried twice from my phone already.',
  'The invoice number is on the packing slip.',
];
const REPLIES = [
  'Thanks, I am looking at your order now.',
  'I found it: the carrier has the wrong street.',
  'I have asked them to correct the address.',
  'You will get a new tracking email today.',
  'Anything else I can help with?',
  'Done on our side.',
];

export async function runScenario(rig: Rig, options: ScenarioOptions): Promise<ScenarioResult> {
  const log = options.log ?? (() => {});
  const t0 = Date.now();
  const timeline: ScenarioResult['timeline'] = [];
  const mark = (what: string) => {
    timeline.push({ atMs: Date.now() - t0, what });
    log(`run ${options.run} +${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);
  };
  const random = seeded(options.seed * 7919 + options.run);
  const B = rig.instances[1]!;
  const r = options.run;

  const customers: Customer[] = [];
  for (let i = 0; i < options.webchatCustomers; i++) {
    customers.push(new WebChatCustomer(`r${r}w${i}`, `Web ${i} run ${r}`, rig.instances, i % 2, `10.${r % 250}.${Math.floor(i / 250)}.${(i % 250) + 1}`));
  }
  for (let i = 0; i < options.emailCustomers; i++) {
    customers.push(new EmailCustomer(`r${r}e${i}`, `Mail ${i} run ${r}`, `r${r}e${i}@customer.test`, SUPPORT_ADDRESS, rig.instances, i % 2, rig.sink));
  }
  const plans = customers.map((_, k) => {
    const escalate = k % options.escalateEvery === 0;
    const escalatedIndex = Math.floor(k / options.escalateEvery);
    return { escalate, returned: escalate && escalatedIndex % options.returnEvery === 0 };
  });
  const plannedCustomer = plans.reduce(
    (n, p) => n + (p.escalate ? options.agentQuestions + 1 + options.humanMessages + (p.returned ? options.afterReturnQuestions : 0) : options.plainQuestions),
    0,
  );
  const plannedReplies = plans.filter((p) => p.escalate).length * options.ownerReplies;
  let customerSent = 0;
  let repliesSent = 0;
  const replies: OperatorReply[] = [];
  const races: ClaimRace[] = [];
  /** What the drivers could not do (reported with the details). */
  const notes: string[] = [];

  const conversationOf = async (c: Customer, timeoutMs = 120_000): Promise<{ id: string; ticket: string } | undefined> => {
    const found = await until(async () => {
      let id = c.conversationId;
      if (!id && c instanceof EmailCustomer) {
        // The 250 names the ticket; a redelivered email's 250 does not, but Slack's thread root does.
        const ticket = c.ticket ?? rootTicket(rig, c.name);
        if (ticket) id = (await rig.store.indexValue(`ticket:${ticket}`).catch(() => undefined)) ?? undefined;
        if (id) c.conversationId = id;
      }
      if (!id) return undefined;
      const conversation = await rig.store.getConversation(id).catch(() => undefined);
      return conversation ? { id, ticket: conversation.ticket } : undefined;
    }, timeoutMs, 250);
    return found;
  };

  const operatorScript = async (c: Customer, returned: boolean): Promise<void> => {
    const conversation = await conversationOf(c);
    if (!conversation) {
      races.push({ conversationId: c.conversationId ?? c.label, rounds: 0, clicks: [], problem: 'conversation not found' });
      return;
    }
    const race: ClaimRace = { conversationId: conversation.id, rounds: 0, clicks: [] };
    races.push(race);
    const card = await until(() => rig.slack.briefing(conversation.id), 180_000, 200);
    if (!card) {
      race.problem = 'no briefing with a Claim button appeared in Slack';
      return;
    }
    let owner: string | undefined;
    for (let round = 0; round < 8 && !owner; round++) {
      race.rounds += 1;
      // Two operators click at the same moment, one through each instance.
      const [dana, sam] = await Promise.all([rig.slack.clickClaim(DANA, conversation.id, 0), rig.slack.clickClaim(SAM, conversation.id, 1)]);
      race.clicks.push(`Dana:${dana}`, `Sam:${sam}`);
      owner = await until(async () => {
        const current = await rig.store.getConversation(conversation.id).catch(() => undefined);
        return current?.state === 'human' ? current.owner?.id : undefined;
      }, 8000, 150);
    }
    race.owner = owner;
    if (!owner) {
      race.problem = 'nobody owns it after 8 rounds of clicks';
      return;
    }
    const operator = owner.endsWith(DANA.userId) ? DANA : SAM;
    const root = await until(() => rig.slack.roots(conversation.ticket)[0], 60_000, 200);
    if (!root) {
      race.problem = 'no thread root in Slack';
      return;
    }
    for (let n = 1; n <= options.ownerReplies; n++) {
      await sleep(between(random, 700, 1400));
      const marker = `#${c.label}o${n}`;
      const delivery = await rig.slack.reply(operator, root, `${marker} ${REPLIES[(n - 1) % REPLIES.length]}`, Math.floor(random() * 2));
      replies.push({ conversationId: conversation.id, marker, accepted: delivery.accepted, outcomes: delivery.outcomes });
      repliesSent += 1;
    }
    if (!returned) return;
    await sleep(between(random, 300, 800));
    for (let attempt = 0; attempt < 6; attempt++) {
      await rig.slack.slashReturn(operator, conversation.ticket, 'Address corrected with the carrier.', CHANNEL, Math.floor(random() * 2));
      const back = await until(async () => (await rig.store.getConversation(conversation.id).catch(() => undefined))?.state === 'agent', 8000, 150);
      if (back) return;
    }
    notes.push(`driver: /return ${conversation.ticket} did not hand the conversation back after 6 tries`);
  };

  const customerScript = async (c: Customer, k: number): Promise<void> => {
    const plan = plans[k]!;
    await sleep(between(random, 0, 1500));
    if (c instanceof WebChatCustomer) await c.open();
    let n = 0;
    const say = async (text: string) => {
      n += 1;
      const marker = `#${c.label}c${n}`;
      if (c instanceof WebChatCustomer) await c.say(`${marker} ${text}`, marker);
      else await c.send(`${marker} ${text}`, marker);
      customerSent += 1;
    };
    const ask = (q: number) => say(QUESTIONS[(k + q) % QUESTIONS.length]!);
    for (let q = 0; q < options.agentQuestions; q++) {
      await ask(q);
      await sleep(between(random, 100, 400));
    }
    if (!plan.escalate) {
      for (let q = options.agentQuestions; q < options.plainQuestions; q++) {
        await sleep(between(random, 600, 1500));
        await ask(q);
      }
      return;
    }
    await say('I want to talk to a person, please.');
    const operator = operatorScript(c, plan.returned);
    for (let m = 0; m < options.humanMessages; m++) {
      await sleep(between(random, 800, 1600));
      await say(DETAILS[(k + m) % DETAILS.length]!);
    }
    await operator;
    if (!plan.returned) return;
    for (let q = 0; q < options.afterReturnQuestions; q++) {
      await sleep(between(random, 500, 1000));
      await ask(options.agentQuestions + q);
    }
  };

  const faults = async (): Promise<void> => {
    const smtp = (async () => {
      if (options.emailCustomers === 0) return;
      await until(() => customerSent >= plannedCustomer * 0.1, 60_000, 50);
      await rig.sink.stop();
      mark(`SMTP sink down for ${options.smtpDownMs / 1000} s`);
      await sleep(options.smtpDownMs);
      await rig.sink.start();
      mark('SMTP sink up');
    })();
    const crash = (async () => {
      await until(() => customerSent >= plannedCustomer * 0.3, 60_000, 20);
      await B.kill9();
      mark('instance B killed (SIGKILL)');
      await sleep(options.restartAfterMs);
      await B.start();
      mark('instance B restarted and ready');
    })();
    await crash;
    await until(() => repliesSent >= plannedReplies * 0.25, 90_000, 20);
    await rig.redis.stop();
    mark(`Redis stopped (SIGKILL) for ${options.redisDownMs / 1000} s`);
    await sleep(options.redisDownMs);
    await rig.redis.start();
    mark('Redis started again (AOF)');
    await smtp;
  };

  mark(`traffic starts: ${options.webchatCustomers} web chat + ${options.emailCustomers} email customers, ${plannedCustomer} customer messages, ${plannedReplies} owner replies planned`);
  await Promise.all([...customers.map((c, k) => customerScript(c, k)), faults()]);
  mark('traffic done; waiting for every destination to drain');

  // Settled: nothing due or leased for any destination twice in a row (a killed instance's leases count until they expire).
  const settleStart = Date.now();
  let quiet = 0;
  const settled = await until(async () => {
    const due = await Promise.all(['customer', 'agent', 'slack'].map((d) => rig.store.work.nextDue(d).catch(() => -1)));
    quiet = due.every((d) => d === undefined) ? quiet + 1 : 0;
    return quiet >= 3;
  }, options.settleTimeoutMs, 1000);
  // Sockets on the other instance hear of the last deliveries through the change feed: give them a moment.
  await sleep(1500);
  const settleMs = Date.now() - settleStart;
  // Email customers who never asked for a person: find their conversation now (ticket from the 250, or the Slack root).
  for (const c of customers) if (c instanceof EmailCustomer && !c.conversationId) await conversationOf(c, 10_000);
  mark(settled ? `drained in ${(settleMs / 1000).toFixed(1)} s` : `still work due after ${(settleMs / 1000).toFixed(1)} s; counting anyway`);

  const result = await countRun({ customers, replies, races, slack: rig.slack, emulator: rig.emulator, store: rig.store, supportAddress: SUPPORT_ADDRESS });
  for (const c of customers) if (c instanceof WebChatCustomer) c.close();
  result.details.push(...notes);
  return { ...result, run: options.run, durationMs: Date.now() - t0, settleMs, settled: Boolean(settled), timeline, chaos: { ...rig.proxy.stats } };
}

/** The ticket of the Slack thread opened for a customer name (root text: "HB-1001 · Name via email · ..."). */
function rootTicket(rig: Rig, name: string): string | undefined {
  const root = rig.emulator.messages.find((m) => m.bot_id && !m.thread_ts && (m.versions[0]?.text ?? '').includes(name));
  return root ? /\b([A-Z]+-\d+)\b/.exec(root.versions[0]!.text)?.[1] : undefined;
}

// ---- latency ----------------------------------------------------------------------------------

export interface LatencyFigures {
  samples: number;
  p50: number;
  p95: number;
  /** Answers that never came within the timeout. */
  missing: number;
}

export interface LatencyResult {
  calm: LatencyFigures;
  storm: LatencyFigures;
  /** storm p50 / calm p50. */
  ratio: number;
}

/**
 * Web chat reply latency (customer message sent → agent answer frame), calm vs a Slack 429 storm
 * (every chat.postMessage answered 429, Retry-After 3 s). Customers alternate between the instances,
 * each asks `questions` FAQ questions one at a time. A calm warm-up round is not counted; then calm
 * and storm rounds alternate twice, so neither gets the warmer or the more loaded machine.
 */
export async function measureLatency(rig: Rig, options: { customers: number; questions: number; label: string; log?: (line: string) => void }): Promise<LatencyResult> {
  let round = 0;
  const phase = async (name: string): Promise<{ times: number[]; missing: number }> => {
    round += 1;
    const times: number[] = [];
    let missing = 0;
    const customers = Array.from(
      { length: options.customers },
      (_, i) => new WebChatCustomer(`${options.label}${round}x${i}`, `Latency ${name} ${round}.${i}`, rig.instances, i % 2, `10.250.${round}.${i + 1}`),
    );
    await Promise.all(
      customers.map(async (c, i) => {
        await c.open();
        for (let q = 0; q < options.questions; q++) {
          const before = c.frames.length;
          const sentAt = Date.now();
          await c.say(`${QUESTIONS[(i + q) % QUESTIONS.length]}`, `lat${q}`);
          const reply = await c.agentReplyAfter(before, 20_000);
          if (reply) times.push(reply.at - sentAt);
          else missing += 1;
          await sleep(150);
        }
        c.close();
      }),
    );
    return { times, missing };
  };
  const figures = (rounds: Array<{ times: number[]; missing: number }>): LatencyFigures => {
    const times = rounds.flatMap((r) => r.times);
    return { samples: times.length, p50: percentile(times, 50), p95: percentile(times, 95), missing: rounds.reduce((n, r) => n + r.missing, 0) };
  };
  const calm = () => rig.proxy.calm({ rate: 0, dropRate: 0 });
  calm();
  await phase('warmup');
  const calmRounds: Array<{ times: number[]; missing: number }> = [];
  const stormRounds: Array<{ times: number[]; missing: number }> = [];
  for (let i = 0; i < 2; i++) {
    calm();
    calmRounds.push(await phase('calm'));
    rig.proxy.storm(3);
    stormRounds.push(await phase('storm'));
  }
  calm();
  const result = { calm: figures(calmRounds), storm: figures(stormRounds), ratio: 0 };
  result.ratio = result.storm.p50 / result.calm.p50;
  options.log?.(`latency calm: p50 ${result.calm.p50} ms, p95 ${result.calm.p95} ms over ${result.calm.samples} answers (${result.calm.missing} missing)`);
  options.log?.(`latency storm: p50 ${result.storm.p50} ms, p95 ${result.storm.p95} ms over ${result.storm.samples} answers (${result.storm.missing} missing)`);
  return result;
}
