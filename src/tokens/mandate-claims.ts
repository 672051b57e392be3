/**
 * The claims of a mandate (an RFC 9068 `at+jwt` access token from RFC 8693 token exchange), built and read
 * without I/O: the actor chain (`act`, nested, the current actor outermost), the lifetime (never past the
 * subject's or actor's own expiry, never over the cap), scope narrowing on re-exchange.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8693#section-4.1 (act)
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.2 (claims)
 */

/** Verifiers accept this much clock difference on mandates Mandate itself issued (seconds). */
export const MANDATE_CLOCK_TOLERANCE_SECONDS = 5;

/** The `act` claim: the current actor, with earlier actors nested inside (RFC 8693 §4.1). */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/** A user's identifier in the RFC 9493 `iss_sub` format: which IdP, which subject. */
export interface IssSubId {
  format: 'iss_sub';
  iss: string;
  sub: string;
}

/** The claims Mandate puts in a mandate. */
export interface MandateClaims {
  iss: string;
  /** The user (or, for `client_credentials`, the client itself). */
  sub: string;
  /** Exactly one audience: the resource the mandate is for. */
  aud: string;
  scope: string;
  client_id: string;
  jti: string;
  iat: number;
  exp: number;
  /** The actor chain; absent for `client_credentials`. */
  act?: ActClaim;
  /** The user as the IdP names it (RFC 9493), so that `sub` from two IdPs cannot be confused. */
  sub_id?: IssSubId;
  /** Sender constraint: the RFC 7638 thumbprint of the DPoP key (RFC 9449 §6.1). */
  cnf?: { jkt: string };
  /** `user`: a user is behind this token; `none`: machine-only work (`client_credentials`). */
  on_behalf_of: 'user' | 'none';
  /** The acting agent's mode: `chat` (a read-only assistant answering a person) or `autonomous`. */
  agent_mode?: 'chat' | 'autonomous';
  /** RFC 9396 §9.1: the task this mandate belongs to (`{ type: mandate_task, workflow, task_id }`). */
  authorization_details?: Array<Record<string, unknown>>;
  /** The task this mandate is bound to, once tasks exist. */
  task?: string;
}

/**
 * The actor chain as a list, current actor first. Throws `TypeError` on a malformed claim (the caller turns it
 * into `invalid_grant`).
 * @example actorList({ sub: 'b', act: { sub: 'a' } }) // ['b', 'a']
 */
export function actorList(act: unknown, maxDepth = 16): string[] {
  const out: string[] = [];
  let cur: unknown = act;
  while (cur !== undefined) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) throw new TypeError('act must be an object');
    const { sub, act: inner } = cur as { sub?: unknown; act?: unknown };
    if (typeof sub !== 'string' || sub === '') throw new TypeError('every act level needs a sub');
    out.push(sub);
    if (out.length > maxDepth) throw new TypeError(`the actor chain is deeper than ${maxDepth}`);
    cur = inner;
  }
  return out;
}

/**
 * Builds the nested `act` claim from a list, current actor first.
 * @example actClaim(['b', 'a']) // { sub: 'b', act: { sub: 'a' } }
 */
export function actClaim(actors: readonly string[]): ActClaim | undefined {
  let claim: ActClaim | undefined;
  for (let i = actors.length - 1; i >= 0; i--) claim = claim === undefined ? { sub: actors[i] as string } : { sub: actors[i] as string, act: claim };
  return claim;
}

/** Splits a scope string (RFC 6749 §3.3: space-delimited, case-sensitive) into its distinct scopes, in order. */
export function parseScope(scope: string | undefined): string[] {
  if (scope === undefined) return [];
  const out: string[] = [];
  for (const s of scope.split(' ')) {
    if (s === '') continue;
    // scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    if (!/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s)) throw new TypeError(`"${s.slice(0, 40)}" is not a valid scope token`);
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

/** Expiry of a new mandate (epoch seconds): now + lifetime, capped, and never after any of `notAfter`. */
export function mandateExpiry(nowSeconds: number, lifetimeSeconds: number, capSeconds: number, notAfter: ReadonlyArray<number | undefined>): number {
  let exp = nowSeconds + Math.min(lifetimeSeconds, capSeconds);
  for (const t of notAfter) if (t !== undefined && t < exp) exp = t;
  return exp;
}
