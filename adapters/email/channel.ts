/**
 * The email customer channel. Inbound: the built-in SMTP server takes a customer's mail, finds
 * the conversation it belongs to (Message-IDs, reply token, ticket in the subject) and joins it
 * only when the sender is that conversation's customer, drops mail robots send, strips quotes and
 * signatures, and hands the text to the bridge. Mail that failed DMARC, or from a sender over the
 * automatic-reply limit, is stored and mirrored but gets no automatic reply. Outbound: the
 * bridge's delivery worker calls `deliver` for every agent reply, operator reply and status
 * notice, one conversation at a time and in order; each becomes an email in the customer's
 * existing thread. The worker's cursor is the only queue: a send that fails is retried by the worker.
 */
import { mkdir } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';
import type { CustomerMessageInput } from '../../src/bridge.ts';
import { PermanentDeliveryError } from '../../src/delivery/outcome.ts';
import { BridgeError, ConfigError, InputError, LockTimeoutError, StoreUnavailableError } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation, Customer, Message } from '../../src/model.ts';
import { FIRST_ATTEMPT, type BridgePort, type CustomerChannel, type DeliveryAttempt, type Service } from '../../src/ports.ts';
import { composeReply, type EmailThread, type OutboundMail } from './compose.ts';
import { resolveEmailConfig, type EmailChannelConfig, type ResolvedEmailConfig } from './config.ts';
import { readInbound, transcriptText, type InboundMail, type InboundPolicy, type SmtpEnvelope } from './inbound.ts';
import { AutoReplyLimiter } from './limits.ts';
import { parseMail } from './parse.ts';
import { InboundSmtpServer, SmtpReplyError } from './smtp-inbound.ts';
import { inMemoryMessage, Slots, type SpooledMessage } from './spool.ts';
import { EmailThreads } from './threads.ts';
import { appendToThread, baseSubject, messageIdDomain, newReplyToken, outboundMessageId } from './threading.ts';
import { classifySendError, createMailTransport, describeSendError, type MailTransport } from './transport.ts';

/**
 * A customer message as the email channel hands it over. `autoReply: false` asks the engine to
 * store and mirror the message but start no agent turn and send no automatic notice (see
 * SECURITY.md, Email).
 */
export type EmailCustomerMessage = CustomerMessageInput & { autoReply?: boolean };

/** The slice of the bridge the email channel uses. */
export interface EmailBridge extends Pick<BridgePort, 'store' | 'maxMessageChars' | 'internalNote' | 'getConversation' | 'findByTicket' | 'updateChannelData'> {
  customerMessage(input: EmailCustomerMessage): ReturnType<BridgePort['customerMessage']>;
}

export interface EmailChannelOptions {
  bridge: EmailBridge;
  logger: Logger;
  config: EmailChannelConfig;
  /** Replaces the nodemailer transport for `smtpUrl` (another transport plugin, for instance). */
  transport?: MailTransport;
}

/** How a reply found its conversation (logged, so threading problems can be traced). */
export type RouteVia = 'message-id' | 'reply-token' | 'ticket' | 'new';

/**
 * Longest customer text we hand to the bridge (less if the bridge takes less). The bridge refuses
 * longer text; a long email is shortened with a note instead of bounced, since the customer did
 * nothing wrong.
 */
const MAX_TEXT_CHARS = 7_500;

/** After this many failed attempts at one email, the conversation's thread is told it has not gone out (once). */
export const TELL_OPERATORS_AFTER_ATTEMPTS = 5;

export class EmailChannel implements CustomerChannel, Service {
  readonly origin = 'email' as const;
  readonly name = 'email';
  readonly config: ResolvedEmailConfig;
  private readonly bridge: EmailBridge;
  private readonly logger: Logger;
  private readonly threads: EmailThreads;
  private readonly transport: MailTransport;
  private readonly inbound: InboundSmtpServer;
  private readonly domain: string;
  private readonly limiter: AutoReplyLimiter;
  /** Large messages parsed at once: parsing is where a large mail costs memory. */
  private readonly parsing: Slots;
  private readonly relays?: BlockList;
  private started = false;

