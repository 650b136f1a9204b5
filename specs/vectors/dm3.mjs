// Loads the official dm3 client libraries (npm 1.7.1) for generate.mjs and interop.mjs.
//
// Everything is loaded with require() *after* LOG_LEVEL is set: ES imports are hoisted, and
// dm3-lib-shared logs JSON lines to stdout at level "info" unless LOG_LEVEL says otherwise, which
// would corrupt the one-JSON-document-on-stdout contract of interop.mjs.
//
// @dm3-org/dm3-lib-delivery@1.7.1 cannot be required as a whole under node 20 (its index pulls in
// `cors` and `web-push`, which it does not declare), so its self-contained dist/Messages.js is
// loaded by file path; package "exports" only guards bare specifiers, not paths.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

process.env.LOG_LEVEL = process.env.LOG_LEVEL || 'warn';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

export const crypto = require('@dm3-org/dm3-lib-crypto');
export const profile = require('@dm3-org/dm3-lib-profile');
export const messaging = require('@dm3-org/dm3-lib-messaging');
export const shared = require('@dm3-org/dm3-lib-shared');
export const deliveryMessages = require(
    path.join(here, 'node_modules/@dm3-org/dm3-lib-delivery/dist/Messages.js'),
);
export const { ethers } = require('ethers');

/** Versions actually installed (read from node_modules, not from package.json). */
export function installedVersions() {
    const names = [
        '@dm3-org/dm3-lib-crypto',
        '@dm3-org/dm3-lib-profile',
        '@dm3-org/dm3-lib-messaging',
        '@dm3-org/dm3-lib-shared',
        '@dm3-org/dm3-lib-delivery',
        'ethers',
        'libsodium-wrappers',
        'safe-stable-stringify',
    ];
    const versions = {};
    for (const name of names) {
        const pkg = require(path.join(here, 'node_modules', name, 'package.json'));
        versions[name] = pkg.version;
    }
    return versions;
}

/** The object dm3 signs for an envelope: its metadata without `signature`. */
export function metadataWithoutSignature(metadata) {
    const rest = { ...metadata };
    delete rest.signature;
    return rest;
}

/** dm3-lib-delivery signPostmark's payload: sha256(stringify({incommingTimestamp, messageHash})). */
export function postmarkSignaturePayload(incommingTimestamp, messageHash) {
    return shared.sha256(shared.stringify({ incommingTimestamp, messageHash }));
}
