/**
 * Reading a `.cpuprofile` for bench/e2e.ts: self time per function, per area (package, node
 * module, project folder) and the inclusive time of the project's own functions, from the samples
 * inside a time window (one bench cell).
 *
 * The bridge runs under tsx, which compiles each TypeScript file with esbuild (whitespace removed),
 * so the profile's positions are in that output. They are mapped back to source lines by compiling
 * the same source with the same options (tsx 4: esm, sourcemap, minifyWhitespace, keepNames) and
 * reading the source map; `snapshotSources` keeps the sources as they were when the bridge started.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { join } from 'node:path';
import { transformSync } from 'esbuild';

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; children?: number[] }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  where: string;
  ms: number;
}

export interface ProfileTop {
  /** Sampled main-thread time in the window, and the part not idle in the event loop. */
  totalMs: number;
  busyMs: number;
  functions: ProfileEntry[];
  areas: Array<{ area: string; ms: number }>;
  /** Time with the function on the (synchronous) stack, callees included, for the project's own code only. */
  inclusive: ProfileEntry[];
}

const PROJECT_DIRS = ['src', 'adapters', 'cards'];
const PROJECT = /^(src|adapters|cards)\//;

/** The project's TypeScript sources, as they are now. */
export function snapshotSources(root: string): Map<string, string> {
  const sources = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (entry.endsWith('.ts')) sources.set(path, readFileSync(path, 'utf8'));
    }
  };
  for (const dir of PROJECT_DIRS) walk(join(root, dir));
  return sources;
}

/** Maps positions in tsx's output back to source lines. */
class SourceLines {
  private readonly maps = new Map<string, SourceMap | undefined>();

  constructor(private readonly sources: Map<string, string>) {}

  /** 1-based source line of a 0-based generated position, or undefined. */
  line(path: string, line: number, column: number): number | undefined {
    if (!this.maps.has(path)) {
      const source = this.sources.get(path);
      let map: SourceMap | undefined;
      if (source !== undefined) {
        try {
          const out = transformSync(source, { target: `node${process.versions.node}`, loader: 'default', sourcemap: true, sourcesContent: false, minifyWhitespace: true, keepNames: true, format: 'esm', sourcefile: path });
          map = new SourceMap(JSON.parse(out.map));
        } catch {
          map = undefined;
        }
      }
      this.maps.set(path, map);
    }
    const entry = this.maps.get(path)?.findEntry(line, column) as { originalLine?: number } | undefined;
    return entry?.originalLine === undefined ? undefined : entry.originalLine + 1;
  }
}

export class ProfileReader {
  private readonly lines: SourceLines;

  constructor(
    private readonly root: string,
    sources: Map<string, string>,
  ) {
    this.lines = new SourceLines(sources);
  }

  shortUrl(url: string): string {
    let u = url.replace(/^file:\/\//, '');
    const modules = u.lastIndexOf('/node_modules/');
    if (modules >= 0) return u.slice(modules + '/node_modules/'.length);
    if (u.startsWith(this.root)) u = u.slice(this.root.length);
    return u;
  }

  /** `path:line`, the line in the source for project files, in the file itself otherwise. */
  where(frame: CpuProfile['nodes'][number]['callFrame']): string {
    if (!frame.url) return '';
    const short = this.shortUrl(frame.url);
    if (PROJECT.test(short)) {
      const line = this.lines.line(frame.url.replace(/^file:\/\//, ''), frame.lineNumber, frame.columnNumber);
      if (line !== undefined) return `${short}:${line}`;
      return `${short} (compiled ${frame.lineNumber + 1}:${frame.columnNumber + 1})`;
    }
    return `${short}:${frame.lineNumber + 1}`;
  }

  areaOf(name: string, url: string): string {
    if (!url) return name.startsWith('(') ? name : '(native)';
    if (url.startsWith('node:')) {
      const parts = url.slice('node:'.length).split('/');
      return `node:${parts[0] === 'internal' ? (parts[1] ?? 'internal') : parts[0]}`.replace(/\.js$/, '');
    }
    const short = this.shortUrl(url);
    const parts = short.split('/');
    if (url.includes('/node_modules/')) return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
    return parts.length > 2 ? `${parts[0]}/${parts[1]}` : short;
  }

  /** The samples inside [fromUs, toUs] (the profiler's clock: CLOCK_MONOTONIC microseconds). */
  top(profile: CpuProfile, fromUs: number, toUs: number, count: number): ProfileTop {
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    const keyOf = new Map<number, { name: string; where: string }>();
    const label = (id: number) => {
      let known = keyOf.get(id);
      if (!known) {
        const frame = byId.get(id)!.callFrame;
        known = { name: frame.functionName || '(anonymous)', where: this.where(frame) };
        keyOf.set(id, known);
      }
      return known;
    };
    // The project frames on each node's stack, each once.
    const stacks = new Map<number, string[]>();
    const projectStack = (id: number): string[] => {
      const known = stacks.get(id);
      if (known) return known;
      const up = parent.has(id) ? projectStack(parent.get(id)!) : [];
      const frame = byId.get(id)!.callFrame;
      let stack = up;
      if (frame.url && PROJECT.test(this.shortUrl(frame.url))) {
        const { name, where } = label(id);
        const key = `${name}\t${where}`;
        if (!up.includes(key)) stack = [...up, key];
      }
      stacks.set(id, stack);
      return stack;
    };

    const self = new Map<number, number>();
    let t = profile.startTime;
    const n = profile.samples.length;
    for (let i = 0; i < n; i++) {
      t += profile.timeDeltas[i]!;
      if (t < fromUs || t > toUs) continue;
      // A sample stands for the time until the next one.
      const next = i + 1 < n ? Math.max(0, profile.timeDeltas[i + 1]!) : 0;
      self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + next);
    }

    const functions = new Map<string, ProfileEntry>();
    const areas = new Map<string, number>();
    const inclusive = new Map<string, number>();
    let totalMs = 0;
    let idleMs = 0;
    for (const [id, us] of self) {
      const ms = us / 1000;
      const frame = byId.get(id)!.callFrame;
      totalMs += ms;
      if (frame.functionName === '(idle)') {
        idleMs += ms;
        continue;
      }
      for (const key of projectStack(id)) inclusive.set(key, (inclusive.get(key) ?? 0) + ms);
      const { name, where } = label(id);
      const key = `${name}\t${where}`;
      const entry = functions.get(key) ?? { name, where, ms: 0 };
      entry.ms += ms;
      functions.set(key, entry);
      const area = this.areaOf(name, frame.url);
      areas.set(area, (areas.get(area) ?? 0) + ms);
    }
    return {
      totalMs,
      busyMs: totalMs - idleMs,
      functions: [...functions.values()].sort((a, b) => b.ms - a.ms).slice(0, count),
      areas: [...areas.entries()].map(([area, ms]) => ({ area, ms })).sort((a, b) => b.ms - a.ms).slice(0, 15),
      inclusive: [...inclusive.entries()]
        .map(([key, ms]) => {
          const [name, where] = key.split('\t') as [string, string];
          return { name, where, ms };
        })
        .sort((a, b) => b.ms - a.ms)
        .slice(0, count),
    };
  }
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}

/** The main thread's profile (thread 0; tsx's loader thread writes its own) a process wrote to `dir`: CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile. */
export function profileFile(dir: string, pid: number): string | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && f.split('.')[3] === String(pid) && f.split('.')[4] === '0');
  return files.map((f) => join(dir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
}