  constructor(options: EmailChannelOptions) {
    this.config = resolveEmailConfig(options.config);
    this.bridge = options.bridge;
    this.logger = options.logger.child({ channel: 'email' });
    this.domain = messageIdDomain(this.config.address);
    this.threads = new EmailThreads(this.bridge.store.kv('email'), this.bridge.store);
    this.transport = options.transport ?? createMailTransport(this.config.smtpUrl);
    this.limiter = new AutoReplyLimiter(this.bridge.store.kv('email'), this.bridge.store, this.config.autoReplyLimit);
    this.parsing = new Slots(this.config.parseConcurrency);
    if (this.config.trustedRelays.length) {
      const relays = new BlockList();
      for (const entry of this.config.trustedRelays) {
        const [ip, prefix] = entry.split('/') as [string, string | undefined];
        const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
        if (prefix === undefined) relays.addAddress(ip, type);
        else relays.addSubnet(ip, Number(prefix), type);
      }
      this.relays = relays;
    }
    this.inbound = new InboundSmtpServer({
      port: this.config.inboundPort,
      host: this.config.inboundHost,
      address: this.config.address,
      maxMessageBytes: this.config.maxMessageBytes,
      serverName: this.config.serverName,
      ...(this.config.tls ? { tls: this.config.tls } : {}),
      logger: this.logger,
      maxConnections: this.config.maxConnections,
      maxConnectionsPerIp: this.config.maxConnectionsPerIp,
      ipLimitExempt: (ip) => this.fromRelay(ip),
      preMailTimeoutMs: this.config.preMailTimeoutMs,
      spoolDir: this.config.spoolDir,
      spoolMemoryBytes: this.config.spoolMemoryBytes,
      onMail: ({ message, envelope }) => this.receive(message, envelope),
    });
  }

  /** The inbound SMTP port actually bound (differs from the config when it was 0). */
  get port(): number {
    return this.inbound.port;
  }

