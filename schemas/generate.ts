/**
 * Writes the contract's JSON Schema files (`schemas/*.schema.json`) from the
 * TypeBox definition: `npm run schemas`. Commit the result; the unit tests
 * fail while a committed file differs from what the definition renders.
 */
import { writeFileSync } from 'node:fs';
import { jsonSchemaFiles } from './json-schema.ts';

const dir = new URL('./', import.meta.url);
for (const [file, text] of Object.entries(jsonSchemaFiles())) {
  writeFileSync(new URL(file, dir), text);
  console.log(`schemas/${file}`);
}
