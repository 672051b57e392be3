/**
 * What each MCP message means in Cedar terms, and what the caller may see of the answers.
 *
 * The gateway authorizes every JSON-RPC request that would reach an upstream, one message at a time (a batch
 * is authorized item by item by the transport). A request is forwarded only as this module rebuilt it from the
 * values it parsed and validated, so what was authorized is exactly what the upstream receives:
 *
 * | method | Cedar request | forwarded params |
 * | --- | --- | --- |
 * | `tools/call` | catalog entry's action (`call`, `send`, `trigger`…) on its resource (`Tool::"crm.search"`), context `{ task, arguments, args }` | `{ name, arguments, _meta?: { progressToken } }` |
 * | `resources/read` | the entry's action (`read`) on its resource, by exact URI | `{ uri }` |
 * | `prompts/get` | the entry's action (`read`) on its resource, by exact name | `{ name, arguments? }` |
 * | `tools/list`, `resources/list`, `prompts/list` | none to forward; each listed entry decided as a dry run | `{ cursor? }` |
 * | `initialize`, `ping`, `notifications/*` | none: protocol plumbing, forwarded | as sent |
 * | anything else (`tasks/*`, `completion/complete`, `logging/setLevel`, `resources/subscribe`, `resources/templates/list`…) | denied, unless the upstream's catalog allows the method | as sent, when allowed |
 *
 * `_meta` of a request is never forwarded, except `progressToken`; Mandate's own key `io.mandate/approval_id`
 * presents an approval for this exact call (it becomes `context.approval_id`). Any other `_meta` key (arguments
 * smuggled there included) is dropped: the upstream never sees it, so it needs no authorizing. Any other
 * member of `params` (e.g. `task`, which would make the call task-augmented and deliver its result through
 * `tasks/result`, past the result filter) is refused.
 *
 * @see https://modelcontextprotocol.io/specification/2025-11-25/server/tools
 * @see https://modelcontextprotocol.io/specification/2025-11-25/basic/utilities/tasks
 */
import type { EntityRef } from '../core/decision.ts';
import { isMandateError } from '../core/errors.ts';
import { SENSITIVITY_LEVELS } from '../policy/entities.ts';
import type { AuthorizationRequest } from '../policy/types.ts';
import { CanonicalJsonError, canonicalize, checkPinned, toolDefinitionHash } from './tool-pins.ts';
import type { AuthorizeMessage, AuthorizeResult, GatewayCaller, JsonRpcErrorObject, JsonRpcRequest } from './types.ts';

/**
 * JSON-RPC error code of a call denied by Mandate (server-defined range, JSON-RPC 2.0 §5.1). Not -32001 (the MCP
 * SDK's RequestTimeout, and the gateway's session-not-found) nor -32002 (MCP's resource-not-found).
 */
export const MCP_DENIED = -32004;
/** JSON-RPC error code of a call waiting for a person's approval (the gateway's `approvalRequired`). */
export const MCP_APPROVAL_PENDING = -32003;
/** JSON-RPC 2.0 "Invalid params". */
export const JSONRPC_INVALID_PARAMS = -32602;

/** The `_meta` key by which a caller presents an approval for the exact call it repeats. */
export const APPROVAL_META_KEY = 'io.mandate/approval_id';

/**
 * Stable reason codes of the authorizer's own denials (besides the step gate's and policy's, passed through).
 * Public API: add, never rename.
 */
export type McpReasonCode =
  | 'upstream_unknown'
  | 'method_not_allowed'
  | 'invalid_params'
  | 'params_refused'
  | 'tool_name_invalid'
  | 'tool_unknown'
  | 'resource_unknown'
  | 'prompt_unknown'
  | 'tool_not_approved'
  | 'tool_unverified'
  | 'tool_changed'
  | 'args_invalid'
  | 'policy_denied'
  | 'approval_unavailable'
  | 'decision_error'
  | 'result_invalid'
  | 'result_too_large'
  | 'result_sensitivity';

/** What one configured tool, resource or prompt of an upstream means in Cedar terms. */
export interface CatalogEntry {
  /** Cedar action id: `call` for a tool; `send`, `trigger`… for a tool with side effects; `read` for data. */
  readonly action: string;
  /** The Cedar resource, e.g. `Tool::"crm.search"` (whose parent is `ToolServer::"crm"`). */
  readonly resource: EntityRef;
  /** For tools: the approved {@link toolDefinitionHash} of the upstream's definition. */
  readonly pinnedHash?: string;
}

