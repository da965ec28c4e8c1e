// Bodies that cost a naive parser far more than their size: each just under the 1 MiB
// body limit (so that it reaches the parser), in the format that hurts most.

export interface HostileBody {
  what: string;
  type: 'application/json' | 'application/yaml';
  body: string;
}

const MIB = 1024 * 1024;

/** `count` keys, then a comment that makes the text 1 MiB long. */
function distinctKeys(count: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(`${i.toString(36).padStart(4, '0')}: 1`);
  const text = `${lines.join('\n')}\n`;
  return `${text}#${'.'.repeat(MIB - text.length - 2)}\n`;
}

/** The classic "billion laughs": every level ten aliases of the one below. */
function aliasBomb(levels: number): string {
  const lines = ['l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let i = 1; i < levels; i++) lines.push(`l${i}: &l${i} [${Array(10).fill(`*l${i - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

export const HOSTILE_BODIES: readonly HostileBody[] = [
  { what: 'a map of 120,000 distinct keys', type: 'application/yaml', body: distinctKeys(120_000) },
  { what: 'a 1 MiB flow sequence', type: 'application/yaml', body: `[${'1,'.repeat((MIB - 4) / 2)}1]` },
  { what: '1 MiB of nesting', type: 'application/yaml', body: `${'['.repeat(MIB / 2 - 1)}${']'.repeat(MIB / 2 - 1)}` },
  { what: 'an alias bomb (9 levels)', type: 'application/yaml', body: aliasBomb(9) },
  { what: 'an alias bomb within the alias count (6 levels)', type: 'application/yaml', body: aliasBomb(6) },
  { what: 'a JSON object of 100,000 distinct keys', type: 'application/json', body: `{${Array.from({ length: 100_000 }, (_, i) => `"${i.toString(36)}":1`).join(',')}}` },
  { what: 'a 1 MiB JSON array', type: 'application/json', body: `[${'1,'.repeat((MIB - 4) / 2)}1]` },
  { what: '1 MiB of JSON nesting', type: 'application/json', body: `${'['.repeat(MIB / 2 - 1)}${']'.repeat(MIB / 2 - 1)}` },
];
