/**
 * The email customer channel: a built-in inbound SMTP server and nodemailer outbound, threaded
 * so the customer's conversation stays one thread in their own mail client.
 *
 * main.ts: `const config = emailConfigFromEnv(process.env); if (config) { const email =
 * createEmailChannel({ bridge, logger, config }); bridge.addChannel(email); services.push(email); }`
 */
import { EmailChannel, type EmailChannelOptions } from './channel.ts';

/** Builds the email channel (a CustomerChannel with origin `email`, and a Service to start and stop). */
export function createEmailChannel(options: EmailChannelOptions): EmailChannel {
  return new EmailChannel(options);
}

export { EmailChannel, asThread, type EmailBridge, type EmailChannelOptions, type EmailCustomerMessage, type RouteVia } from './channel.ts';
export { emailConfigFromEnv, resolveEmailConfig, type EmailChannelConfig } from './config.ts';
export type { EmailThread, OutboundMail } from './compose.ts';
export { classifySendError, type MailTransport, type SendFailure } from './transport.ts';
