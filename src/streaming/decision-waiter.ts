// Waiting for decisions in batched mode (`?wait=true`, `emit --wait`): one reader per process
// follows the decision stream from its head and hands each decision to whoever waits for its
// id, so thousands of waiting producers cost one stream read per page, not one query each.
import { log } from '../log.ts';
import type { StreamBackend } from './backend.ts';
import { followStream } from './follow.ts';
import type { Decision } from './types.ts';

export class DecisionWaiter {
  private readonly waiting = new Map<string, Set<(decision: Decision) => void>>();
  private following?: Promise<void>;
  private readonly abort = new AbortController();

  constructor(private readonly backend: StreamBackend) {}

  /** Starts following at the stream's current head; resolves once every later decision will be seen. */
  private follow(): Promise<void> {
    this.following ??= (async () => {
      const head = await this.backend.head('decisions');
      followStream(this.backend, 'decisions', {
        after: head,
        signal: this.abort.signal,
        idleMs: 1_000,
        onPage: async (records) => {
          for (const r of records) {
            const waiters = this.waiting.get(r.id);
            if (!waiters) continue;
            this.waiting.delete(r.id);
            for (const resolve of waiters) resolve(r.value as Decision);
          }
        },
      }).catch((err) => {
        // Following again from the head: decisions of the gap are not waited for (their waits time out).
        log.warn({ err: (err as Error).message }, 'following the decision stream failed; starting again');
        this.following = undefined;
      });
    })();
    this.following.catch(() => (this.following = undefined));
    return this.following;
  }

  /**
   * Registers interest in a decision id before the event is appended; `wait` then resolves with
   * the decision, or undefined after timeoutMs.
   */
  async expect(id: string): Promise<{ wait(timeoutMs: number): Promise<Decision | undefined>; cancel(): void }> {
    await this.follow();
    let resolveDecision!: (decision: Decision) => void;
    const decided = new Promise<Decision>((resolve) => (resolveDecision = resolve));
    let waiters = this.waiting.get(id);
    if (!waiters) this.waiting.set(id, (waiters = new Set()));
    waiters.add(resolveDecision);
    const cancel = () => {
      const set = this.waiting.get(id);
      set?.delete(resolveDecision);
      if (set?.size === 0) this.waiting.delete(id);
    };
    return {
      cancel,
      async wait(timeoutMs: number) {
        let timer: NodeJS.Timeout | undefined;
        try {
          return await Promise.race([decided, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)))]);
        } finally {
          clearTimeout(timer);
          cancel();
        }
      },
    };
  }

  close(): void {
    this.abort.abort();
  }
}
