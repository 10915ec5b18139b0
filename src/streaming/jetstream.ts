// What the stream backend and the bridge share about NATS JetStream.
import { JetStreamApiError, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';

/** JetStream's API error code for "stream not found". */
const STREAM_NOT_FOUND = 10059;

/** Creates the JetStream stream unless it exists (an existing stream is left as it is). */
export async function ensureJetStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== STREAM_NOT_FOUND) throw err;
    await jsm.streams.add(config);
  }
}
