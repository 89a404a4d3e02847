/**
 * Support hours as pure functions: "Mon-Fri 09:00-17:00 Europe/Berlin" (several ranges with `;`),
 * holidays as local dates. `isOpen` and `nextOpening` read the wall clock of the configured time
 * zone through Intl, so daylight saving time is handled by the platform's tz data.
 */
import { ConfigError } from '../errors.ts';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

export interface SupportHours {
  timeZone: string;
  /** For each weekday (0 = Sunday), the open ranges in minutes after local midnight. */
  week: Array<Array<[number, number]>>;
  /** Local dates (YYYY-MM-DD) when nobody answers. */
  holidays: string[];
}

/** Parses `Mon-Fri 09:00-17:00 Europe/Berlin; Sat 10:00-14:00 Europe/Berlin`. Throws ConfigError naming `variable`. */
export function parseSupportHours(text: string, holidays: string[] = [], variable = 'SUPPORT_HOURS'): SupportHours {
  const week: SupportHours['week'] = DAYS.map(() => []);
  let timeZone: string | undefined;
  for (const part of text.split(';').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([A-Za-z]{3})(?:-([A-Za-z]{3}))?\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})(?:\s+(\S+))?$/.exec(part);
    if (!match) throw new ConfigError(variable, `ranges like "Mon-Fri 09:00-17:00 Europe/Berlin" (got "${part}")`);
    const [, from, to, h1, m1, h2, m2, zone] = match;
    const first = dayIndex(from!, variable);
    const last = dayIndex(to ?? from!, variable);
    const start = Number(h1) * 60 + Number(m1);
    const end = Number(h2) * 60 + Number(m2);
    if (start >= end || end > 24 * 60) throw new ConfigError(variable, `a range that starts before it ends, within one day (got "${part}")`);
    const tz = zone ?? timeZone ?? 'UTC';
    if (!validZone(tz)) throw new ConfigError(variable, `an IANA time zone such as Europe/Berlin (got "${tz}")`);
    if (timeZone && tz !== timeZone) throw new ConfigError(variable, 'one time zone for every range');
    timeZone = tz;
    for (let d = first; ; d = (d + 1) % 7) {
      week[d]!.push([start, end]);
      if (d === last) break;
    }
  }
  for (const day of holidays) if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new ConfigError(variable, `holidays as YYYY-MM-DD (got "${day}")`);
  return { timeZone: timeZone ?? 'UTC', week, holidays };
}

function dayIndex(name: string, variable: string): number {
  const i = DAYS.findIndex((d) => d.toLowerCase() === name.toLowerCase());
  if (i < 0) throw new ConfigError(variable, `days as Mon, Tue, ... Sun (got "${name}")`);
  return i;
}

function validZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The local weekday, date and minute of the day at `at` in `timeZone`. */
function local(at: Date, timeZone: string): { weekday: number; date: string; minute: number } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  return {
    weekday: DAYS.indexOf(parts.weekday as (typeof DAYS)[number]),
    date: `${parts.year}-${parts.month}-${parts.day}`,
    minute: Number(parts.hour) * 60 + Number(parts.minute),
  };
}

/** True when a person is expected to answer at `at`. No hours configured means always open. */
export function isOpen(hours: SupportHours | undefined, at: Date): boolean {
  if (!hours) return true;
  const l = local(at, hours.timeZone);
  if (hours.holidays.includes(l.date)) return false;
  return hours.week[l.weekday]!.some(([start, end]) => l.minute >= start && l.minute < end);
}

/** The next moment the desk opens after `at` (to the minute), or undefined if it never does. */
export function nextOpening(hours: SupportHours | undefined, at: Date): Date | undefined {
  if (!hours || isOpen(hours, at)) return at;
  // Minute steps would be slow; step to each range start across the next 14 days instead.
  const start = Math.ceil(at.getTime() / 60_000) * 60_000;
  for (let t = start; t < start + 15 * 24 * 3600_000; t += 60_000) {
    const candidate = new Date(t);
    const l = local(candidate, hours.timeZone);
    if (hours.holidays.includes(l.date)) {
      t += (24 * 60 - l.minute - 1) * 60_000; // skip to the end of the local day
      continue;
    }
    const next = hours.week[l.weekday]!.map(([s]) => s).filter((s) => s >= l.minute).sort((a, b) => a - b)[0];
    if (next === undefined) {
      t += (24 * 60 - l.minute - 1) * 60_000;
      continue;
    }
    if (next === l.minute) return candidate;
    t += (next - l.minute - 1) * 60_000;
  }
  return undefined;
}

/** A duration setting: seconds as a number, or `90s`, `10m`, `1h`, `2d`. Throws ConfigError naming `variable`. */
export function parseDuration(value: string | number, variable: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new ConfigError(variable, `a duration such as 90s, 10m or 1h (got ${value})`);
    return value * 1000;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$/i.exec(value);
  if (!match) throw new ConfigError(variable, `a duration such as 90s, 10m or 1h, or seconds (got "${value}")`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(match[2] ?? 's').toLowerCase() as 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(match[1]) * unit * 1000);
}
