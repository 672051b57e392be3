/**
 * The SSF event streams Mandate transmits on, and the port that persists them. The transmitter depends on
 * {@link SsfStreamStore} only; the in-memory implementation here serves tests and the demo, the SQLite one lives in
 * src/store.
 *
 * @see https://openid.net/specs/openid-sharedsignals-framework-1_0.html §8.1.1 (Stream Configuration)
 */
import { ConflictError } from '../core/errors.ts';

/** A stream's status (SSF 1.0 §8.1.2). */
export type SsfStreamStatus = 'enabled' | 'paused' | 'disabled';

/** One event stream, as stored. Plain JSON-able data. */
export interface SsfStreamV1 {
  /** Transmitter-supplied, unguessable. */
  readonly streamId: string;
  /** The API caller (registered service id) that created it; only it may read or change it. */
  readonly owner: string;
  /** Transmitter-supplied; cannot be updated. */
  readonly aud: readonly string[];
  readonly eventsRequested: readonly string[];
  /** Requested ∩ supported, computed by the transmitter. */
  readonly eventsDelivered: readonly string[];
  readonly delivery: {
    readonly method: 'urn:ietf:rfc:8935';
    readonly endpointUrl: string;
    /**
     * The `Authorization` header value the receiver asked to be sent with every push. A secret: the store should
     * keep it encrypted (KEK) and it is never echoed in API responses or logs.
     */
    readonly authorizationHeader?: string;
  };
  readonly description?: string;
  readonly status: SsfStreamStatus;
  readonly reason?: string;
  /** Epoch ms. */
  readonly createdAt: number;
  readonly updatedAt: number;
  /** When a verification event was last requested (epoch ms), for `min_verification_interval`. */
  readonly lastVerificationRequestAt?: number;
}
/** Same as {@link SsfStreamV1}. */
export type SsfStream = SsfStreamV1;

/**
 * Persists streams. Every method rejects with `StoreUnavailableError` when the store cannot answer (the caller
 * fails closed); `create` rejects with `ConflictError` on a duplicate id; `replace` resolves false for an unknown id.
 */
export interface SsfStreamStore {
  create(stream: SsfStream): Promise<void>;
  get(streamId: string): Promise<SsfStream | undefined>;
  listByOwner(owner: string): Promise<SsfStream[]>;
  /** Every stream whose status is `enabled` and whose `eventsDelivered` includes `eventType`. */
  listForEvent(eventType: string): Promise<SsfStream[]>;
  replace(stream: SsfStream): Promise<boolean>;
  delete(streamId: string): Promise<boolean>;
}

/** An in-memory {@link SsfStreamStore}, for tests and the demo (streams are lost at exit). */
export function createMemoryStreamStore(): SsfStreamStore & { size(): number } {
  const streams = new Map<string, SsfStream>();
  const copy = (s: SsfStream): SsfStream => structuredClone(s);
  return {
    async create(stream) {
      if (streams.has(stream.streamId)) throw new ConflictError('a stream with this id exists');
      streams.set(stream.streamId, copy(stream));
    },
    async get(streamId) {
      const s = streams.get(streamId);
      return s === undefined ? undefined : copy(s);
    },
    async listByOwner(owner) {
      return [...streams.values()].filter((s) => s.owner === owner).map(copy);
    },
    async listForEvent(eventType) {
      return [...streams.values()].filter((s) => s.status === 'enabled' && s.eventsDelivered.includes(eventType)).map(copy);
    },
    async replace(stream) {
      if (!streams.has(stream.streamId)) return false;
      streams.set(stream.streamId, copy(stream));
      return true;
    },
    async delete(streamId) {
      return streams.delete(streamId);
    },
    size: () => streams.size,
  };
}
