/**
 * Inbound SMTP memory: how much the bridge's resident memory grows while 20 mails of 9.9 MB each
 * arrive at once. Run with `npx tsx bench/email-memory.ts`. The bound (issue 9) is 250 MB of RSS
 * growth; the script exits 1 when it is exceeded.
 *
 * The bridge (SQLite in a temp dir, offline agent, the email channel on loopback, a local SMTP
 * sink for its replies) runs in this process. The 20 mails come from a child process that writes
 * them straight to the socket as it generates them, so the sender's own memory is not counted:
 * half carry a 9.9 MB base64 attachment, half a 9.9 MB plain-text body. RSS is sampled every
 * 10 ms from before the first byte until every mail was answered and the agent's replies went out.
 *
 * Options (environment): MAILS (default 20), MAIL_MB (default 9.9), PARSE_CONCURRENCY (the channel's
 * EMAIL_PARSE_CONCURRENCY, default 1).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SMTPServer } from 'smtp-server';
import { createEmailChannel } from '../adapters/email/index.ts';
import { loadFaq, OfflineAgent } from '../src/agent/offline-agent.ts';
import { Bridge } from '../src/bridge.ts';
import { silentLogger } from '../src/log.ts';
import { openSqliteStore } from '../src/store/sqlite.ts';

const MAILS = Number(process.env.MAILS ?? 20);
const MAIL_BYTES = Math.round(Number(process.env.MAIL_MB ?? 9.9) * 1024 * 1024);
const BOUND_MB = 250;
const MB = 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** The sending side: plain SMTP over node:net, each message generated while it is written. */
const SENDER = String.raw`
const net = await import('node:net');
const [port, count, size] = process.argv.slice(1).map(Number);
const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor 01234\r\n';
const b64 = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n';
function send(i) {
  return new Promise((resolve, reject) => {
    // Each sender from its own loopback address, as 20 different mail servers would.
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.' + (10 + i) });
    let buffer = '';
    const replies = [];
    const attachment = i % 2 === 0;
    const head = [
      'From: Sender ' + i + ' <sender' + i + '@bench' + i + '.example>',
      'To: support@acme.test',
      'Subject: Big mail ' + i,
      'Message-ID: <bench.' + i + '.' + Date.now() + '@bench.example>',
      'MIME-Version: 1.0',
    ];
    const prefix = attachment
      ? head.concat(['Content-Type: multipart/mixed; boundary="b0"', '', '--b0', 'Content-Type: text/plain', '', 'See the attached file.', '--b0',
          'Content-Type: application/pdf; name="big.pdf"', 'Content-Disposition: attachment; filename="big.pdf"', 'Content-Transfer-Encoding: base64', '', '']).join('\r\n')
      : head.concat(['Content-Type: text/plain; charset=utf-8', '', '']).join('\r\n');
    const suffix = attachment ? '--b0--\r\n' : '';
    const unit = attachment ? b64 : line;
    const script = ['EHLO bench.example', 'MAIL FROM:<sender' + i + '@bench' + i + '.example>', 'RCPT TO:<support@acme.test>', 'DATA'];
    let step = 0;
    const body = () => {
      socket.write(prefix);
      let left = size - prefix.length - suffix.length;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, 64 * 1024);
          const chunk = unit.repeat(Math.ceil(n / unit.length)).slice(0, n - (n % unit.length)) || unit;
          left -= chunk.length;
          if (!socket.write(chunk)) return socket.once('drain', pump);
        }
        socket.write('\r\n' + suffix + '.\r\n');
      };
      pump();
    };
    socket.on('data', (data) => {
      buffer += data.toString();
      let end;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const reply = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (/^\d{3}-/.test(reply)) continue;
        replies.push(reply);
        if (step < script.length) socket.write(script[step++] + '\r\n');
        else if (step === script.length) { step++; body(); }
        else { socket.end('QUIT\r\n'); resolve(reply); return; }
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(replies.at(-1) ?? 'closed'));
  });
}
const started = Date.now();
const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => send(i)));
console.log(JSON.stringify({ ms: Date.now() - started, replies: results.map((r) => (r.status === 'fulfilled' ? r.value : 'error: ' + r.reason)) }));
`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-email-'));
  const sink = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      stream.on('data', () => {});
      stream.on('end', () => callback());
    },
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const sinkPort = (sink.server.address() as { port: number }).port;

  const store = await openSqliteStore(join(dir, 'bridge.sqlite'));
  const bridge = new Bridge({ store, agent: new OfflineAgent(loadFaq(new URL('../config/faq.json', import.meta.url).pathname)), logger: silentLogger() });
  const email = createEmailChannel({
    bridge,
    logger: silentLogger(),
    config: { inboundPort: 0, inboundHost: '127.0.0.1', address: 'support@acme.test', smtpUrl: `smtp://127.0.0.1:${sinkPort}`, ...(process.env.PARSE_CONCURRENCY ? { parseConcurrency: Number(process.env.PARSE_CONCURRENCY) } : {}) },
  });
  bridge.addChannel(email);
  bridge.start();
  await email.start();

  const sendMails = (count: number, size: number) =>
    new Promise<{ ms: number; replies: string[] }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', SENDER, String(email.port), String(count), String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as { ms: number; replies: string[] }) : reject(new Error(`sender exited with ${code}`))));
    });

  // Warm up every code path once (parser, store, agent, outbound), then settle.
  await sendMails(2, 200_000);
  await bridge.idle();
  for (let i = 0; i < 3; i++) gc();
  await new Promise((r) => setTimeout(r, 200));
  const baseline = process.memoryUsage().rss;

  let peak = baseline;
  let peakHeap = 0;
  const sampler = setInterval(() => {
    const usage = process.memoryUsage();
    peak = Math.max(peak, usage.rss);
    peakHeap = Math.max(peakHeap, usage.heapUsed + usage.external + usage.arrayBuffers);
  }, 10);
  const result = await sendMails(MAILS, MAIL_BYTES);
  await bridge.idle();
  clearInterval(sampler);

  const growth = (peak - baseline) / MB;
  const accepted = result.replies.filter((r) => r.startsWith('250')).length;
  console.log(`email memory: ${MAILS} concurrent mails of ${(MAIL_BYTES / MB).toFixed(1)} MB (half attachment, half text body)`);
  console.log(`  accepted ${accepted}/${MAILS} in ${(result.ms / 1000).toFixed(1)} s${accepted < MAILS ? `; other replies: ${[...new Set(result.replies.filter((r) => !r.startsWith('250')))].join(' | ')}` : ''}`);
  console.log(`  rss before ${(baseline / MB).toFixed(0)} MB, peak ${(peak / MB).toFixed(0)} MB: growth ${growth.toFixed(0)} MB (bound ${BOUND_MB} MB)`);
  console.log(`  peak heap + external ${(peakHeap / MB).toFixed(0)} MB`);
  console.log(growth <= BOUND_MB && accepted === MAILS ? '  PASS' : '  FAIL');

  await email.stop();
  await bridge.stop();
  await store.close();
  await new Promise<void>((resolve) => sink.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
  process.exit(growth <= BOUND_MB && accepted === MAILS ? 0 : 1);
}

await main();
