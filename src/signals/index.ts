/**
 * Shared Signals (OpenID SSF 1.0 / CAEP 1.0): the SET receiver, the transmitter, their routes, configuration and
 * ports. See docs/SIGNALS.md.
 */
export { SignalsConfigSchema, SsfTransmitterSchema, SET_ALGORITHMS, DEFAULT_SET_ALGORITHMS } from './signals-config.ts';
export type { SignalsConfig, SsfReceiverConfig, SsfTransmitterConfig, SsfTransmitterSideConfig } from './signals-config.ts';
export { EVENT_TYPES, CAEP_EVENTS, PUSH_DELIVERY_METHOD } from './events.ts';
export type { Signal, SignalV1, SignalPrincipal, SignalSubject, SignalDetails, SubjectIdentifier, InitiatingEntity, CaepEventName } from './events.ts';
export { SetRefusedError, SetDeliveryError } from './set-errors.ts';
export type { SetErrorCode, SetRefusalReason } from './set-errors.ts';
export { createSetReceiver } from './receiver.ts';
export type { SetReceiver, SetReceiverDeps, SetReplayCache, OnSignal, AuditSink, SetPush, SetReceipt, TransmitterStatus } from './receiver.ts';
export { checkSubjectIdentifier, mapSubject } from './subject.ts';
export type { SubjectPrincipalLookup, SubjectMappingOptions } from './subject.ts';
export { createPushSet, pushEndpointProblem } from './push-set.ts';
export type { PushSet, PushResponse } from './push-set.ts';
export { createMemoryStreamStore } from './stream-store.ts';
export type { SsfStream, SsfStreamV1, SsfStreamStore, SsfStreamStatus } from './stream-store.ts';
export { createTransmitter, SIGNALS_MANAGE_SCOPE, EVENTS_SUPPORTED, SSF_PATHS } from './transmitter.ts';
export type { Transmitter, TransmitterDeps, MandateEvent, MandateEventV1, SetSigner, StreamCaller, DeliveryOutcome, TransmitterStats } from './transmitter.ts';
export { registerSsfRoutes, SSF_PUSH_PATH, SECEVENT_JWT } from './ssf-routes.ts';
export type { SsfRoutesDeps, AuthenticateApiCaller } from './ssf-routes.ts';
