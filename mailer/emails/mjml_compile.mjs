// Compile MJML read as JSON from stdin ({"mjml": "...", "validationLevel": "strict"|"soft"})
// with the reference renderer; write {"html", "errors", "version"} as JSON to stdout.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import mjml2html from "mjml";

const require = createRequire(import.meta.url);
const version = require("mjml/package.json").version;
const input = JSON.parse(readFileSync(0, "utf8"));
try {
  const result = await mjml2html(input.mjml, {
    validationLevel: input.validationLevel || "strict",
    keepComments: false,
  });
  process.stdout.write(JSON.stringify({ html: result.html, errors: result.errors || [], version }));
} catch (err) {
  // In strict mode mjml throws a ValidationError carrying the same list of errors.
  const errors = (err && err.errors) || [{ line: null, message: String((err && err.message) || err) }];
  process.stdout.write(JSON.stringify({ html: null, errors, version }));
}