/** The configured catalog of one upstream. Keys are the upstream's own names, matched exactly. */
export interface UpstreamCatalog {
  /** Tools by the upstream's tool name (`search`, not `crm.search`). */
  readonly tools: ReadonlyMap<string, CatalogEntry>;
  /** Resources by exact URI. */
  readonly resources?: ReadonlyMap<string, CatalogEntry>;
  /** Prompts by exact name. */
  readonly prompts?: ReadonlyMap<string, CatalogEntry>;
  /**
   * Further methods forwarded as sent, with no decision (e.g. `completion/complete`). Allowing a method lets every
   * caller of the upstream use it; never allow `tasks/result` unless you accept results past the result filter.
   */
  readonly allowedMethods?: ReadonlySet<string>;
  /**
   * `enforce`: a tool is callable and listed only when its entry has a `pinnedHash` and the definition the
   * upstream last listed has that hash. `off` (default): hashes are not checked.
   */
  readonly pinning?: 'enforce' | 'off';
}

/** Options of one decision. */
export interface DecideOptions {
  /**
   * What-if: decide as if the call were made, but record no step, create no approval and consume none. Used to
   * filter listings. Arguments are unknown then, so the workflow's argument limits are not checked.
   */
  readonly dryRun?: boolean;
}

/** What the decision port answers. `reasonCode`/`message` are client-safe. */
export interface DecideResult {
  readonly outcome: 'allow' | 'deny' | 'pending';
  readonly reasonCode?: string;
  readonly message?: string;
  readonly approval?: { readonly id: string; readonly poll: string; readonly expiresAt: string };
}

/** The decision port: the step gate (for a task) and the policy engine, bound by the node. */
export type DecidePort = (request: AuthorizationRequest, options?: DecideOptions) => Promise<DecideResult>;

/** The type of one `ToolArgs` field, as the Cedar schema declares it. */
export type ToolArgType = 'String' | 'Long' | 'Bool';

/** The fields of the example schema's `ToolArgs` record (examples/policies/schema.cedarschema). */
export const DEFAULT_TOOL_ARGS: Readonly<Record<string, ToolArgType>> = Object.freeze({
  recipient: 'String',
  recipientDomain: 'String',
  amount: 'Long',
  currency: 'String',
  path: 'String',
  query: 'String',
  url: 'String',
  limit: 'Long',
});

/** How tool results are held to the task's sensitivity ceiling. */
export interface ResultPolicy {
  /** Largest tool result, serialized, in UTF-8 bytes; default 4 MiB. Past it the result is refused. */
  readonly maxBytes?: number;
  /** `remove` (default): drop the records above the ceiling; `refuse`: refuse the whole result if any is above. */
  readonly onSensitive?: 'remove' | 'refuse';
  /** The sensitivity level of a record, `undefined` when it is not a record; default {@link defaultSensitivityOf}. */
  readonly sensitivityOf?: (value: Readonly<Record<string, unknown>>) => number | undefined;
}

/** What the authorizer needs. */
export interface McpAuthorizerDeps {
  /** Decides one request; a throw denies (`decision_error`). */
  decide: DecidePort;
  /** The configured catalog of an upstream; undefined denies everything for it. */
  catalog(upstreamId: string): UpstreamCatalog | undefined;
  /**
   * The principal and actors of a caller. Default: `User::<userSub>` acted for by the caller's actors as `Agent`s
   * (innermost first, as {@link AuthorizationRequest} wants them); without a user, `Service::<clientId>` alone.
   */
  principalOf?(caller: GatewayCaller): { principal: EntityRef; actors: EntityRef[] };
  /** The `ToolArgs` fields policies may read (`context.args`); default {@link DEFAULT_TOOL_ARGS}. */
  toolArgs?: Readonly<Record<string, ToolArgType>>;
  /** Largest canonical `arguments` of a call, UTF-8 bytes; default 256 KiB. */
  maxArgumentsBytes?: number;
  /** Deepest nesting in `arguments`; default 32. */
  maxArgumentsDepth?: number;
  /**
   * The highest sensitivity level (0..3) the caller may read in results: the task's workflow
   * `data.maxSensitivityLevel`, or a per-upstream setting without a task. `undefined` means 0 (public only).
   */
  sensitivityCeiling?(caller: GatewayCaller, upstreamId: string): Promise<number | undefined>;
  /** How tool results are filtered. */
  results?: ResultPolicy;
}

