/**
 * Holds one inbound message while it arrives: in memory while small, in a file of its own once it
 * passes `memoryBytes`, so a large mail costs disk, not heap. Hashes the bytes on the way (the
 * idempotency key of a mail without a Message-ID) and counts them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { once } from 'node:events';

/** A received message, ready to be read (once or more) and then disposed of. */
export interface SpooledMessage {
  readonly size: number;
  /** `sha256:<hex>` of the bytes as received. */
  readonly digest: string;
  /** Where its bytes are: `memory` or the spool file's path. */
  readonly where: string;
  open(): Readable;
  /** Deletes the spool file, if there is one. */
  dispose(): Promise<void>;
}

/** A message already in memory (tests, fuzzing, direct calls). */
export function inMemoryMessage(raw: Buffer | string, digest?: string): SpooledMessage {
  const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  return {
    size: bytes.length,
    digest: digest ?? 'sha256:' + createHash('sha256').update(bytes).digest('hex'),
    where: 'memory',
    open: () => Readable.from([bytes]),
    dispose: async () => {},
  };
}

export class SpoolWriter {
  private readonly hash = createHash('sha256');
  private chunks: Buffer[] = [];
  private buffered = 0;
  private size = 0;
  private file?: { path: string; stream: WriteStream };
  private failed?: Error;

  constructor(
    private readonly dir: string,
    private readonly memoryBytes: number,
  ) {}

  /** Adds a chunk; resolves when it may be given the next one (file backpressure). */
  async write(chunk: Buffer): Promise<void> {
    this.hash.update(chunk);
    this.size += chunk.length;
    if (!this.file && this.buffered + chunk.length <= this.memoryBytes) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      return;
    }
    if (!this.file) {
      const path = join(this.dir, `hb-mail-${Date.now()}-${randomBytes(6).toString('hex')}.eml`);
      const stream = createWriteStream(path, { flags: 'wx', mode: 0o600 });
      stream.on('error', (err) => (this.failed ??= err));
      this.file = { path, stream };
      for (const c of this.chunks) stream.write(c);
      this.chunks = [];
      this.buffered = 0;
    }
    if (this.failed) throw this.failed;
    // `once` rejects if the stream errors meanwhile.
    if (!this.file.stream.write(chunk)) await once(this.file.stream, 'drain');
    if (this.failed) throw this.failed;
  }

  /** The message as received. */
  async finish(): Promise<SpooledMessage> {
    const digest = 'sha256:' + this.hash.digest('hex');
    const size = this.size;
    const file = this.file;
    if (!file) {
      const bytes = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      return inMemoryMessage(bytes, digest);
    }
    file.stream.end();
    await once(file.stream, 'close');
    if (this.failed) {
      await rm(file.path, { force: true });
      throw this.failed;
    }
    return {
      size,
      digest,
      where: file.path,
      open: () => createReadStream(file.path, { highWaterMark: 64 * 1024 }),
      dispose: () => rm(file.path, { force: true }),
    };
  }

  /** Throws the message away (refused, or the client went away). */
  async discard(): Promise<void> {
    this.chunks = [];
    const file = this.file;
    if (!file) return;
    file.stream.destroy();
    await rm(file.path, { force: true });
  }
}

/** At most `limit` holders at once; the rest wait in arrival order. */
export class Slots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
