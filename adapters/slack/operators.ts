/**
 * Slack users as bridge operators: `{ id: 'slack:U123', name, workspace: 'slack' }`, with the
 * display name from users.info, cached in memory and in the store so a click costs no API call.
 */
import type { Operator } from '../../src/model.ts';
import type { KeyValue } from '../../src/store/store.ts';
import type { Logger } from '../../src/log.ts';

/** Prefix of Slack operators' ids. */
export const SLACK_OPERATOR_PREFIX = 'slack:';

/** The Slack user id inside an operator id, or undefined for another workspace's operator. */
export function slackUserId(operator: Operator): string | undefined {
  return operator.id.startsWith(SLACK_OPERATOR_PREFIX) ? operator.id.slice(SLACK_OPERATOR_PREFIX.length) : undefined;
}

interface UserInfo {
  user?: { name?: string; real_name?: string; deleted?: boolean; profile?: { display_name?: string; real_name?: string } };
}

export class SlackOperators {
  private readonly memory = new Map<string, { name: string; until: number }>();

  constructor(
    private readonly lookup: (userId: string) => Promise<UserInfo>,
    private readonly kv: KeyValue,
    private readonly logger: Logger,
    private readonly ttlMs = 60 * 60 * 1000,
  ) {}

  /** The operator for a Slack user. If Slack cannot say who it is, the name falls back to `fallbackName` or the id. */
  async operator(userId: string, fallbackName?: string): Promise<Operator> {
    return { id: SLACK_OPERATOR_PREFIX + userId, name: await this.name(userId, fallbackName), workspace: 'slack' };
  }

  /** A user's display name, cached. */
  async name(userId: string, fallbackName?: string): Promise<string> {
    const now = Date.now();
    const cached = this.memory.get(userId);
    if (cached && cached.until > now) return cached.name;
    const stored = await this.kv.get<string>(`user:${userId}`);
    if (stored) {
      this.memory.set(userId, { name: stored, until: now + this.ttlMs });
      return stored;
    }
    try {
      const info = await this.lookup(userId);
      const u = info.user;
      const name = u?.profile?.display_name?.trim() || u?.profile?.real_name?.trim() || u?.real_name?.trim() || u?.name?.trim();
      if (name) {
        if (this.memory.size >= 5000) this.memory.clear(); // a crude bound; the store keeps the rest
        this.memory.set(userId, { name, until: now + this.ttlMs });
        await this.kv.set(`user:${userId}`, name, this.ttlMs);
        return name;
      }
    } catch (err) {
      this.logger.warn({ userId, err: (err as Error).message }, 'users.info failed; using a fallback operator name');
    }
    return fallbackName?.trim() || userId;
  }

  /** Names already known (no API call), for turning `<@U123>` into `@Dana` synchronously. */
  knownName(userId: string): string | undefined {
    return this.memory.get(userId)?.name;
  }
}
