// Validation of a blueprint value: the TypeBox schema first, then the cross-field
// rules a schema cannot say (semantic.ts). Each problem names its field path and what
// would be accepted; no problem message repeats the value (it may be a secret).
import { FormatRegistry, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { Blueprint } from './schema.ts';
import { semanticProblems } from './semantic.ts';
import { parseDateTime } from './units.ts';
import { assertJsonValue } from './json-value.ts';
import { ZoneError } from '../lib/errors.ts';

export interface Problem {
  /** JSON pointer of the field, e.g. `/workloads/1/resources/memory`. */
  field: string;
  message: string;
}

if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (value) => parseDateTime(value) !== null);

const compiled = TypeCompiler.Compile(Blueprint);

function describe(schema: TSchema): string | undefined {
  return typeof schema.description === 'string' ? schema.description : undefined;
}

/** A union of objects told apart by a literal `kind` (the workload kinds). */
function kindVariants(schema: TSchema): Map<string, TSchema> | null {
  const variants = new Map<string, TSchema>();
  for (const s of (schema.anyOf ?? []) as TSchema[]) {
    const kind = s.properties?.kind?.const;
    if (typeof kind !== 'string') return null;
    variants.set(kind, s);
  }
  return variants.size ? variants : null;
}

function explain(e: ValueError): Problem[] {
  const field = e.path || '/';
  switch (e.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      const accepted = Object.keys((e.schema.properties ?? {}) as object);
      return [{ field, message: accepted.length ? `unknown field (accepted here: ${accepted.join(', ')})` : 'unknown field' }];
    }
    case ValueErrorType.ObjectRequiredProperty:
      return [{ field, message: 'required field is missing' }];
    case ValueErrorType.StringPattern:
      return [{ field, message: `must be ${describe(e.schema) ?? `a string matching ${String(e.schema.pattern)}`}` }];
    case ValueErrorType.StringFormat:
      return [{ field, message: e.schema.format === 'date-time' ? 'must be a real RFC 3339 date-time, e.g. 2027-01-01T00:00:00Z' : `must be a ${String(e.schema.format)}` }];
    case ValueErrorType.Union: {
      const variants = kindVariants(e.schema);
      if (!variants) break;
      const kind = (e.value as { kind?: unknown } | null)?.kind;
      const variant = typeof kind === 'string' ? variants.get(kind) : undefined;
      if (!variant) return [{ field: `${e.path}/kind`, message: `must be one of ${[...variants.keys()].join(', ')}` }];
      return [...Value.Errors(variant, e.value)].flatMap((inner) => explain({ ...inner, path: e.path + inner.path }));
    }
  }
  const accepted = describe(e.schema);
  return [{ field, message: accepted ? `${e.message.toLowerCase()} (${accepted})` : e.message.toLowerCase() }];
}

/** Every problem of a blueprint value: schema problems, or when there are none, the semantic ones. */
export function blueprintProblems(value: unknown): Problem[] {
  return checkBlueprint(value).problems;
}

function checkBlueprint(value: unknown): { problems: Problem[]; nestedKeysInCanonicalOrder: boolean } {
  let nestedKeysInCanonicalOrder: boolean;
  try {
    ({ nestedKeysInCanonicalOrder } = assertJsonValue(value));
  } catch (err) {
    if (err instanceof ZoneError) return { problems: [{ field: err.field ?? '/', message: err.message }], nestedKeysInCanonicalOrder: false };
    throw err;
  }
  const problems = (): Problem[] => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return [{ field: '/', message: 'a blueprint is an object (name, version, owner, node, workloads, ...)' }];
    }
    if (!compiled.Check(value)) {
      // One problem per field: TypeBox may report several for one value.
      const found = [...compiled.Errors(value)].flatMap(explain);
      return found.filter((p, i) => found.findIndex((q) => q.field === p.field) === i);
    }
    return semanticProblems(value);
  };
  return { problems: problems(), nestedKeysInCanonicalOrder };
}

/** The value as a Blueprint, or ZoneError('INVALID', reason, field) for its first problem. */
export function validateBlueprint(value: unknown): Blueprint {
  return validateBlueprintTelling(value).blueprint;
}

/**
 * validateBlueprint, also telling whether every object below the top one has its keys
 * in RFC 8785 order already (canonical.ts then makes the canonical bytes faster).
 */
export function validateBlueprintTelling(value: unknown): { blueprint: Blueprint; nestedKeysInCanonicalOrder: boolean } {
  const { problems: [first], nestedKeysInCanonicalOrder } = checkBlueprint(value);
  if (first) throw new ZoneError('INVALID', first.message, first.field);
  return { blueprint: value as Blueprint, nestedKeysInCanonicalOrder };
}
