// One LISTEN connection on a PostgreSQL channel, shared by everyone in a process object who
// waits on it: wake-ups are grouped by a key taken from the notification's payload. A
// connection that fails is dropped, and the next wait opens a new one; waiters also poll, so
// a notification lost in between costs a poll interval, not an event.
import type pg from 'pg';
import type { Pool } from './pool.ts';

export class ChannelListener {
  private readonly waiters = new Map<string, Set<() => void>>();
  private listener?: Promise<pg.PoolClient>;

  constructor(
    private readonly pool: Pool,
    private readonly channel: string,
    /** The waiters' key of a notification payload. */
    private readonly keyOf: (payload: string) => string = (payload) => payload,
  ) {}

  /** Calls wake on every notification for key (possibly spuriously); returns the unsubscribe. */
  async subscribe(key: string, wake: () => void): Promise<() => void> {
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    set.add(wake);
    try {
      await this.listen();
    } catch (err) {
      set.delete(wake);
      throw err;
    }
    return () => set.delete(wake);
  }

  private listen(): Promise<pg.PoolClient> {
    this.listener ??= (async () => {
      const client = await this.pool.connect();
      client.on('notification', (msg) => {
        for (const wake of this.waiters.get(this.keyOf(msg.payload ?? '')) ?? []) wake();
      });
      client.on('error', () => {
        this.listener = undefined;
        client.release(true);
      });
      await client.query(`LISTEN ${this.channel}`);
      return client;
    })();
    this.listener.catch(() => (this.listener = undefined));
    return this.listener;
  }

  /** Forgets every waiter (they poll) and gives the connection back. */
  async close(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    this.waiters.clear();
    const client = await listener?.catch(() => undefined);
    if (client) {
      await client.query(`UNLISTEN ${this.channel}`).catch(() => {});
      client.release();
    }
  }
}
