// Compiles HealthLedger.sol with solc-js through its standard-JSON interface and
// prints the artifact `{"abi": [...], "bytecode": "0x..."}` that `alloy::sol!` reads.
//
// Usage: node compile.js <path to solc.js> <path to HealthLedger.sol>
// Driven by `cargo xtask contracts` (which writes HealthLedger.json) and by the
// artifact-freshness test of healthledger-chain (which compares the output).
"use strict";
const fs = require("fs");
const path = require("path");

const [solcPath, sourcePath] = process.argv.slice(2);
if (!solcPath || !sourcePath) {
  console.error("usage: node compile.js <solc.js> <HealthLedger.sol>");
  process.exit(2);
}
// solc.js is the package's command-line entry; the package itself (its
// directory) exports the compiler wrapper with `compile`.
const solc = require(path.dirname(path.resolve(solcPath)));
const name = path.basename(sourcePath);
const input = {
  language: "Solidity",
  sources: { [name]: { content: fs.readFileSync(sourcePath, "utf8") } },
  settings: {
    // Few runs: smaller code (HealthLedger must stay under the 24 KiB EIP-170 limit).
    optimizer: { enabled: true, runs: 20 },
    viaIR: true,
    evmVersion: "cancun",
    // No metadata hash: the bytecode then depends on the source alone, not on
    // file paths or comments' whitespace, so a fresh compile is reproducible.
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { [name]: { HealthLedger: ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
// A contract over the EIP-170 code size limit cannot be deployed on a real
// chain: that warning fails the build too.
const errors = (output.errors || []).filter(
  (e) => e.severity === "error" || /code size/i.test(e.message),
);
for (const e of output.errors || []) {
  console.error(e.formattedMessage || e.message);
}
if (errors.length > 0) {
  process.exit(1);
}
const contract = output.contracts[name].HealthLedger;
const artifact = {
  abi: contract.abi,
  bytecode: "0x" + contract.evm.bytecode.object,
};
process.stdout.write(JSON.stringify(artifact, null, 2) + "\n");
