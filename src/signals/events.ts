/**
 * The Shared Signals vocabulary Mandate speaks: event type URIs (SSF 1.0, CAEP 1.0), RFC 9493 subject identifiers,
 * and the typed {@link Signal} the receiver hands to the revocation path. Pure: no I/O.
 *
 * @see https://openid.net/specs/openid-caep-1_0.html
 * @see https://www.rfc-editor.org/rfc/rfc9493 (Subject Identifiers for Security Event Tokens)
 */

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const SSF = 'https://schemas.openid.net/secevent/ssf/event-type/';

/** Event type URIs. */
export const EVENT_TYPES = {
  sessionRevoked: `${CAEP}session-revoked`,
  credentialChange: `${CAEP}credential-change`,
  tokenClaimsChange: `${CAEP}token-claims-change`,
  assuranceLevelChange: `${CAEP}assurance-level-change`,
  verification: `${SSF}verification`,
  streamUpdated: `${SSF}stream-updated`,
} as const;

/** The CAEP events the receiver acts on (hands to `onSignal`). */
export type CaepEventName = 'session-revoked' | 'credential-change' | 'token-claims-change' | 'assurance-level-change';

/** CAEP event URI → short name. */
export const CAEP_EVENTS: ReadonlyMap<string, CaepEventName> = new Map([
  [EVENT_TYPES.sessionRevoked, 'session-revoked'],
  [EVENT_TYPES.credentialChange, 'credential-change'],
  [EVENT_TYPES.tokenClaimsChange, 'token-claims-change'],
  [EVENT_TYPES.assuranceLevelChange, 'assurance-level-change'],
]);

/** The RFC 8935 push delivery method URI, as SSF 1.0 names it. */
export const PUSH_DELIVERY_METHOD = 'urn:ietf:rfc:8935';
/** The RFC 8936 poll delivery method URI (not offered by Mandate). */
export const POLL_DELIVERY_METHOD = 'urn:ietf:rfc:8936';

/** An RFC 9493 subject identifier (or an SSF complex subject): a JSON object with a `format`. */
export type SubjectIdentifier = { readonly format: string } & Readonly<Record<string, unknown>>;

/**
 * A Mandate principal named by a SET. Users are keyed by (issuer, subject) as everywhere in Mandate; agents and
 * services by their registry id.
 */
export type SignalPrincipal = { readonly kind: 'user'; readonly iss: string; readonly sub: string } | { readonly kind: 'agent' | 'service'; readonly id: string };

/** What a SET's subject names, once mapped. Every member is optional: a subject may name a session only. */
export interface SignalSubject {
  /** The user, agent or service, when the subject names one Mandate knows how to key. */
  readonly principal?: SignalPrincipal;
  /** A session id at the transmitter (`session` member of a complex subject, format `opaque` or `iss_sub`). */
  readonly session?: string;
  /** A token named by `jwt_id` (SSF 1.0 §"JWT ID Subject Identifier Format"): a mandate when `iss` is Mandate's issuer. */
  readonly token?: { readonly iss: string; readonly jti: string };
}

/** Who caused the event (CAEP 1.0 §2 `initiating_entity`). */
export type InitiatingEntity = 'admin' | 'user' | 'policy' | 'system';

/** Event-specific claims, per CAEP event. */
export type SignalDetails =
  | { readonly event: 'session-revoked' }
  | {
      readonly event: 'credential-change';
      readonly credentialType: string;
      readonly changeType: 'create' | 'revoke' | 'update' | 'delete';
    }
  | {
      readonly event: 'token-claims-change';
      /** Names of the changed claims only; their values are not carried (they may hold personal data). */
      readonly claimNames: readonly string[];
    }
  | {
      readonly event: 'assurance-level-change';
      readonly namespace: string;
      readonly currentLevel: string;
      readonly previousLevel?: string;
      readonly changeDirection?: 'increase' | 'decrease';
    };

/**
 * A verified CAEP event, as the receiver hands it to `onSignal`. Versioned like every wire-derived value; it never
 * holds the SET itself.
 */
export interface SignalV1 {
  /** The configured transmitter's id. */
  readonly transmitter: string;
  /** The SET's `iss` (equal to the transmitter's configured issuer). */
  readonly issuer: string;
  /** The SET's `jti`; (issuer, jti) is unique, so applying a signal can be made idempotent on it. */
  readonly jti: string;
  /** The SET's `txn`, when sent: the same for SETs caused by one underlying event (SSF 1.0 §"The txn claim"). */
  readonly txn?: string;
  /** The CAEP event type URI. */
  readonly eventType: string;
  /** When the SET was issued (`iat`), epoch ms. */
  readonly issuedAtMs: number;
  /** When the event happened (`event_timestamp`), epoch ms; `issuedAtMs` when not sent. */
  readonly occurredAtMs: number;
  readonly subject: SignalSubject;
  readonly initiatingEntity?: InitiatingEntity;
  /** The administrative reason (`reason_admin`, English or the first language), clipped to 256 characters. */
  readonly reasonAdmin?: string;
  readonly details: SignalDetails;
}
/** Same as {@link SignalV1}. */
export type Signal = SignalV1;
