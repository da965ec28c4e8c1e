// The entry of a parse worker thread (./worker.ts holds the code). Plain JavaScript
// because tsx's hooks do not reach worker threads here: piscina would load worker.ts
// through require(), which fails on the ESM-only packages it imports (canonicalize).
import { register } from 'tsx/esm/api';

register();
const { default: parseBody } = await import('./worker.ts');
export default parseBody;