type Deny = Extract<AuthorizeResult, { kind: 'deny' }>;

const deny = (reasonCode: McpReasonCode | string, message: string, code = MCP_DENIED): Deny => ({ kind: 'deny', code, reasonCode, message });

/** MCP's recommended tool-name alphabet (2025-11-25): ASCII letters, digits, `_`, `-`, `.`; 1..128 characters. */
const SAFE_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
/** A resource URI: printable ASCII without spaces (an IRI must be sent percent-encoded), at most 2048 characters. */
const SAFE_URI = /^[\x21-\x7e]{1,2048}$/;
/** An approval id as the step gate makes them. */
const SAFE_APPROVAL_ID = /^[A-Za-z0-9_.-]{1,200}$/;

/**
 * Checks a name the caller sent before it is looked up: it must be made only of safe characters and be its own
 * NFKC form, so a full-width, Cyrillic or otherwise look-alike name never matches (and never reaches the
 * lookup), and nothing is trimmed or case-folded.
 */
export function isSafeName(name: unknown, kind: 'name' | 'uri' = 'name'): name is string {
  return typeof name === 'string' && name.normalize('NFKC') === name && (kind === 'uri' ? SAFE_URI : SAFE_NAME).test(name);
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function defaultPrincipalOf(caller: GatewayCaller): { principal: EntityRef; actors: EntityRef[] } {
  if (caller.userSub === undefined) return { principal: { type: 'Service', id: caller.clientId }, actors: [] };
  // The caller lists the `act` chain outermost first (the current actor first); the decision point wants it
  // from the first delegate to the one making the call.
  return { principal: { type: 'User', id: caller.userSub }, actors: [...caller.actors].reverse().map((id) => ({ type: 'Agent', id })) };
}

/**
 * The sensitivity level of a record: its `sensitivity`, `_mandate.sensitivity` or `_meta["io.mandate/sensitivity"]`
 * label (`public`, `internal`, `confidential`, `restricted` → 0..3). An object with none of them is not a record
 * (undefined). An unknown label, or a label that is not a string, is above every ceiling (Infinity).
 */
export function defaultSensitivityOf(value: Readonly<Record<string, unknown>>): number | undefined {
  const mandate = value._mandate;
  const meta = value._meta;
  const label = hasOwn(value, 'sensitivity')
    ? value.sensitivity
    : isObject(mandate) && hasOwn(mandate, 'sensitivity')
      ? mandate.sensitivity
      : isObject(meta) && hasOwn(meta, 'io.mandate/sensitivity')
        ? meta['io.mandate/sensitivity']
        : undefined;
  if (label === undefined) return undefined;
  if (typeof label !== 'string' || !hasOwn(SENSITIVITY_LEVELS, label)) return Infinity;
  return SENSITIVITY_LEVELS[label];
}

/**
 * The `context.args` record policies read: the `ToolArgs` fields present in the arguments, each of its declared
 * type. A field present with another type is refused (not dropped: a `forbid` on it must not silently miss).
 * `recipientDomain` is derived from an e-mail `recipient` (what the message will really go to); a stated
 * `recipientDomain` that disagrees is refused.
 */
export function toolArgsOf(args: Readonly<Record<string, unknown>>, fields: Readonly<Record<string, ToolArgType>> = DEFAULT_TOOL_ARGS): { ok: true; args: Record<string, unknown> } | { ok: false; message: string } {
  const out: Record<string, unknown> = {};
  for (const [field, type] of Object.entries(fields)) {
    if (!hasOwn(args, field)) continue;
    const v = args[field];
    const ok = type === 'String' ? typeof v === 'string' : type === 'Long' ? Number.isSafeInteger(v) : typeof v === 'boolean';
    if (!ok) return { ok: false, message: `the argument ${JSON.stringify(field)} must be ${type === 'Long' ? 'an integer' : type === 'Bool' ? 'a boolean' : 'a string'} (policies read it)` };
    out[field] = v;
  }
  if (fields.recipient === 'String' && fields.recipientDomain === 'String' && typeof out.recipient === 'string' && out.recipient.includes('@')) {
    const domain = out.recipient.slice(out.recipient.lastIndexOf('@') + 1).toLowerCase();
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/.test(domain)) {
      return { ok: false, message: 'the argument "recipient" is not a plain e-mail address, so its domain cannot be checked' };
    }
    if (typeof out.recipientDomain === 'string' && out.recipientDomain.toLowerCase() !== domain) {
      return { ok: false, message: 'the argument "recipientDomain" does not match the domain of "recipient"' };
    }
    out.recipientDomain = domain;
  }
  return { ok: true, args: out };
}

