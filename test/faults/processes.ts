/**
 * Bridge instances as real child processes (test/faults/instance.ts): started, killed with
 * SIGKILL, started again on the same ports, stopped with SIGTERM. Each keeps its output in a log file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { sleep } from './util.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const ENTRY = new URL('./instance.ts', import.meta.url).pathname;
const READY = 'FAULTS-READY ';

export class BridgeProcess {
  private child?: ChildProcess;
  private log?: WriteStream;
  /** How many times it was started (1 = first start). */
  starts = 0;
  kills = 0;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly smtpPort: number,
    private readonly env: Record<string, string>,
    private readonly logFile: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and resolves once it prints its ready line; retries while it fails to start (Redis down). */
  async start(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.startOnce(Math.max(1000, deadline - Date.now()));
      } catch (err) {
        if (Date.now() > deadline) throw err;
        this.note(`start failed (${(err as Error).message}); trying again`);
        await sleep(500);
      }
    }
  }

  private startOnce(timeoutMs: number): Promise<void> {
    this.log ??= createWriteStream(this.logFile, { flags: 'a' });
    this.starts += 1;
    this.note(`starting (start #${this.starts})`);
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...this.env, PORT: String(this.port), SMTP_INBOUND_PORT: String(this.smtpPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    return new Promise<void>((resolve, reject) => {
      let buffered = '';
      let ready = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${this.name} not ready within ${timeoutMs} ms`));
      }, timeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        this.log?.write(chunk);
        if (ready) return;
        buffered += chunk.toString('utf8');
        if (buffered.includes(READY)) {
          ready = true;
          buffered = '';
          clearTimeout(timer);
          resolve();
        } else if (buffered.length > 100_000) buffered = buffered.slice(-1000);
      });
      child.stderr!.on('data', (chunk: Buffer) => this.log?.write(chunk));
      child.once('exit', (code, signal) => {
        this.note(`exited (code ${code}, signal ${signal})`);
        if (!ready) {
          clearTimeout(timer);
          reject(new Error(`${this.name} exited before it was ready (code ${code}); see ${this.logFile}`));
        }
      });
    });
  }

  /** kill -9: no shutdown, no goodbye. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    this.kills += 1;
    this.note('SIGKILL');
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 30_000): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    this.note('SIGTERM');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** Closes the log file (after the process is gone). */
  async close(): Promise<void> {
    const log = this.log;
    this.log = undefined;
    if (log) await new Promise<void>((resolve) => log.end(() => resolve()));
  }

  private note(text: string): void {
    this.log?.write(`--- faults: ${new Date().toISOString()} ${this.name} ${text}\n`);
  }
}

/** Picks an instance for a request the way a load balancer would: the preferred one if it is up, else the next. */
export function route(instances: BridgeProcess[], preferred: number, attempt = 0): BridgeProcess {
  const n = instances.length;
  for (let i = 0; i < n; i++) {
    const candidate = instances[(preferred + attempt + i) % n]!;
    if (candidate.alive) return candidate;
  }
  return instances[(preferred + attempt) % n]!;
}
