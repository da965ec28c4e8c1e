// Writes blueprints/blueprint.schema.json from the TypeBox schema, so editors can
// validate YAML blueprints: node --import tsx blueprints/write-json-schema.ts
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Blueprint } from './schema.ts';

export const JSON_SCHEMA_PATH = fileURLToPath(new URL('./blueprint.schema.json', import.meta.url));

/** The published JSON Schema text (TypeBox schemas are JSON Schema; its symbols drop out). */
export function blueprintJsonSchemaText(): string {
  return JSON.stringify({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...Blueprint }, null, 2) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(JSON_SCHEMA_PATH, blueprintJsonSchemaText());
  process.stdout.write(`wrote ${JSON_SCHEMA_PATH}\n`);
}
