// Reading blueprint text safely: bounded size, strict UTF-8, YAML without tags,
// merge keys or alias bombs, JSON with the same guard, and no error that echoes the
// text (it may hold a secret). Time and memory are linear in the size of the text and
// bounded by LIMITS: a hostile text is refused when it passes one, not after.
import {
  CST, Composer, Lexer, Parser, isScalar, visit,
  type Document, type DocumentOptions, type ErrorCode, type ParseOptions, type SchemaOptions, type ToJSOptions, type YAMLError, type YAMLMap,
} from 'yaml';
import { ZoneError } from '../lib/errors.ts';
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
  // The yaml library compares each key with every earlier one (quadratic: 200 KB of
  // distinct keys held the thread 6 s); keyProblem() below uses a Set instead.
  uniqueKeys: false,
  strict: true,
  prettyErrors: false,
  maxAliasCount: 100,
};

/** CST tokens that begin a value, an item or a pair: what the node count counts. */
const NODE_TOKENS = new Set<string>([
  'scalar', 'single-quoted-scalar', 'double-quoted-scalar', 'block-scalar-header', 'alias',
  'flow-map-start', 'flow-seq-start', 'seq-item-ind', 'map-value-ind', 'explicit-key-ind',
]);

/**
 * The yaml library's CST tokens of `text`, refused as soon as the text goes past a
 * limit: nodes, aliases, nesting, items of one collection. Checking while the tokens
 * are read keeps the cost of a hostile text to what the limits allow, not its size.
 */
function* boundedTokens(text: string): Generator<CST.Token> {
  const parser = new Parser();
  let nodes = 0;
  let aliases = 0;
  for (const lexeme of new Lexer().lex(text)) {
    yield* parser.next(lexeme);
    const type = CST.tokenType(lexeme);
    if (!type || !NODE_TOKENS.has(type)) continue;
    if (++nodes > LIMITS.maxNodes) throw new ZoneError('TOO_LARGE', `more than ${LIMITS.maxNodes} YAML nodes`);
    if (type === 'alias' && ++aliases > LIMITS.maxAliases) throw new ZoneError('TOO_LARGE', `more than ${LIMITS.maxAliases} YAML aliases`);
    checkOpenCollections(parser.stack);
  }
  yield* parser.end();
}

/** The parser's stack holds the document and every open collection and scalar, outermost first. */
function checkOpenCollections(stack: CST.Token[]): void {
  // The stack holds the document and may end with a scalar: two more than the nesting.
  if (stack.length > LIMITS.maxDepth + 2) throw new ZoneError('INVALID', `nested deeper than ${LIMITS.maxDepth} levels`);
  for (let i = stack.length - 1; i >= 0; i--) {
    const token = stack[i]!;
    if (token.type !== 'block-map' && token.type !== 'block-seq' && token.type !== 'flow-collection') continue;
    const isMap = token.type === 'block-map' || (token.type === 'flow-collection' && token.start.source === '{');
    const limit = isMap ? LIMITS.maxObjectKeys : LIMITS.maxArrayLength;
    // The words of assertJsonValue's refusals, so that both formats answer alike.
    if (token.items.length > limit) throw new ZoneError('INVALID', isMap ? `object with more than ${limit} keys` : `array longer than ${limit} items`);
    return; // only the innermost open collection grows
  }
}

/** Messages of the yaml library that quote a piece of the text, replaced by what they mean. */
const QUOTING_ERRORS: Partial<Record<ErrorCode, string>> = {
  BAD_DQ_ESCAPE: 'invalid escape sequence in a double-quoted string',
  BAD_SCALAR_START: 'a plain value starts with a reserved character',
  UNEXPECTED_TOKEN: 'unexpected token',
};

/** The yaml library's reason without what it quotes after a colon (a tag, an alias name: a piece of the text). */
function yamlReason(message: string): string {
  return message.split('\n')[0]!.replace(/: .*$/, '');
}

