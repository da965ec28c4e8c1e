// Reading blueprint text safely: bounded size, strict UTF-8, YAML without tags,
// merge keys or alias bombs, JSON with the same guard, and no error that echoes the
// text (it may hold a secret).
import { parseDocument, visit, type Document, type DocumentOptions, type ParseOptions, type SchemaOptions, type ToJSOptions } from 'yaml';
import { ZoneError } from '../appliance/errors.ts';
import { LIMITS, assertJsonValue } from './json-value.ts';

export { validateBlueprint, blueprintProblems, type Problem } from './validate.ts';

export type BlueprintFormat = 'yaml' | 'json';

/** `json` for a .json file, else `yaml` (YAML files, or - for stdin). */
export function formatOfPath(path: string): BlueprintFormat {
  return path.toLowerCase().endsWith('.json') ? 'json' : 'yaml';
}

/** Strict UTF-8 text of a blueprint file or body; refuses invalid UTF-8 and oversize input. */
export function decodeBlueprintBytes(bytes: Uint8Array): string {
  if (bytes.length > LIMITS.maxTextBytes) throw new ZoneError('TOO_LARGE', `blueprint is larger than ${LIMITS.maxTextBytes} bytes`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ZoneError('INVALID', 'blueprint is not valid UTF-8 text');
  }
}

const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions & ToJSOptions = {
  version: '1.2',
  schema: 'core',
  customTags: [],
  merge: false,
  uniqueKeys: true,
  strict: true,
  prettyErrors: false,
  maxAliasCount: 100,
};

/** The YAML document of a blueprint text (for tools that edit it and keep its comments); refuses tags and bad YAML. */
export function parseYamlDocument(text: string): Document {
  const doc = parseDocument(text, YAML_OPTIONS);
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const line = text.slice(0, problem.pos[0]).split('\n').length;
    throw new ZoneError('INVALID', `not valid YAML (line ${line}): ${problem.message.split('\n')[0]}`);
  }
  visit(doc, {
    Node(_key, node) {
      if ('tag' in node && node.tag) {
        // Explicit tags change what a value is; a blueprint is plain data.
        throw new ZoneError('INVALID', `YAML tags are not accepted (found ${node.tag})`);
      }
    },
  });
  return doc;
}

function parseYaml(text: string): unknown {
  const doc = parseYamlDocument(text);
  try {
    return doc.toJS(YAML_OPTIONS);
  } catch (err) {
    // yaml refuses alias expansion that would cost too much (a "billion laughs" document).
    throw new ZoneError('INVALID', `YAML refused: ${(err as Error).message.split('\n')[0]}`);
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8 quotes a piece of the input in its message: keep only the reason.
    const reason = (err as Error).message.replace(/,? ".*" is not valid JSON$/s, '').slice(0, 120);
    throw new ZoneError('INVALID', `not valid JSON: ${reason}`);
  }
}

/** The plain value of a blueprint text, or ZoneError('INVALID' | 'TOO_LARGE'). Not yet validated: see validateBlueprint. */
export function parseBlueprintText(text: string, format: BlueprintFormat): unknown {
  if (typeof text !== 'string') throw new ZoneError('INVALID', 'blueprint text must be a string');
  if (Buffer.byteLength(text, 'utf8') > LIMITS.maxTextBytes) throw new ZoneError('TOO_LARGE', `blueprint is larger than ${LIMITS.maxTextBytes} bytes`);
  let value: unknown;
  try {
    value = format === 'json' ? parseJson(text) : parseYaml(text);
  } catch (err) {
    if (err instanceof ZoneError) throw err;
    // A stack overflow from absurd nesting, or any other parser failure: a refusal, not a crash.
    throw new ZoneError('INVALID', `cannot parse ${format.toUpperCase()}: ${err instanceof RangeError ? 'nested too deeply' : (err as Error).message.split('\n')[0]}`);
  }
  assertJsonValue(value);
  return value;
}
