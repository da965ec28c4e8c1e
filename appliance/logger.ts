// Structured logs (pino). Values that could carry a secret are redacted wherever
// they appear, as a second line of defence: the code never logs env values or
// sealed fields in the first place.
import pino, { type Logger } from 'pino';

export const REDACTED_PATHS = [
  'env', '*.env', '*.*.env', 'definition.env', '*.definition.env',
  'privateKey', '*.privateKey', 'secretKey', '*.secretKey', 'document', '*.document',
];

export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino({ level: options.level ?? 'info', redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, options.destination);
}
