/**
 * Maps a SET's subject (RFC 9493 subject identifiers and SSF 1.0 complex subjects) to what Mandate keys things by:
 * a user (issuer, subject), a registered agent or service (looked up by SPIFFE ID or id), a session, a token.
 *
 * A well-formed subject that names nothing Mandate knows maps to an empty {@link SignalSubject}: SSF receivers
 * must tolerate events about subjects they do not hold (SSF 1.0 §"Malicious Subject Removal"). A malformed one
 * (a known format missing a required member, members of the wrong type) is refused as `invalid_request`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9493#section-3 (Subject Identifier Formats)
 * @see https://openid.net/specs/openid-sharedsignals-framework-1_0.html §3 (Subject Members in SSF Events)
 */
import type { PrincipalLookup } from '../identity/types.ts';
import { SetRefusedError } from './set-errors.ts';
import type { SignalPrincipal, SignalSubject, SubjectIdentifier } from './events.ts';

/** The registry lookups the mapping needs (`PrincipalLookup` satisfies it). */
export type SubjectPrincipalLookup = Pick<PrincipalLookup, 'byId' | 'bySpiffeId'>;

/** How one transmitter's user subjects map to Mandate users (from its configuration entry). */
export interface SubjectMappingOptions {
  readonly userIssuer?: string;
  readonly emailIsSubject: boolean;
  readonly opaqueIsSubject: boolean;
}

const MAX_MEMBER = 2048;

/** Required string members per known format (RFC 9493 §3.2, SSF 1.0 §3.4). */
const REQUIRED: Readonly<Record<string, readonly string[]>> = {
  account: ['uri'],
  email: ['email'],
  iss_sub: ['iss', 'sub'],
  opaque: ['id'],
  phone_number: ['phone_number'],
  did: ['url'],
  uri: ['uri'],
  jwt_id: ['iss', 'jti'],
  saml_assertion_id: ['issuer', 'assertion_id'],
};

/** Member names of an SSF complex subject (SSF 1.0 §3.2). */
type ComplexMember = 'user' | 'device' | 'session' | 'application' | 'tenant' | 'org_unit' | 'group';

function malformed(description: string): SetRefusedError {
  return new SetRefusedError('invalid_request', 'subject', description);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks one subject identifier's shape; returns it typed. Unknown (proprietary) formats pass unchecked. */
export function checkSubjectIdentifier(value: unknown, where: string, depth = 0): SubjectIdentifier {
  if (!isObject(value)) throw malformed(`${where} must be a subject identifier (a JSON object with a format)`);
  const format = value.format;
  if (typeof format !== 'string' || format === '' || format.length > 64) throw malformed(`${where}.format must be a non-empty string`);
  if (format === 'complex') {
    if (depth > 0) throw malformed(`${where}: a complex subject cannot nest another complex subject`);
    let members = 0;
    for (const name of Object.keys(value)) {
      if (name === 'format') continue;
      checkSubjectIdentifier(value[name], `${where}.${name.slice(0, 32)}`, depth + 1);
      members += 1;
    }
    if (members === 0) throw malformed(`${where}: a complex subject needs at least one member`);
  } else if (format === 'aliases') {
    const ids = value.identifiers;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > 16) throw malformed(`${where}.identifiers must be a list of 1..16 subject identifiers`);
    ids.forEach((id, i) => {
      const checked = checkSubjectIdentifier(id, `${where}.identifiers[${i}]`, depth + 1);
      if (checked.format === 'aliases') throw malformed(`${where}: aliases cannot nest aliases (RFC 9493 §3.2.8)`);
    });
  } else {
    for (const member of REQUIRED[format] ?? []) {
      const v = value[member];
      if (typeof v !== 'string' || v === '' || v.length > MAX_MEMBER) throw malformed(`${where}.${member} must be a non-empty string (format ${format})`);
    }
  }
  return value as SubjectIdentifier;
}

const str = (id: SubjectIdentifier, member: string): string => id[member] as string;

/** Maps an identifier naming a registered workload (a `uri` SPIFFE ID, or an `opaque` registry id when allowed). */
async function workload(id: SubjectIdentifier, lookup: SubjectPrincipalLookup, opaqueIsId: boolean): Promise<SignalPrincipal | undefined> {
  let found;
  if (id.format === 'uri' && str(id, 'uri').startsWith('spiffe://')) found = await lookup.bySpiffeId(str(id, 'uri'));
  else if (id.format === 'opaque' && opaqueIsId) found = await lookup.byId(str(id, 'id'));
  return found === undefined ? undefined : { kind: found.kind, id: found.id };
}

/** Maps an identifier naming a person (or, for SPIFFE URIs, a workload). */
async function principalOf(id: SubjectIdentifier, options: SubjectMappingOptions, lookup: SubjectPrincipalLookup): Promise<SignalPrincipal | undefined> {
  switch (id.format) {
    case 'iss_sub':
      return { kind: 'user', iss: str(id, 'iss'), sub: str(id, 'sub') };
    case 'email':
      return options.emailIsSubject && options.userIssuer !== undefined ? { kind: 'user', iss: options.userIssuer, sub: str(id, 'email') } : undefined;
    case 'opaque':
      return options.opaqueIsSubject && options.userIssuer !== undefined ? { kind: 'user', iss: options.userIssuer, sub: str(id, 'id') } : undefined;
    case 'uri':
      return workload(id, lookup, false);
    case 'aliases':
      for (const alias of id.identifiers as SubjectIdentifier[]) {
        const p = await principalOf(alias, options, lookup);
        if (p !== undefined) return p;
      }
      return undefined;
    default:
      return undefined;
  }
}

function sessionOf(id: SubjectIdentifier): string | undefined {
  if (id.format === 'opaque') return str(id, 'id');
  if (id.format === 'iss_sub') return `${str(id, 'iss')}#${str(id, 'sub')}`;
  return undefined;
}

/**
 * Maps a checked subject to a {@link SignalSubject}. Lookups reject (with `StoreUnavailableError`) when the
 * registry cannot answer; callers fail closed.
 *
 * @param subject the SET's `sub_id` (or a legacy event-level `subject`), already checked by {@link checkSubjectIdentifier}
 * @example
 * await mapSubject({ format: 'iss_sub', iss: 'https://idp', sub: 'alice' }, opts, registry) // { principal: { kind: 'user', iss: 'https://idp', sub: 'alice' } }
 */
export async function mapSubject(subject: SubjectIdentifier, options: SubjectMappingOptions, lookup: SubjectPrincipalLookup): Promise<SignalSubject> {
  if (subject.format === 'jwt_id') return { token: { iss: str(subject, 'iss'), jti: str(subject, 'jti') } };
  if (subject.format !== 'complex') {
    const principal = await principalOf(subject, options, lookup);
    return principal === undefined ? {} : { principal };
  }
  const member = (name: ComplexMember) => subject[name] as SubjectIdentifier | undefined;
  const user = member('user');
  const application = member('application');
  const session = member('session');
  // The user is the principal when named; an agent (application) otherwise. Both name one Subject Principal
  // (SSF 1.0 §3.2.1), so a session of the user is what the event is about.
  let principal = user === undefined ? undefined : await principalOf(user, options, lookup);
  if (principal === undefined && application !== undefined) principal = await workload(application, lookup, true);
  const sessionId = session === undefined ? undefined : sessionOf(session);
  return {
    ...(principal === undefined ? {} : { principal }),
    ...(sessionId === undefined ? {} : { session: sessionId }),
  };
}