function yamlRefusal(text: string, problem: YAMLError): ZoneError {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < problem.pos[0]; i = text.indexOf('\n', i + 1)) line++;
  const reason = QUOTING_ERRORS[problem.code] ?? yamlReason(problem.message);
  return new ZoneError('INVALID', `not valid YAML (line ${line}): ${reason}`);
}

/** The one YAML document of `text`, composed from the bounded tokens. */
function composeDocument(text: string): Document {
  let doc: Document | undefined;
  for (const next of new Composer(YAML_OPTIONS).compose(boundedTokens(text), true, text.length)) {
    if (doc) throw new ZoneError('INVALID', 'a blueprint is one YAML document; this text holds several');
    doc = next;
  }
  return doc!;
}

/** What is wrong with the keys of one map, or null; duplicates found with a Set (linear), compared as the JSON object will hold them. */
function keyProblem(map: YAMLMap): string | null {
  const keys = new Set<string>();
  for (const pair of map.items) {
    const key = isScalar(pair.key) ? pair.key.value : pair.key;
    if (key !== null && typeof key === 'object') return 'a YAML map key must be a plain value, not a collection or an alias';
    const name = key === null || key === undefined ? '' : String(key);
    if (keys.has(name)) return 'a YAML map repeats a key (keys must be unique)';
    keys.add(name);
  }
  return null;
}

/** The YAML document of a blueprint text (for tools that edit it and keep its comments); refuses tags, duplicate keys, bad YAML and texts past LIMITS. */
export function parseYamlDocument(text: string): Document {
  const doc = composeDocument(text);
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw yamlRefusal(text, problem);
  visit(doc, {
    Node(_key, node) {
      if ('tag' in node && node.tag) {
        // Explicit tags change what a value is; a blueprint is plain data.
        // Only a standard tag is named: a custom one is a piece of the text.
        throw new ZoneError('INVALID', `YAML tags are not accepted${node.tag.startsWith('tag:yaml.org,2002:') ? ` (found ${node.tag})` : ''}`);
      }
    },
    Map(_key, map) {
      const problem = keyProblem(map);
      if (problem) throw new ZoneError('INVALID', problem);
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
    throw new ZoneError('INVALID', `YAML refused: ${yamlReason((err as Error).message)}`);
  }
}

const [QUOTE, BACKSLASH, COMMA, OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY] = ['"', '\\', ',', '{', '}', '[', ']'].map((c) => c.charCodeAt(0));

/**
 * One pass over a JSON text before JSON.parse builds anything: nesting, items of one
 * object or array and values in all, within LIMITS (counted so that assertJsonValue
 * would refuse whatever this refuses). The syntax is JSON.parse's to check.
 */
function checkJsonBounds(text: string): void {
  const open: { commas: number; object: boolean }[] = [];
  let values = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === QUOTE) break;
      }
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (open.length > LIMITS.maxDepth) throw new ZoneError('INVALID', `nested deeper than ${LIMITS.maxDepth} levels`);
      open.push({ commas: 0, object: c === OPEN_OBJECT });
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      open.pop();
    } else if (c === COMMA) {
      if (++values > LIMITS.maxNodes) throw new ZoneError('TOO_LARGE', `more than ${LIMITS.maxNodes} values`);
      const top = open.at(-1);
      if (top && ++top.commas >= (top.object ? LIMITS.maxObjectKeys : LIMITS.maxArrayLength)) {
        throw new ZoneError('INVALID', top.object ? `object with more than ${LIMITS.maxObjectKeys} keys` : `array longer than ${LIMITS.maxArrayLength} items`);
      }
    }
  }
}

function parseJson(text: string): unknown {
  checkJsonBounds(text);
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8 quotes a piece of the input in its message: keep only the reason.
    const reason = (err as Error).message.replace(/,? ".*$/s, '').slice(0, 120);
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
