// A second FHIR R4 validator for the export tests: FHIR.js (the npm package "fhir"), which
// shares no code with fhir.resources (the Python models that build and validate the export).
// It checks structure, cardinality, required bindings and reference target types.
// Usage: node validate.js FILE...  ->  one JSON line: {"FILE": {"valid": bool, "errors": [...]}}
"use strict";
const fs = require("fs");
const { Fhir } = require("fhir");

const fhir = new Fhir();
const out = {};
for (const file of process.argv.slice(2)) {
  const result = fhir.validate(JSON.parse(fs.readFileSync(file, "utf8")), {});
  out[file] = {
    valid: result.valid,
    errors: result.messages
      .filter((m) => m.severity === "error")
      .map((m) => `${m.location}: ${m.message}`),
  };
}
process.stdout.write(JSON.stringify(out) + "\n");