  async start(): Promise<void> {
    if (this.started) return;
    if (!this.config.authservIds.length) {
      this.logger.warn('EMAIL_AUTHSERV_ID is not set: no sender can be verified, so a ticket number in a subject never joins a conversation and DMARC failures are not seen');
    }
    try {
      await mkdir(this.config.spoolDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new ConfigError('EMAIL_SPOOL_DIR', `cannot use ${this.config.spoolDir} for large inbound mail (${(err as Error).message})`);
    }
    await this.inbound.start();
    this.started = true;
  }

  /** Stops taking mail. Emails not sent yet stay as work in the store for the next start. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.inbound.stop();
    this.transport.close();
  }

  /** The conversation's mail thread as the channel knows it. */
  thread(conversationId: string): Promise<EmailThread | undefined> {
    return this.threads.get(conversationId);
  }

  // ---- outbound -----------------------------------------------------------------------------

  /**
   * Sends one agent reply, operator reply or status notice as an email in the customer's thread.
   * Resolving means the SMTP server accepted it. Throws to have the worker retry this
   * conversation later (server down, timeout, 4xx), or `PermanentDeliveryError` after noting a
   * refusal (5xx on the recipient or content, no address) in the conversation's thread.
   *
   * The Message-ID comes from the transcript message id, so every attempt sends the same email:
   * an email goes out twice only when an earlier attempt's outcome is unknown (a crash after the
   * server accepted it, an answer lost on the wire, a stalled instance's lease taken over), and
   * then with the same Message-ID.
   */
  async deliver(conversation: Conversation, message: Message, attempt: DeliveryAttempt = FIRST_ATTEMPT): Promise<void> {
    if (message.visibility !== 'public') return;
    const log = this.logger.child({ conversationId: conversation.id, ticket: conversation.ticket, messageId: message.id });
    const start = await this.threadFor(conversation);
    if (!start) {
      log.error({ customer: conversation.customer.id }, 'cannot email the customer: the conversation has no email address');
      await this.bridge.internalNote({
        conversationId: conversation.id,
        text: `This message was not emailed to the customer: the conversation has no email address. ${quote(message.text)}`,
      });
      throw new PermanentDeliveryError('the conversation has no email address');
    }
    const messageId = outboundMessageId(message.id, this.domain);
    let mail!: OutboundMail;
    // Record our Message-ID before sending, so the next email chains to this one and a fast reply
    // to it is routed. A retry composes against the ids before its own: the same headers again.
    await this.threads.update(conversation.id, (current) => {
      const thread = current ?? start;
      const own = thread.messageIds.indexOf(messageId);
      const before = { ...thread, messageIds: own >= 0 ? thread.messageIds.slice(0, own) : thread.messageIds };
      mail = composeReply({ conversation, message, thread: before, messageId, address: this.config.address, brandName: this.config.brandName });
      return { ...thread, messageIds: appendToThread(thread.messageIds, messageId) };
    });
    await this.threads.rememberMessageIds(conversation.id, [messageId]);
    if (attempt.signal?.aborted) throw attempt.signal.reason ?? new Error('delivery aborted');
    if (attempt.count > 1) log.info({ attempts: attempt.count, emailMessageId: messageId }, 'sending again with the same Message-ID: an earlier attempt may have reached the server');

    try {
      await this.transport.send(mail);
    } catch (err) {
      return this.sendFailed(conversation, message, start, mail, attempt, err, log);
    }
    log.info({ to: mail.to.address, emailMessageId: messageId }, 'email sent');
    // The email is out: bookkeeping failures must not make the worker send it again.
    await this.mirrorThread(conversation.id).catch((err: unknown) => log.warn({ err }, 'could not mirror the email thread into the conversation'));
  }

  /** Turns a failed send into the worker's outcome: throws, always. */
  private async sendFailed(conversation: Conversation, message: Message, start: EmailThread, mail: OutboundMail, attempt: DeliveryAttempt, err: unknown, log: Logger): Promise<never> {
    const reason = clip(describeSendError(err), 300);
    const to = mail.to.address;
    if (classifySendError(err) === 'permanent') {
      log.error({ to, emailMessageId: mail.messageId, err: reason }, 'email refused for good by the SMTP server');
      // The customer never got it: later emails must not answer it.
      await this.threads.update(conversation.id, (current) => {
        const thread = current ?? start;
        return { ...thread, messageIds: thread.messageIds.filter((id) => id !== mail.messageId) };
      });
      await this.bridge.internalNote({ conversationId: conversation.id, text: `The email to ${to} was refused: ${reason}. The customer did not get ${quote(message.text)}` });
      throw new PermanentDeliveryError(`the SMTP server refused the email to ${to}: ${reason}`, err);
    }
    if (attempt.count === TELL_OPERATORS_AFTER_ATTEMPTS) {
      await this.bridge
        .internalNote({ conversationId: conversation.id, text: `The email to ${to} has not gone out yet (${reason}); still retrying.` })
        .catch((noteErr: unknown) => log.warn({ err: noteErr }, 'could not note the failing email in the conversation'));
    }
    throw new Error(`SMTP send to ${to} failed, will retry: ${reason}`, { cause: err });
  }

  /**
   * The thread to answer in: the channel's record, else what the conversation carries in
   * channelData (written when the first email opened it), else a new thread to the customer's
   * address. Remembers the reply token so answers to it are routed.
   */
  private async threadFor(conversation: Conversation): Promise<EmailThread | undefined> {
    const known = await this.threads.get(conversation.id);
    if (known) return known;
    const fromData = asThread(conversation.channelData.email);
    const address = conversation.customer.email?.trim().toLowerCase();
    const thread: EmailThread | undefined =
      fromData ??
      (address
        ? {
            customerAddress: address,
            ...(conversation.customer.name ? { customerName: conversation.customer.name } : {}),
            ...(conversation.subject ? { subject: conversation.subject } : {}),
            token: newReplyToken(),
            messageIds: [],
          }
        : undefined);
    if (!thread) return undefined;
    await this.threads.rememberToken(conversation.id, thread.token);
    await this.threads.rememberMessageIds(conversation.id, thread.messageIds);
    return thread;
  }

  /** Copies the channel's thread record into `conversation.channelData.email` for other readers. */
  private async mirrorThread(conversationId: string): Promise<void> {
    const thread = await this.threads.get(conversationId);
    if (thread) await this.bridge.updateChannelData(conversationId, 'email', { ...thread });
  }

  // ---- inbound ------------------------------------------------------------------------------

  /** Whether `ip` is one of EMAIL_TRUSTED_RELAYS (false when none is listed). */
  private fromRelay(ip: string | undefined): boolean {
    if (!this.relays || !ip) return false;
    const plain = ip.replace(/^::ffff:(?=\d+\.)/, '');
    const family = isIP(plain);
    return family !== 0 && this.relays.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  }

  /** How to read mail from this SMTP client: whose Authentication-Results count, whose Reply-To. */
  private policy(envelope: SmtpEnvelope): InboundPolicy {
    return {
      ownAddress: this.config.address,
      // With no relay listed, the authserv-id alone decides; with relays, mail from elsewhere is unverified.
      trust: { authservIds: this.config.authservIds, relayTrusted: !this.relays || this.fromRelay(envelope.remoteAddress) },
      replyToTrusted: this.config.replyToTrusted,
    };
  }

  /**
   * Handles one accepted SMTP message. Resolving means 250, and it resolves only after the bridge
   * committed the message; throwing SmtpReplyError refuses it (4xx: the sender retries). A refused
   * or dropped message changes nothing in the store.
   */
  async receive(raw: Buffer | string | SpooledMessage, envelope: SmtpEnvelope): Promise<string> {
    const source = typeof raw === 'string' || Buffer.isBuffer(raw) ? inMemoryMessage(raw) : raw;
    let mail: InboundMail;
    try {
      // Parsing is where a message's text is held in memory: large ones take turns (`parseConcurrency`).
      const read = async (): Promise<InboundMail> => readInbound(await parseMail(source.open()), envelope, { digest: source.digest }, this.policy(envelope));
      mail = source.size > this.config.spoolMemoryBytes ? await this.parsing.run(read) : await read();
    } catch (err) {
      this.logger.warn({ err, from: envelope.mailFrom }, 'refused an email that could not be parsed');
      throw new SmtpReplyError(554, `5.6.0 The message could not be read (${clip(String((err as Error)?.message ?? err), 200)}); please resend it as plain text`);
    }
    const log = this.logger.child({ emailMessageId: mail.messageId, from: mail.from?.address, envelopeFrom: envelope.mailFrom, dmarc: mail.auth.dmarc });

    if (mail.verdict.automated) {
      // Accepted (so the sender does not retry or bounce) and never answered.
      log.info({ reason: mail.verdict.reason, detail: mail.verdict.detail }, 'automated email dropped: robots are never answered');
      return `OK: automated message (${mail.verdict.reason}) received, not answered`;
    }
    if (!mail.customer || !mail.replyAddress || !mail.from) {
      log.warn('refused an email without a From address');
      throw new SmtpReplyError(550, '5.1.7 The message has no From address, so it cannot be answered');
    }

    const customer: Customer = {
      id: mail.customer.address,
      email: mail.customer.address,
      ...(mail.customer.name ? { name: mail.customer.name } : {}),
    };
    const idempotencyKey = `email:${mail.key}`;

    try {
      const route = await this.route(mail);
      if (route.conversation) return await this.join(mail, route.conversation, route.via, customer, idempotencyKey, log);

      // Why this new conversation gets no automatic reply, if it does not.
      const quiet: string[] = [];
      if (mail.auth.dmarc === 'fail') {
        quiet.push(`This email failed DMARC (${mail.auth.detail}): it may not come from ${mail.from.address} (SMTP client ${envelope.remoteAddress ?? 'unknown'}, MAIL FROM <${envelope.mailFrom}>).`);
      }
      if (NO_REPLY_LOCAL.test(mail.replyAddress.address.split('@')[0] ?? '')) {
        quiet.push(
          `Replies would go to the no-reply address ${mail.replyAddress.address}` +
            (mail.ignoredReplyTo ? `; its Reply-To ${mail.ignoredReplyTo} is in another domain and is not used (list the sender in EMAIL_TRUST_REPLY_TO if it is your contact form).` : '.'),
        );
      }
      if (!quiet.length) {
        const verified = mail.auth.dmarc === 'pass' && mail.identity === 'from';
        const taken = await this.limiter.take(mail.customer.address, mail.key, !verified);
        if (!taken.ok) {
          quiet.push(`${taken.scope === 'address' ? 'The sender' : 'The sender\'s domain'} ${taken.who} is over the automatic-reply limit (${taken.max} new conversations in ${Math.round(taken.windowMs / 60_000)} min).`);
        }
      }
      const autoReply = quiet.length === 0;

      const subject = baseSubject(mail.subject);
      const fresh: EmailThread = {
        customerAddress: mail.replyAddress.address,
        ...(mail.replyAddress.name ? { customerName: mail.replyAddress.name } : {}),
        ...(subject ? { subject } : {}),
        token: newReplyToken(),
        messageIds: mail.messageId ? [mail.messageId] : [],
      };
      const text = this.clipText(transcriptText(mail, mail.subject));
      const result = await this.bridge.customerMessage({
        origin: 'email',
        customer,
        ...(subject ? { subject } : {}),
        text,
        idempotencyKey,
        channelData: { email: { ...fresh } },
        ...(autoReply ? {} : { autoReply: false }),
      });
      const conversation = result.conversation;
      if (result.duplicate) {
        // The first delivery committed; if it stopped before recording the thread, record it now.
        const committed = asThread(conversation.channelData.email);
        if (committed && !(await this.threads.get(conversation.id))) await this.recordThread(conversation.id, committed);
        log.info({ conversationId: conversation.id }, 'email already received earlier (same Message-ID); not added twice');
        return 'OK: already received';
      }
      await this.recordThread(conversation.id, fresh);
      const notes = [...quiet];
      if (!autoReply) notes.push('No automatic reply was sent; check the sender before answering.');
      if (mail.ignoredReplyTo && !notes.some((n) => n.includes(mail.ignoredReplyTo!))) {
        notes.push(`The email asks for replies to ${mail.ignoredReplyTo}, another domain than the sender's; replies go to ${mail.replyAddress.address}.`);
      }
      if (notes.length) await this.note(conversation.id, notes.join(' '), log);
      if (route.pointedAt) await this.notePointedAt(route.pointedAt, mail, conversation, log);
      log.info({ conversationId: conversation.id, ticket: conversation.ticket, autoReply, pointedAt: route.pointedAt?.conversation.ticket }, 'email opened a new conversation');
      return `OK: opened ${conversation.ticket}`;
    } catch (err) {
      if (err instanceof InputError) {
        log.warn({ err }, 'the bridge refused the email');
        throw new SmtpReplyError(554, `5.6.0 ${err.message}`);
      }
      if (err instanceof BridgeError && err.code === 'duplicate_in_flight') {
        // The same email arrived twice at once: the other delivery is being stored.
        throw new SmtpReplyError(451, '4.3.0 This message is already being received; please retry later');
      }
      if (err instanceof StoreUnavailableError || err instanceof LockTimeoutError) {
        // Not stored: a temporary failure makes the sending server try again later.
        log.warn({ err: String(err) }, 'email not accepted: the store is unavailable; the sender will retry');
        throw new SmtpReplyError(451, '4.3.0 The message could not be stored right now; please retry later');
      }
      throw err;
    }
  }

  /**
   * Records a new conversation's thread and its lookups. An agent reply may already have created
   * the record from channelData: merge, never replace.
   */
  private async recordThread(conversationId: string, thread: EmailThread): Promise<void> {
    const saved = await this.threads.update(conversationId, (current) =>
      current ? { ...current, messageIds: appendToThread(current.messageIds, ...thread.messageIds) } : thread,
    );
    await this.threads.rememberToken(conversationId, saved.token);
    await this.threads.rememberMessageIds(conversationId, thread.messageIds);
  }

  /** Adds a mail to the conversation its sender is the customer of. */
  private async join(mail: InboundMail, conversation: Conversation, via: RouteVia, customer: Customer, idempotencyKey: string, log: Logger): Promise<string> {
    const id = conversation.id;
    // Record the Message-ID before the bridge answers, so our reply threads under this email.
    let created = false;
    const thread = await this.threads.update(id, (current) => {
      created = !current;
      const base = current ?? asThread(conversation.channelData.email) ?? this.newThread(mail, conversation);
      return { ...base, messageIds: appendToThread(base.messageIds, mail.messageId) };
    });
    if (created) await this.threads.rememberToken(id, thread.token);
    if (mail.messageId) await this.threads.rememberMessageIds(id, [mail.messageId]);
    // Committed with its idempotency mark (a redelivery is recognised, never added twice) and
    // with the thread record mirrored into channelData for other readers.
    const text = this.clipText(transcriptText(mail));
    const result = await this.bridge.customerMessage({ conversationId: id, origin: 'email', customer, text, idempotencyKey, channelData: { email: { ...thread } } });
    log.info({ conversationId: id, ticket: conversation.ticket, via, duplicate: result.duplicate }, 'email joined its conversation');
    return `OK: added to ${conversation.ticket}`;
  }

  /**
   * Finds the conversation an email belongs to: Message-IDs, then reply token, then ticket in the
   * subject. It joins only one whose customer sent it (see `refusal`); the first other one it
   * pointed at is returned as `pointedAt`, so that conversation's thread can be told.
   */
  private async route(mail: InboundMail): Promise<{ conversation?: Conversation; via: RouteVia; pointedAt?: PointedAt }> {
    const seen = new Set<string>();
    let pointedAt: PointedAt | undefined;
    // Each conversation is loaded and judged once, however many of its ids the mail carries.
    const judge = (conversation: Conversation | undefined, via: RouteVia): Conversation | undefined => {
      if (conversation?.origin !== 'email') return undefined;
      const why = this.refusal(conversation, mail, via);
      if (!why) return conversation;
      pointedAt ??= { conversation, via, why };
      return undefined;
    };
    const consider = async (conversationId: string | undefined, via: RouteVia): Promise<Conversation | undefined> => {
      if (!conversationId || seen.has(conversationId)) return undefined;
      seen.add(conversationId);
      return judge(await this.bridge.getConversation(conversationId), via);
    };
    for (const id of mail.refersTo) {
      const joined = await consider(await this.threads.conversationForMessageId(id), 'message-id');
      if (joined) return { conversation: joined, via: 'message-id' };
    }
    for (const token of mail.tokens) {
      const joined = await consider(await this.threads.conversationForToken(token), 'reply-token');
      if (joined) return { conversation: joined, via: 'reply-token' };
    }
    if (mail.ticket) {
      const found = await this.bridge.findByTicket(mail.ticket);
      const joined = found && !seen.has(found.id) ? judge(found, 'ticket') : undefined;
      if (joined) return { conversation: joined, via: 'ticket' };
    }
    return { via: 'new', ...(pointedAt ? { pointedAt } : {}) };
  }

  /**
   * Why `mail` may not join `conversation`, or undefined when it may. Only the conversation's own
   * customer joins it, never with a failed DMARC check; a ticket number is guessable, so by ticket
   * alone only a sender the relay authenticated (DMARC pass on From) joins.
   */
  private refusal(conversation: Conversation, mail: InboundMail, via: RouteVia): string | undefined {
    const sender = mail.customer!.address;
    const known = [conversation.customer.id, conversation.customer.email].filter((a): a is string => Boolean(a)).map((a) => a.toLowerCase());
    if (!known.includes(sender)) return `${sender} is not this conversation's customer`;
    if (mail.auth.dmarc === 'fail') return `it failed DMARC (${mail.auth.detail})`;
    if (via === 'ticket' && !(mail.auth.dmarc === 'pass' && mail.identity === 'from')) {
      return `it names the ticket in its subject, and its sender could not be verified (${mail.auth.detail})`;
    }
    return undefined;
  }

  /**
   * Tells the thread of the conversation a mail pointed at where it went instead: once per sender,
   * and for at most `MAX_POINTED_NOTES` senders, per conversation per limit window, so a flood
   * of strangers cannot flood the operators' thread.
   */
  private async notePointedAt(pointed: PointedAt, mail: InboundMail, opened: Conversation, log: Logger): Promise<void> {
    const { windowMs } = this.config.autoReplyLimit;
    const id = pointed.conversation.id;
    const sender = mail.customer!.address;
    const kv = this.bridge.store.kv('email');
    const place = await this.bridge.store.withLock(`email:pointed:${id}`, async () => {
      const since = Date.now() - windowMs;
      const noted = ((await kv.get<Array<{ s: string; t: number }>>(`pointed:${id}`)) ?? []).filter((e) => e.t > since);
      if (noted.some((e) => e.s === sender) || noted.length >= MAX_POINTED_NOTES) return 0;
      await kv.set(`pointed:${id}`, [...noted, { s: sender, t: Date.now() }], windowMs);
      return noted.length + 1;
    });
    if (!place) return;
    const how = pointed.via === 'ticket' ? `names ${pointed.conversation.ticket} in its subject` : pointed.via === 'reply-token' ? 'was sent to this conversation\'s reply address' : 'answers an email of this conversation';
    const minutes = Math.round(windowMs / 60_000);
    const more = place === MAX_POINTED_NOTES ? `No more such emails are noted here for ${minutes} min.` : `More from this sender are not noted here for ${minutes} min.`;
    await this.note(id, `An email from ${mail.from!.address} ${how}, but was not added here: ${pointed.why}. It opened ${opened.ticket} instead. ${more}`, log);
  }

  private async note(conversationId: string, text: string, log: Logger): Promise<void> {
    await this.bridge.internalNote({ conversationId, text: clip(text, 2000) }).catch((err: unknown) => log.warn({ err, conversationId }, 'could not write an internal note'));
  }

  private clipText(text: string): string {
    const max = Math.min(MAX_TEXT_CHARS, this.bridge.maxMessageChars);
    if (text.length <= max) return text;
    const note = `\n\n[Email shortened: it was ${text.length} characters long.]`;
    return text.slice(0, Math.max(0, max - note.length)) + note;
  }

  private newThread(mail: InboundMail, conversation: Conversation): EmailThread {
    const subject = conversation.subject ?? baseSubject(mail.subject);
    const address = conversation.customer.email ?? mail.replyAddress!.address;
    return {
      customerAddress: address.toLowerCase(),
      ...(conversation.customer.name ? { customerName: conversation.customer.name } : {}),
      ...(subject ? { subject } : {}),
      token: newReplyToken(),
      messageIds: [],
    };
  }
}

/** The conversation a mail pointed at but did not join, and why. */
interface PointedAt {
  conversation: Conversation;
  via: RouteVia;
  why: string;
}

/** Senders noted per pointed-at conversation per limit window. */
const MAX_POINTED_NOTES = 5;

/** A local part nobody reads (`no-reply`, `donotreply`, ...). */
const NO_REPLY_LOCAL = /^(?:no-?reply|do-?not-?reply|no_reply|do_not_reply)(?:[+._-].*)?$/i;

/** Reads an EmailThread back from channelData (untyped JSON), or undefined when it is not one. */
export function asThread(value: unknown): EmailThread | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.customerAddress !== 'string' || typeof v.token !== 'string') return undefined;
  const ids = Array.isArray(v.messageIds) ? v.messageIds.filter((x): x is string => typeof x === 'string') : [];
  return {
    customerAddress: v.customerAddress,
    ...(typeof v.customerName === 'string' ? { customerName: v.customerName } : {}),
    ...(typeof v.subject === 'string' ? { subject: v.subject } : {}),
    token: v.token,
    messageIds: ids,
  };
}

/** A short quote of a message, to name it in an internal note. */
function quote(text: string): string {
  return `"${clip(text.replace(/\s+/g, ' ').trim(), 120)}"`;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max - 1) + '…';
}


