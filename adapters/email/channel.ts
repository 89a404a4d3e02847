/**
 * The email customer channel. Inbound: the built-in SMTP server takes a customer's mail, finds
 * its conversation (Message-IDs, reply token, ticket in the subject), drops mail robots send,
 * strips quotes and signatures, and hands the text to the bridge. Outbound: the bridge's delivery
 * worker calls `deliver` for every agent reply, operator reply and status notice, one
 * conversation at a time and in order; each becomes an email in the customer's existing thread.
 * The worker's cursor is the only queue: a send that fails is retried by the worker.
 */
import { simpleParser } from 'mailparser';
import { PermanentDeliveryError } from '../../src/delivery/outcome.ts';
import { InputError, LockTimeoutError, StoreUnavailableError } from '../../src/errors.ts';
import type { Logger } from '../../src/log.ts';
import type { Conversation, Customer, Message } from '../../src/model.ts';
import { FIRST_ATTEMPT, type BridgePort, type CustomerChannel, type DeliveryAttempt, type Service } from '../../src/ports.ts';
import { composeReply, type EmailThread, type OutboundMail } from './compose.ts';
import { resolveEmailConfig, type EmailChannelConfig, type ResolvedEmailConfig } from './config.ts';
import { htmlToPlainText } from './html-text.ts';
import { readInbound, transcriptText, type InboundMail, type SmtpEnvelope } from './inbound.ts';
import { InboundSmtpServer, SmtpReplyError } from './smtp-inbound.ts';
import { EmailThreads } from './threads.ts';
import { appendToThread, baseSubject, messageIdDomain, newReplyToken, outboundMessageId } from './threading.ts';
import { classifySendError, createMailTransport, describeSendError, type MailTransport } from './transport.ts';

