// A blueprint file as the CLI reads it: bytes -> strict UTF-8 -> YAML or JSON value.
import { decodeBlueprintBytes, formatOfPath, parseBlueprintText, type BlueprintFormat } from '../blueprints/parse.ts';
import { inFile, readInput } from './output.ts';

export interface BlueprintFile {
  path: string;
  format: BlueprintFormat;
  text: string;
  /** Parsed, not yet validated. */
  value: unknown;
}

/** Reads FILE (or stdin for `-`, then YAML unless `format` says otherwise). */
export async function readBlueprintFile(path: string, format: BlueprintFormat = formatOfPath(path)): Promise<BlueprintFile> {
  const bytes = await readInput(path);
  return inFile(path, () => {
    const text = decodeBlueprintBytes(bytes);
    return { path, format, text, value: parseBlueprintText(text, format) };
  });
}