/** Renders a denial or a pending approval as the JSON-RPC error the caller receives. */
export function toJsonRpcError(result: Exclude<AuthorizeResult, { kind: 'forward' }>): JsonRpcErrorObject {
  if (result.kind === 'deny') return { code: result.code, message: result.message, data: { reason_code: result.reasonCode } };
  return {
    code: MCP_APPROVAL_PENDING,
    message: `this call needs the approval of a person; poll the approval, then repeat the call unchanged with the approval id in params._meta["${APPROVAL_META_KEY}"]`,
    data: { reason_code: 'approval_required', approval: { id: result.approval.id, poll: result.approval.poll, expires_at: result.approval.expiresAt, meta_key: APPROVAL_META_KEY } },
  };
}

/** Methods that never carry anything to authorize: the session's plumbing. */
const PLUMBING = new Set(['initialize', 'ping']);

/** The list methods, the member of their result that lists, and the catalog they are checked against. */
const LISTS = {
  'tools/list': { member: 'tools', key: 'name', catalog: 'tools' },
  'resources/list': { member: 'resources', key: 'uri', catalog: 'resources' },
  'prompts/list': { member: 'prompts', key: 'name', catalog: 'prompts' },
} as const;

/** A list method the result filter understands. */
export type ListMethod = keyof typeof LISTS;

/** A filtered tool result, or why the whole result is refused. */
export type ToolResultOutcome =
  | { kind: 'forward'; result: Record<string, unknown>; removed: number }
  | { kind: 'deny'; code: number; reasonCode: string; message: string };

/**
 * Holds one tool result to a sensitivity ceiling and a size bound. Pure.
 *
 * A **record** is an object that carries a sensitivity label (see {@link defaultSensitivityOf}), found in one of
 * three places: (1) `structuredContent` itself; (2) an element of an array that is a direct member of
 * `structuredContent` (`{ "records": [ {…, "sensitivity": "internal"}, … ] }`); (3) a block of `content`.
 * A record above the ceiling is removed (mode `remove`) or refuses the result (mode `refuse`); when
 * `structuredContent` itself is above it, the result is refused in either mode. When records were removed from
 * `structuredContent`, its unlabelled `content` blocks are replaced by one text block with the filtered
 * `structuredContent` (tools are asked to repeat it as text, so the text would still hold what was removed).
 * Only `content`, `structuredContent`, `isError` and `_meta` are kept.
 */