/** The slice of the bridge the email channel uses. */
export type EmailBridge = Pick<BridgePort, 'store' | 'customerMessage' | 'internalNote' | 'getConversation' | 'findByTicket' | 'updateChannelData'>;

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
 * Longest customer text we hand to the bridge. The bridge refuses longer text; a long email is
 * shortened with a note instead of bounced, since the customer did nothing wrong.
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
  private started = false;

  constructor(options: EmailChannelOptions) {
    this.config = resolveEmailConfig(options.config);
    this.bridge = options.bridge;
    this.logger = options.logger.child({ channel: 'email' });
    this.domain = messageIdDomain(this.config.address);
    this.threads = new EmailThreads(this.bridge.store.kv('email'), this.bridge.store);
    this.transport = options.transport ?? createMailTransport(this.config.smtpUrl);
    this.inbound = new InboundSmtpServer({
      port: this.config.inboundPort,
      host: this.config.inboundHost,
      address: this.config.address,
      maxMessageBytes: this.config.maxMessageBytes,
      serverName: this.config.serverName,
      ...(this.config.tls ? { tls: this.config.tls } : {}),
      logger: this.logger,
      onMail: ({ raw, envelope }) => this.receive(raw, envelope),
    });
  }

  /** The inbound SMTP port actually bound (differs from the config when it was 0). */
  get port(): number {
    return this.inbound.port;
  }

  async start(): Promise<void> {
    if (this.started) return;
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

  /**
   * Handles one accepted SMTP message. Resolving means 250, and it resolves only after the bridge
   * committed the message; throwing SmtpReplyError refuses it (4xx: the sender retries).
   */
  async receive(raw: Buffer, envelope: SmtpEnvelope): Promise<string> {
    let mail: InboundMail;
    try {
      const parsed = await simpleParser(raw, { skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true, keepCidLinks: true });
      if (!parsed.text?.trim() && typeof parsed.html === 'string') parsed.text = await htmlToPlainText(parsed.html);
      mail = readInbound(parsed, envelope, raw, this.config.address);
    } catch (err) {
      this.logger.warn({ err, from: envelope.mailFrom }, 'refused an email that could not be parsed');
      throw new SmtpReplyError(554, `5.6.0 The message could not be read (${(err as Error).message}); please resend it as plain text`);
    }
    const log = this.logger.child({ emailMessageId: mail.messageId, from: mail.from?.address, envelopeFrom: envelope.mailFrom });

    if (mail.verdict.automated) {
      // Accepted (so the sender does not retry or bounce) and never answered.
      log.info({ reason: mail.verdict.reason, detail: mail.verdict.detail }, 'automated email dropped: robots are never answered');
      return `OK: automated message (${mail.verdict.reason}) received, not answered`;
    }
    if (!mail.customer) {
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
      const text = clipText(transcriptText(mail, route.conversation ? undefined : mail.subject));
      if (route.conversation) {
        const id = route.conversation.id;
        // Record the Message-ID before the bridge answers, so our reply threads under this email.
        await this.threads.update(id, (current) => {
          const thread = current ?? asThread(route.conversation!.channelData.email) ?? this.newThread(mail, route.conversation!);
          return { ...thread, messageIds: appendToThread(thread.messageIds, mail.messageId) };
        });
        if (mail.messageId) await this.threads.rememberMessageIds(id, [mail.messageId]);
        // Committed with its idempotency mark: a redelivery of this email is recognised, never added twice.
        const result = await this.bridge.customerMessage({ conversationId: id, origin: 'email', customer, text, idempotencyKey });
        const thread = await this.threads.get(id);
        if (thread) await this.threads.rememberToken(id, thread.token);
        await this.mirrorThread(id).catch((err: unknown) => log.warn({ err }, 'could not mirror the email thread into the conversation'));
        log.info({ conversationId: id, ticket: route.conversation.ticket, via: route.via, duplicate: result.duplicate }, 'email joined its conversation');
        return `OK: added to ${route.conversation.ticket}`;
      }

      const subject = baseSubject(mail.subject);
      const fresh: EmailThread = {
        customerAddress: mail.customer.address,
        ...(mail.customer.name ? { customerName: mail.customer.name } : {}),
        ...(subject ? { subject } : {}),
        token: newReplyToken(),
        messageIds: mail.messageId ? [mail.messageId] : [],
      };
      const result = await this.bridge.customerMessage({
        origin: 'email',
        customer,
        ...(subject ? { subject } : {}),
        text,
        idempotencyKey,
        channelData: { email: { ...fresh } },
      });
      const conversation = result.conversation;
      // The thread as committed (a redelivery gets the first delivery's, with its reply token). An
      // agent reply may already have created the record from channelData; merge, never replace.
      const committed = asThread(conversation.channelData.email) ?? fresh;
      const saved = await this.threads.update(conversation.id, (current) =>
        current ? { ...current, messageIds: appendToThread(current.messageIds, ...committed.messageIds) } : committed,
      );
      await this.threads.rememberToken(conversation.id, saved.token);
      await this.threads.rememberMessageIds(conversation.id, saved.messageIds);
      if (result.duplicate) {
        log.info({ conversationId: conversation.id }, 'email already received earlier (same Message-ID); not added twice');
        return 'OK: already received';
      }
      log.info({ conversationId: conversation.id, ticket: conversation.ticket }, 'email opened a new conversation');
      return `OK: opened ${conversation.ticket}`;
    } catch (err) {
      if (err instanceof InputError) {
        log.warn({ err }, 'the bridge refused the email');
        throw new SmtpReplyError(554, `5.6.0 ${err.message}`);
      }
      if (err instanceof StoreUnavailableError || err instanceof LockTimeoutError) {
        // Not stored: a temporary failure makes the sending server try again later.
        log.warn({ err: String(err) }, 'email not accepted: the store is unavailable; the sender will retry');
        throw new SmtpReplyError(451, '4.3.0 The message could not be stored right now; please retry later');
      }
      throw err;
    }
  }

  /** Finds the conversation an email belongs to: Message-IDs, then reply token, then ticket in the subject. */
  private async route(mail: InboundMail): Promise<{ conversation?: Conversation; via: RouteVia }> {
    for (const id of mail.refersTo) {
      const conversation = await this.lookup(await this.threads.conversationForMessageId(id));
      if (conversation) return { conversation, via: 'message-id' };
    }
    for (const token of mail.tokens) {
      const conversation = await this.lookup(await this.threads.conversationForToken(token));
      if (conversation) return { conversation, via: 'reply-token' };
    }
    if (mail.ticket) {
      const conversation = await this.bridge.findByTicket(mail.ticket);
      // A ticket number is guessable; it only joins mail from the conversation's own customer.
      if (conversation?.origin === 'email' && (await this.isCustomerOf(conversation, mail))) {
        return { conversation, via: 'ticket' };
      }
    }
    return { via: 'new' };
  }

  private async lookup(conversationId: string | undefined): Promise<Conversation | undefined> {
    if (!conversationId) return undefined;
    const conversation = await this.bridge.getConversation(conversationId);
    return conversation?.origin === 'email' ? conversation : undefined;
  }

  private async isCustomerOf(conversation: Conversation, mail: InboundMail): Promise<boolean> {
    const thread = (await this.threads.get(conversation.id)) ?? asThread(conversation.channelData.email);
    const known = [thread?.customerAddress, conversation.customer.email, conversation.customer.id]
      .filter((a): a is string => Boolean(a))
      .map((a) => a.toLowerCase());
    return [mail.from?.address, mail.customer?.address].some((a) => a !== undefined && known.includes(a));
  }

  private newThread(mail: InboundMail, conversation: Conversation): EmailThread {
    const subject = conversation.subject ?? baseSubject(mail.subject);
    const address = conversation.customer.email ?? mail.customer!.address;
    return {
      customerAddress: address.toLowerCase(),
      ...(conversation.customer.name ? { customerName: conversation.customer.name } : {}),
      ...(subject ? { subject } : {}),
      token: newReplyToken(),
      messageIds: [],
    };
  }
}

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

function clipText(text: string): string {
  if (text.length <= MAX_TEXT_CHARS) return text;
  const note = `\n\n[Email shortened: it was ${text.length} characters long.]`;
  return text.slice(0, MAX_TEXT_CHARS - note.length) + note;
}
