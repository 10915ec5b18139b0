// Follows a stream from an offset: pages of records as they are appended, woken by the
// backend's signal (LISTEN/NOTIFY or a NATS subscription) and, as a safety net, by a timer.
// Shared by the SSE endpoint and the subscriber.
import type { StoredRecord, StreamBackend } from './backend.ts';
import type { StreamName } from './types.ts';

export interface FollowOptions {
  after: number;
  pageSize?: number;
  /** Longest sleep without a wake-up (covers a lost notification). */
  idleMs?: number;
  signal: AbortSignal;
  /** Handles one page; the next page starts after its last offset. */
  onPage(records: StoredRecord[]): Promise<void>;
  /** Called when a wait ends with nothing new (SSE sends a keep-alive). */
  onIdle?(): void;
}

export async function followStream(backend: StreamBackend, stream: StreamName, options: FollowOptions): Promise<number> {
  const pageSize = options.pageSize ?? 500;
  const idleMs = options.idleMs ?? 5_000;
  let offset = options.after;
  let dirty = false;
  let wake: (() => void) | undefined;
  const poke = () => {
    dirty = true;
    wake?.();
  };
  const unwatch = await backend.watch(stream, poke);
  options.signal.addEventListener('abort', poke, { once: true });
  try {
    while (!options.signal.aborted) {
      dirty = false;
      const page = await backend.read(stream, offset, pageSize);
      if (page.length > 0) {
        await options.onPage(page);
        offset = page[page.length - 1].offset;
        if (page.length === pageSize) continue;
      }
      if (dirty || options.signal.aborted) continue;
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), idleMs);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      wake = undefined;
      if (!woken) options.onIdle?.();
    }
  } finally {
    unwatch();
    options.signal.removeEventListener('abort', poke);
  }
  return offset;
}