export function filterToolResultValue(result: unknown, options: ResultPolicy & { ceiling: number }): ToolResultOutcome {
  const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  const sensitivityOf = options.sensitivityOf ?? defaultSensitivityOf;
  const refuse = (reasonCode: McpReasonCode, message: string): ToolResultOutcome => ({ kind: 'deny', code: MCP_DENIED, reasonCode, message });
  if (!isObject(result)) return refuse('result_invalid', 'the tool\'s result is not an object');
  let size: number;
  try {
    size = Buffer.byteLength(JSON.stringify(result) ?? '', 'utf8');
  } catch {
    return refuse('result_invalid', 'the tool\'s result is not JSON');
  }
  if (size > maxBytes) return refuse('result_too_large', `the tool's result is larger than ${maxBytes} bytes`);
  const content = result.content ?? [];
  if (!Array.isArray(content)) return refuse('result_invalid', 'the tool\'s result has no content array');
  const sc = result.structuredContent;
  if (sc !== undefined && !isObject(sc)) return refuse('result_invalid', 'the tool\'s structuredContent is not an object');
  const above = (v: unknown): boolean => {
    if (!isObject(v)) return false;
    const level = sensitivityOf(v);
    return level !== undefined && !(level <= options.ceiling);
  };
  const tooSensitive = (): ToolResultOutcome => refuse('result_sensitivity', 'the tool\'s result holds data above the sensitivity this task may read');
  let removed = 0;
  let filteredSc: Record<string, unknown> | undefined;
  if (sc !== undefined) {
    if (above(sc)) return tooSensitive();
    filteredSc = {};
    for (const [k, v] of Object.entries(sc)) {
      if (Array.isArray(v)) {
        const kept = v.filter((item) => !above(item));
        removed += v.length - kept.length;
        Object.defineProperty(filteredSc, k, { value: kept, enumerable: true, writable: true, configurable: true });
      } else {
        Object.defineProperty(filteredSc, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
    }
  }
  const scRemoved = removed;
  const blocks: unknown[] = [];
  for (const block of content) {
    if (above(block) || (isObject(block) && above(block.resource))) {
      removed++;
      continue;
    }
    blocks.push(block);
  }
  if (removed > 0 && options.onSensitive === 'refuse') return tooSensitive();
  let outContent = blocks;
  if (scRemoved > 0) {
    const labelled = (b: unknown) => isObject(b) && (sensitivityOf(b) !== undefined || (isObject(b.resource) && sensitivityOf(b.resource) !== undefined));
    outContent = [...blocks.filter(labelled), { type: 'text', text: JSON.stringify(filteredSc) }];
  }
  const out: Record<string, unknown> = { content: outContent };
  if (filteredSc !== undefined) out.structuredContent = filteredSc;
  if (typeof result.isError === 'boolean') out.isError = result.isError;
  if (isObject(result._meta)) out._meta = result._meta;
  return { kind: 'forward', result: out, removed };
}

/** The message authorizer, with the listing and result filters that go with it. */
export interface McpAuthorizer extends AuthorizeMessage {
  /**
   * Keeps only the entries of a `tools/list`, `resources/list` or `prompts/list` result the caller may use in
   * this task: configured (exact name or URI), listed once, approved (pinning) and allowed by a dry-run decision
   * (an entry that would need approval is kept). A tools listing also records each tool's definition hash for
   * pinning. Anything malformed is left out; the result keeps only the list and `nextCursor`.
   */
  filterListResult(caller: GatewayCaller, upstreamId: string, method: ListMethod, result: unknown): Promise<Record<string, unknown>>;
  /** Holds a `tools/call` result to the caller's sensitivity ceiling and the size bound ({@link filterToolResultValue}). */
  filterToolResult(caller: GatewayCaller, upstreamId: string, toolName: string, result: unknown, options?: ResultPolicy): Promise<ToolResultOutcome>;
  /** Records the tool definitions an upstream lists (the transport may list tools when it connects). */
  observeTools(upstreamId: string, listedTools: readonly unknown[]): void;
}

/**
 * Builds the MCP message authorizer: an {@link AuthorizeMessage} that maps each request to a Cedar request,
 * asks the decision port and answers forward (the canonical message), deny or pending.
 * @example
 * const authorize = createMcpAuthorizer({ decide, catalog: (id) => catalogs.get(id) });
 * const r = await authorize(caller, 'crm', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'search', arguments: { query: 'acme' } } });
 */
export function createMcpAuthorizer(deps: McpAuthorizerDeps): McpAuthorizer {
  const principalOf = deps.principalOf ?? defaultPrincipalOf;
  const toolArgFields = deps.toolArgs ?? DEFAULT_TOOL_ARGS;
  /** The definition hash each upstream last listed, by tool name; `null` when the listing was ambiguous. */
  const observed = new Map<string, Map<string, string | null>>();

  const observeTools = (upstreamId: string, listedTools: readonly unknown[]): void => {
    const check = checkPinned(new Map(), listedTools);
    const seen = observed.get(upstreamId) ?? new Map<string, string | null>();
    for (const t of check.new) seen.set(t.name, t.hash);
    for (const name of check.duplicated) seen.set(name, null);
    observed.set(upstreamId, seen);
  };

  const pinRefusal = (upstreamId: string, catalog: UpstreamCatalog, name: string, entry: CatalogEntry): Deny | undefined => {
    if (catalog.pinning !== 'enforce') return undefined;
    if (entry.pinnedHash === undefined) return deny('tool_not_approved', `the tool ${JSON.stringify(name)} has not been approved by an administrator`);
    const seen = observed.get(upstreamId)?.get(name);
    if (seen === undefined) return deny('tool_unverified', `the upstream's definition of ${JSON.stringify(name)} has not been checked yet; list the tools first`);
    if (seen !== entry.pinnedHash) return deny('tool_changed', `the upstream's definition of ${JSON.stringify(name)} changed since it was approved`);
    return undefined;
  };

  const buildRequest = (caller: GatewayCaller, entry: CatalogEntry, context: Record<string, unknown>): AuthorizationRequest => {
    const { principal, actors } = principalOf(caller);
    return {
      principal,
      action: entry.action,
      resource: entry.resource,
      context: { ...(caller.taskId === undefined ? {} : { task: { type: 'Task', id: caller.taskId } }), ...context },
      ...(actors.length === 0 ? {} : { delegation: { actors } }),
    };
  };

  const decideAndAnswer = async (request: AuthorizationRequest, forward: JsonRpcRequest): Promise<AuthorizeResult> => {
    let r: DecideResult;
    try {
      r = await deps.decide(request);
    } catch (err) {
      return deny('decision_error', isMandateError(err) ? err.description : 'the call could not be decided, so it was not forwarded');
    }
    if (r.outcome === 'allow') return { kind: 'forward', message: forward };
    if (r.outcome === 'pending') {
      if (r.approval === undefined) return deny('approval_unavailable', 'the call needs a person\'s approval, and none could be requested');
      return { kind: 'pending', approval: { id: r.approval.id, poll: r.approval.poll, expiresAt: r.approval.expiresAt } };
    }
    return deny(r.reasonCode ?? 'policy_denied', r.message ?? 'the call is not allowed');
  };

  /** Splits `_meta`: what is forwarded (`progressToken`) and the approval id presented; the rest is dropped. */
  const readMeta = (meta: unknown): { forward?: Record<string, unknown>; approvalId?: string } | Deny => {
    if (meta === undefined) return {};
    if (!isObject(meta)) return deny('invalid_params', 'params._meta must be an object', JSONRPC_INVALID_PARAMS);
    const out: { forward?: Record<string, unknown>; approvalId?: string } = {};
    if (hasOwn(meta, 'progressToken')) {
      const t = meta.progressToken;
      if (!(typeof t === 'string' && t.length <= 256) && !Number.isSafeInteger(t)) return deny('invalid_params', 'params._meta.progressToken must be a string or an integer', JSONRPC_INVALID_PARAMS);
      out.forward = { progressToken: t };
    }
    if (hasOwn(meta, APPROVAL_META_KEY)) {
      const id = meta[APPROVAL_META_KEY];
      if (typeof id !== 'string' || !SAFE_APPROVAL_ID.test(id)) return deny('invalid_params', `params._meta["${APPROVAL_META_KEY}"] must be an approval id`, JSONRPC_INVALID_PARAMS);
      out.approvalId = id;
    }
    return out;
  };

  const refuseExtraParams = (params: Record<string, unknown>, allowed: readonly string[]): Deny | undefined => {
    const extra = Object.keys(params).filter((k) => !allowed.includes(k));
    if (extra.length === 0) return undefined;
    const why = extra.includes('task') ? ' (task-augmented requests are not supported through the gateway)' : '';
    return deny('params_refused', `params may not carry ${extra.map((k) => JSON.stringify(k)).join(', ')} through the gateway${why}`);
  };

  const callTool = async (caller: GatewayCaller, upstreamId: string, catalog: UpstreamCatalog, message: JsonRpcRequest, params: Record<string, unknown>): Promise<AuthorizeResult> => {
    const extra = refuseExtraParams(params, ['name', 'arguments', '_meta']);
    if (extra) return extra;
    const name = params.name;
    if (typeof name !== 'string') return deny('invalid_params', 'params.name must be a string', JSONRPC_INVALID_PARAMS);
    if (!isSafeName(name)) return deny('tool_name_invalid', 'the tool name has characters outside A-Z a-z 0-9 _ - . (or is longer than 128)');
    const entry = catalog.tools.get(name);
    if (entry === undefined) return deny('tool_unknown', `no tool ${JSON.stringify(name)} is configured for this upstream`);
    const pin = pinRefusal(upstreamId, catalog, name, entry);
    if (pin) return pin;
    const meta = readMeta(params._meta);
    if ('kind' in meta) return meta;
    const raw = params.arguments === undefined ? {} : params.arguments;
    if (!isObject(raw)) return deny('invalid_params', 'params.arguments must be an object', JSONRPC_INVALID_PARAMS);
    let args: Record<string, unknown>;
    try {
      args = canonicalize<Record<string, unknown>>(raw, { maxBytes: deps.maxArgumentsBytes ?? 256 * 1024, maxDepth: deps.maxArgumentsDepth ?? 32 });
    } catch (err) {
      if (err instanceof CanonicalJsonError) return deny('invalid_params', `params.arguments: ${err.message}`, JSONRPC_INVALID_PARAMS);
      throw err;
    }
    const toolArgs = toolArgsOf(args, toolArgFields);
    if (!toolArgs.ok) return deny('args_invalid', toolArgs.message);
    const context: Record<string, unknown> = { args: toolArgs.args };
    // `arguments` and `approval_id` mean something only to the step gate; outside a task the schema refuses them.
    if (caller.taskId !== undefined) {
      context.arguments = canonicalize(args);
      if (meta.approvalId !== undefined) context.approval_id = meta.approvalId;
    }
    const forward: JsonRpcRequest = { jsonrpc: '2.0', id: message.id, method: 'tools/call', params: { name, arguments: args, ...(meta.forward ? { _meta: meta.forward } : {}) } };
    return decideAndAnswer(buildRequest(caller, entry, context), forward);
  };

  const readEntry = async (caller: GatewayCaller, catalog: UpstreamCatalog, message: JsonRpcRequest, params: Record<string, unknown>): Promise<AuthorizeResult> => {
    const isResource = message.method === 'resources/read';
    const extra = refuseExtraParams(params, isResource ? ['uri', '_meta'] : ['name', 'arguments', '_meta']);
    if (extra) return extra;
    const meta = readMeta(params._meta);
    if ('kind' in meta) return meta;
    const key = isResource ? params.uri : params.name;
    if (typeof key !== 'string') return deny('invalid_params', `params.${isResource ? 'uri' : 'name'} must be a string`, JSONRPC_INVALID_PARAMS);
    if (!isSafeName(key, isResource ? 'uri' : 'name')) return deny(isResource ? 'resource_unknown' : 'prompt_unknown', isResource ? 'the resource URI has characters outside printable ASCII' : 'the prompt name has characters outside A-Z a-z 0-9 _ - .');
    const entry = (isResource ? catalog.resources : catalog.prompts)?.get(key);
    if (entry === undefined) return deny(isResource ? 'resource_unknown' : 'prompt_unknown', `no ${isResource ? 'resource' : 'prompt'} ${JSON.stringify(key)} is configured for this upstream`);
    const context: Record<string, unknown> = {};
    let outParams: Record<string, unknown> = { uri: key };
    if (!isResource) {
      const raw = params.arguments === undefined ? {} : params.arguments;
      // Prompt arguments are strings by the spec.
      if (!isObject(raw) || !Object.values(raw).every((v) => typeof v === 'string')) return deny('invalid_params', 'params.arguments must be an object of strings', JSONRPC_INVALID_PARAMS);
      let args: Record<string, string>;
      try {
        args = canonicalize(raw, { maxBytes: deps.maxArgumentsBytes ?? 256 * 1024, maxDepth: 2 });
      } catch (err) {
        if (err instanceof CanonicalJsonError) return deny('invalid_params', `params.arguments: ${err.message}`, JSONRPC_INVALID_PARAMS);
        throw err;
      }
      if (caller.taskId !== undefined) context.arguments = canonicalize(args);
      outParams = { name: key, arguments: args };
    }
    if (caller.taskId !== undefined && meta.approvalId !== undefined) context.approval_id = meta.approvalId;
    if (meta.forward) outParams._meta = meta.forward;
    return decideAndAnswer(buildRequest(caller, entry, context), { jsonrpc: '2.0', id: message.id, method: message.method, params: outParams });
  };

  const list = (message: JsonRpcRequest, params: Record<string, unknown>): AuthorizeResult => {
    const extra = refuseExtraParams(params, ['cursor', '_meta']);
    if (extra) return extra;
    const meta = readMeta(params._meta);
    if ('kind' in meta) return meta;
    if (params.cursor !== undefined && (typeof params.cursor !== 'string' || params.cursor.length > 4096)) return deny('invalid_params', 'params.cursor must be a string', JSONRPC_INVALID_PARAMS);
    const out: Record<string, unknown> = {};
    if (params.cursor !== undefined) out.cursor = params.cursor;
    if (meta.forward) out._meta = meta.forward;
    return { kind: 'forward', message: { jsonrpc: '2.0', id: message.id, method: message.method, ...(Object.keys(out).length === 0 ? {} : { params: out }) } };
  };

  const authorize = async (caller: GatewayCaller, upstreamId: string, message: JsonRpcRequest): Promise<AuthorizeResult> => {
    const method = message.method;
    if (typeof method !== 'string') return deny('invalid_params', 'the request has no method', JSONRPC_INVALID_PARAMS);
    // Notifications (no id) and the plumbing carry nothing to authorize. A "notification" with an id is a request.
    if (PLUMBING.has(method) || (method.startsWith('notifications/') && (message as { id?: unknown }).id === undefined)) return { kind: 'forward', message };
    const catalog = deps.catalog(upstreamId);
    if (catalog === undefined) return deny('upstream_unknown', 'this upstream is not configured');
    const params = message.params ?? {};
    if (!isObject(params)) return deny('invalid_params', 'params must be an object', JSONRPC_INVALID_PARAMS);
    switch (method) {
      case 'tools/call':
        return callTool(caller, upstreamId, catalog, message, params);
      case 'resources/read':
      case 'prompts/get':
        return readEntry(caller, catalog, message, params);
      case 'tools/list':
      case 'resources/list':
      case 'prompts/list':
        return list(message, params);
      default:
        if (catalog.allowedMethods?.has(method) === true) return { kind: 'forward', message };
        return deny('method_not_allowed', `the method ${JSON.stringify(method.slice(0, 100))} is not allowed through the gateway for this upstream`);
    }
  };

  const filterListResult = async (caller: GatewayCaller, upstreamId: string, method: ListMethod, result: unknown): Promise<Record<string, unknown>> => {
    const spec = LISTS[method];
    const empty = { [spec.member]: [] };
    const catalog = deps.catalog(upstreamId);
    if (catalog === undefined || !isObject(result) || !Array.isArray(result[spec.member])) return empty;
    const listed = result[spec.member] as unknown[];
    if (method === 'tools/list') observeTools(upstreamId, listed);
    const entries = catalog[spec.catalog];
    const counts = new Map<string, number>();
    for (const item of listed) if (isObject(item) && typeof item[spec.key] === 'string') counts.set(item[spec.key] as string, (counts.get(item[spec.key] as string) ?? 0) + 1);
    const verdicts = await Promise.all(listed.map(async (item): Promise<boolean> => {
      if (!isObject(item)) return false;
      const key = item[spec.key];
      if (!isSafeName(key, spec.key === 'uri' ? 'uri' : 'name') || counts.get(key) !== 1) return false;
      const entry = entries?.get(key);
      if (entry === undefined) return false;
      if (method === 'tools/list') {
        if (catalog.pinning === 'enforce') {
          let hash: string;
          try {
            hash = toolDefinitionHash(item as unknown as { name: string });
          } catch {
            return false;
          }
          if (entry.pinnedHash === undefined || hash !== entry.pinnedHash) return false;
        }
      }
      try {
        const r = await deps.decide(buildRequest(caller, entry, {}), { dryRun: true });
        return r.outcome === 'allow' || r.outcome === 'pending';
      } catch {
        return false;
      }
    }));
    const out: Record<string, unknown> = { [spec.member]: listed.filter((_, i) => verdicts[i]) };
    if (typeof result.nextCursor === 'string') out.nextCursor = result.nextCursor;
    return out;
  };

  const filterToolResult = async (caller: GatewayCaller, upstreamId: string, _toolName: string, result: unknown, options?: ResultPolicy): Promise<ToolResultOutcome> => {
    let ceiling: number | undefined;
    try {
      ceiling = await deps.sensitivityCeiling?.(caller, upstreamId);
    } catch {
      return { kind: 'deny', code: MCP_DENIED, reasonCode: 'decision_error', message: 'the sensitivity this task may read could not be determined, so the result was withheld' };
    }
    return filterToolResultValue(result, { ...deps.results, ...options, ceiling: ceiling ?? 0 });
  };

  return Object.assign(authorize, { filterListResult, filterToolResult, observeTools });
}
