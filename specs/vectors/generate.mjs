// Writes dm3-npm-1.7.1.json: golden vectors produced by the official dm3 client libraries from npm
// (version 1.7.1). Run from the repository root:
//
//     npm ci --prefix specs/vectors && node specs/vectors/generate.mjs
//
// Inputs are fixed (wallet keys, texts, symmetric keys). Parts dm3 makes random (nonces, ephemeral
// keys, message and postmark timestamps) are not forced: they are recorded as produced, so the file
// changes on every run but every entry stays self-consistent. Each section and case carries a
// "description" saying what it means and how a reimplementation should check it.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
    crypto,
    deliveryMessages,
    ethers,
    installedVersions,
    messaging,
    metadataWithoutSignature,
    postmarkSignaturePayload,
    profile as dm3Profile,
    shared,
} from './dm3.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const OUTPUT = path.join(here, 'dm3-npm-1.7.1.json');

// Fixed wallets. Alice's key is the one dm3's own createProfileKeys.test.ts uses, so this file can
// be cross-checked against dm3's published test vector. Bob's and the DS's are the well-known
// hardhat/anvil development accounts #1 and #2: test keys, never funded, never secret.
const WALLETS = {
    alice: '0xac58f2f021d6f148fd621b355edbd0ebadcf9682019015ef1219cf9c0c2ddc8b',
    bob: '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
    ds: '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
};
const NAMES = { alice: 'alice.eth', bob: 'bob.eth', ds: 'ds.ensign.eth' };
const DS_URL = 'http://127.0.0.1:8083';
// A non-default storage nonce (the widget lets dapps configure one; it changes every key).
const CUSTOM_NONCE = '0x' + '5a'.repeat(32);

const b64 = (bytes) => ethers.utils.base64.encode(bytes);
const fixedKey = (label) => b64(ethers.utils.arrayify(ethers.utils.sha256(ethers.utils.toUtf8Bytes(label))));

async function walletKeys(privateKey, nonce) {
    const wallet = new ethers.Wallet(privateKey);
    const message = crypto.getStorageKeyCreationMessage(nonce, wallet.address);
    const signature = await wallet.signMessage(message);
    const storageKey = await crypto.createStorageKey(signature);
    const keys = await dm3Profile.createProfileKeys(storageKey, nonce);
    return { wallet, message, signature, storageKey, keys };
}

async function keysSection() {
    const cases = [];
    for (const [who, nonce] of [
        ['alice', dm3Profile.DEFAULT_NONCE],
        ['bob', dm3Profile.DEFAULT_NONCE],
        ['bob', CUSTOM_NONCE],
    ]) {
        const { wallet, message, signature, storageKey, keys } = await walletKeys(WALLETS[who], nonce);
        cases.push({
            description:
                `${who}'s profile keys with ${nonce === dm3Profile.DEFAULT_NONCE ? 'DEFAULT_NONCE' : 'a custom nonce'}: ` +
                'crypto.getStorageKeyCreationMessage(nonce, address) signed with ethers Wallet.signMessage ' +
                '(personal_sign), crypto.createStorageKey(signature), profile.createProfileKeys(storageKey, nonce).',
            walletPrivateKey: WALLETS[who],
            address: wallet.address,
            nonce,
            storageKeyCreationMessage: message,
            signature,
            storageKey,
            encryptionKeyPair: keys.encryptionKeyPair,
            signingKeyPair: keys.signingKeyPair,
            storageEncryptionKey: keys.storageEncryptionKey,
            storageEncryptionNonce: keys.storageEncryptionNonce,
        });
    }
    const dsSeed = await crypto.createStorageKey(WALLETS.ds);
    cases.push({
        description:
            "The delivery service's keys as dm3's CLI installer derives them: seed = crypto.createStorageKey(" +
            'walletPrivateKeyHex) (sha256 of the UTF-8 of the hex text), then crypto.createKeyPair(seed) ' +
            'and crypto.createSigningKeyPair(seed). No wallet signature is involved.',
        seedInput: WALLETS.ds,
        storageKey: dsSeed,
        encryptionKeyPair: await crypto.createKeyPair(dsSeed),
        signingKeyPair: await crypto.createSigningKeyPair(dsSeed),
    });
    return {
        description:
            'Key derivation from a wallet key. defaultNonce is profile.DEFAULT_NONCE. Reproduce every field ' +
            'byte for byte: the message text, the EIP-191 signature (RFC 6979, deterministic), the storage ' +
            'key, the X25519 (crypto_kx_seed_keypair) and Ed25519 (64-byte secret) key pairs, all base64.',
        defaultNonce: dm3Profile.DEFAULT_NONCE,
        cases,
    };
}

async function sessionKeysSection() {
    const client = await crypto.createKeyPair(fixedKey('ensign kx client'));
    const server = await crypto.createKeyPair(fixedKey('ensign kx server'));
    const senderSide = await crypto.createSenderSessionKey(client, server.publicKey);
    const receiverSide = await crypto.createReceiverSessionKey(server, client.publicKey);
    return {
        description:
            'crypto_kx session keys: crypto.createSenderSessionKey(client, server.publicKey) (client side) and ' +
            'crypto.createReceiverSessionKey(server, client.publicKey) (server side). Key pairs come from ' +
            'crypto.createKeyPair(seed). encryptAsymmetric uses senderSide.sharedTx, decryptAsymmetric ' +
            'receiverSide.sharedRx, which are equal.',
        cases: [
            {
                description: 'client and server key pairs from fixed seeds',
                clientSeed: fixedKey('ensign kx client'),
                serverSeed: fixedKey('ensign kx server'),
                client,
                server,
                senderSide,
                receiverSide,
            },
        ],
    };
}

async function signaturesSection(signingKeyPair) {
    const payloads = [
        'test',
        '',
        'Grüße 👋 \u2028 "quoted"',
        shared.stringify({ b: [1, 2], a: 'x' }),
        shared.sha256('a hex string, as the postmark signs'),
    ];
    const cases = [];
    for (const payload of payloads) {
        cases.push({
            description: 'crypto.sign(privateKey, payload): base64 Ed25519 detached signature over UTF-8(payload)',
            payload,
            signature: await crypto.sign(signingKeyPair.privateKey, payload),
        });
    }
    return {
        description:
            "Ed25519 signatures made with Alice's signing key (see keys.cases[0]). Ed25519 is deterministic: " +
            'reproduce each signature exactly and verify it.',
        signingKeyPair,
        cases,
    };
}

async function profileSection(aliceKeys) {
    const wallet = new ethers.Wallet(WALLETS.alice);
    const created = await dm3Profile.createProfile(wallet.address, [NAMES.ds, 'backup-ds.eth'], undefined, {
        signer: (msg) => wallet.signMessage(msg),
    });
    const signed = created.signedProfile;
    const stringified = shared.stringify(signed.profile);
    return {
        description:
            "Alice's signed user profile from profile.createProfile(address, deliveryServices, provider, " +
            '{signer}) with an ethers Wallet as signer. The signature is EIP-191 personal_sign over ' +
            'profileCreationMessage = profile.getProfileCreationMessage(stringify(profile), address); RFC 6979 ' +
            'makes it deterministic. dataUri = shared.createJsonDataUri(signedProfile); dm3Hash = ' +
            'shared.sha256(stringify(signedProfile)), the value of ?dm3Hash= in profile links.',
        walletPrivateKey: WALLETS.alice,
        address: wallet.address,
        nonce: created.nonce,
        keysMatchKeysSection:
            created.keys.encryptionKeyPair.publicKey === aliceKeys.encryptionKeyPair.publicKey &&
            created.keys.signingKeyPair.publicKey === aliceKeys.signingKeyPair.publicKey,
        profile: signed.profile,
        stringifiedProfile: stringified,
        profileCreationMessage: dm3Profile.getProfileCreationMessage(stringified, wallet.address),
        signature: signed.signature,
        signedProfile: signed,
        dataUri: shared.createJsonDataUri(signed),
        dm3Hash: shared.sha256(shared.stringify(signed)),
        checkUserProfileWithAddress: dm3Profile.checkUserProfileWithAddress(signed, wallet.address),
    };
}

async function symmetricSection() {
    const key = fixedKey('ensign symmetric key');
    const cases = [];
    const add = async (description, plaintext, { padding = 2048, prevNonce } = {}) => {
        const payload = await crypto.encrypt(key, plaintext, prevNonce, padding);
        const roundTrip = await crypto.decrypt(key, payload, padding);
        if (roundTrip !== plaintext) throw new Error(`symmetric round trip failed: ${description}`);
        const c = { description, key, plaintext, padding, payload };
        if (prevNonce !== undefined) c.prevNonce = prevNonce;
        cases.push(c);
    };
    await add('short ASCII', 'test');
    await add('empty plaintext: one full 2048-byte padding block', '');
    await add('non-ASCII and line separators', 'Grüße 👋 \u2028\u2029 "quoted" \\ back');
    await add('2047 UTF-8 bytes: padding adds exactly the 0x80 byte (one block)', 'a'.repeat(2047));
    await add('2048 UTF-8 bytes: an already full block gets a second block', 'b'.repeat(2048));
    await add(
        'prevNonce given: dm3 uses it as is (its sodium.increment works on a copy), so the payload is deterministic',
        'deterministic',
        { prevNonce: '0x000102030405060708090a0b' },
    );
    await add('padding block 1 (as dm3 uses for deterministic storage names)', 'storage-name', {
        padding: 1,
        prevNonce: '0xffffffffffffffffffffffff',
    });
    return {
        description:
            'crypto.encrypt(key, plaintext, prevNonce, padding): ChaCha20-Poly1305-IETF over sodium.pad(UTF-8, ' +
            'padding); payload = {ciphertext (base64, tag included), nonce (0x-hex, 12 bytes)}. With the nonce ' +
            'known, encryption is deterministic: re-encrypting with payload.nonce must give payload.ciphertext, ' +
            'and decrypting must give plaintext.',
        cases,
    };
}

async function asymmetricSection(receiverKeyPair) {
    const cases = [];
    for (const [description, plaintext] of [
        ['short ASCII', 'test'],
        ['non-ASCII', 'Grüße 👋 \u2028'],
        ['a canonical-JSON object, as envelopes carry', shared.stringify({ to: 'bob.eth', from: 'alice.eth' })],
    ]) {
        const payload = await crypto.encryptAsymmetric(receiverKeyPair.publicKey, plaintext);
        const sessionKey = (await crypto.createReceiverSessionKey(receiverKeyPair, payload.ephemPublicKey)).sharedRx;
        const roundTrip = await crypto.decryptAsymmetric(receiverKeyPair, payload);
        if (roundTrip !== plaintext) throw new Error(`asymmetric round trip failed: ${description}`);
        cases.push({
            description,
            receiverKeyPair,
            plaintext,
            payload,
            wire: shared.stringify(payload),
            sessionKey,
        });
    }
    return {
        description:
            "crypto.encryptAsymmetric(receiver.publicKey, plaintext) to Bob's encryption key: a fresh ephemeral " +
            'crypto_kx key pair (client side); key = sharedTx; payload = {ciphertext, nonce, ephemPublicKey}. ' +
            'wire = stringify(payload), the form envelopes carry. sessionKey = the receiver side sharedRx ' +
            '(createReceiverSessionKey(receiverKeyPair, ephemPublicKey)); decrypting the payload with the ' +
            'receiver key pair must give plaintext, and re-encrypting plaintext symmetrically with sessionKey ' +
            'and payload.nonce must give payload.ciphertext.',
        cases,
    };
}

function canonicalSection() {
    const cases = [
        ['nested objects and arrays, keys out of order', { z: { b: [3, { y: 1, x: [] }], a: null }, a: true, m: [false, 'x'] }],
        ['non-ASCII left unescaped', { ünïcödé: '日本語', emoji: '👋🏽', mixed: 'Grüße' }],
        ['U+2028 and U+2029 left raw', { text: 'line\u2028separator\u2029paragraph' }],
        ['control characters, DEL left raw', { c: '\u0000\u0001\u0008\u0009\u000a\u000c\u000d\u001f\u007f' }],
        ['quotes, backslash and slash', { q: 'say "hi" \\ / done', "k\"ey": "v'al" }],
        ['empty containers', { a: [], b: {}, c: [[]], d: [{}], e: '' }],
        ['object keys sorted by UTF-16 code unit, not code point', { '\uFB01': 1, '😀': 2, z: 3, Z: 4, é: 5, '': 6 }],
        ['integers: zero, negative, ms timestamp, 2^53-1', { i: [0, -1, 1700000000000, 9007199254740991] }],
        ['top-level string holding JSON (envelope.message is stringified this way)', '{"ciphertext":"a+b/c=","nonce":"0x00"}'],
        ['top-level null', null],
        ['top-level boolean', true],
        ['top-level integer', 42],
        ['top-level empty string', ''],
        ['top-level empty array', []],
        [
            'a dm3 message shape with absent optionals already omitted',
            {
                message: 'hi',
                metadata: { type: 'NEW', to: 'bob.eth', from: 'alice.eth', timestamp: 1700000000000 },
                signature: 'c2ln',
            },
        ],
    ].map(([description, value]) => ({ description, value, stringify: shared.stringify(value) }));
    const unsupported = [
        ['a float: JavaScript writes 1.5', { f: 1.5 }],
        ['a large float: JavaScript writes 1e+21', 1e21],
        ['a lone surrogate: safe-stable-stringify escapes it as \\ud800', { s: '\ud800' }],
    ].map(([description, value]) => ({ description, value, stringify: shared.stringify(value) }));
    return {
        description:
            'shared.stringify (safe-stable-stringify 2.4.3): sorted keys, compact, raw UTF-8. Each case gives ' +
            'the value (as parsed from this file) and the exact output; a reimplementation must be byte-equal ' +
            '(compare UTF-8 bytes).',
        cases,
        unsupported: {
            description:
                'Values dm3 stringifies but that never occur in dm3 payloads and that Ensign refuses on purpose ' +
                '(its stringify raises CanonicalJSONError). dm3 output recorded for reference only.',
            cases: unsupported,
        },
    };
}

function hashesSection() {
    const inputs = ['', 'dm3_default_nonce', 'Grüße 👋', shared.stringify('{"a":1}')];
    return {
        description:
            'shared.sha256(text) ("0x" + hex SHA-256 of UTF-8) and ethers.utils.hashMessage(text) (EIP-191 ' +
            'keccak, as the postmark uses).',
        cases: inputs.map((text) => ({
            description: 'sha256 and hashMessage of text',
            text,
            sha256: shared.sha256(text),
            hashMessage: ethers.utils.hashMessage(text),
        })),
    };
}

function normalizeSection() {
    const names = [
        'alice.eth',
        'Alice.ETH',
        'UPPER-case-label',
        'ＡＢＣ.eth',
        'Bücher.eth',
        '0xAbC0000000000000000000000000000000000DeF',
        'ab--c.eth',
        '-lead.eth',
        // ethers' shortcut: plain [a-z0-9-] of at most 59 characters is only lowercased, so the
        // hyphen rule does not apply; at 60 characters the full nameprep path (and the rule) runs.
        'Ab--cd',
        '-x-',
        'ab--' + 'c'.repeat(56),
    ];
    return {
        description:
            'profile.normalizeEnsName(name) (ethers nameprep). "error" holds the message when dm3 throws.',
        cases: names.map((name) => {
            try {
                return { description: 'normalizeEnsName', name, normalized: dm3Profile.normalizeEnsName(name) };
            } catch (err) {
                return { description: 'normalizeEnsName throws', name, error: err.message };
            }
        }),
    };
}

async function envelopeCase(description, buildMessage, parties) {
    const { alice, bob, ds, bobProfile, dsProfile } = parties;
    const message = await buildMessage(alice.signingKeyPair.privateKey);
    const built = await messaging.buildEnvelop(message, crypto.encryptAsymmetric, {
        to: { ensName: message.metadata.to, profile: bobProfile },
        from: { ensName: message.metadata.from },
        deliverServiceProfile: dsProfile,
        keys: alice,
    });
    const envelope = built.encryptedEnvelop;
    const messageWithoutSignature = { ...message };
    delete messageWithoutSignature.signature;
    const deliveryInformation = await deliveryMessages.decryptDeliveryInformation(envelope, ds.encryptionKeyPair);
    const decrypted = JSON.parse(await crypto.decryptAsymmetric(bob.encryptionKeyPair, JSON.parse(envelope.message)));
    const metadataPayload = shared.stringify(metadataWithoutSignature(envelope.metadata));
    const dm3Checks = {
        messageSignature: await messaging.checkMessageSignature(decrypted, alice.signingKeyPair.publicKey, message.metadata.from),
        metadataSignature: await crypto.checkSignature(alice.signingKeyPair.publicKey, metadataPayload, envelope.metadata.signature),
        encryptedMessageHash: shared.sha256(shared.stringify(envelope.message)) === envelope.metadata.encryptedMessageHash,
        schema: shared.validateSchema(messaging.schema.EncryptionEnvelopeSchema, envelope),
        decryptedEqualsMessage: shared.stringify(decrypted) === shared.stringify(message),
    };
    for (const [check, ok] of Object.entries(dm3Checks)) {
        if (!ok) throw new Error(`dm3 rejected its own envelope (${check}): ${description}`);
    }
    return {
        description,
        sender: { ensName: message.metadata.from, signingKeyPair: alice.signingKeyPair },
        receiver: { ensName: message.metadata.to, profile: bobProfile, encryptionKeyPair: bob.encryptionKeyPair },
        deliveryService: {
            profile: dsProfile,
            encryptionKeyPair: ds.encryptionKeyPair,
            signingKeyPair: ds.signingKeyPair,
        },
        message,
        messageSignaturePayload: shared.stringify(messageWithoutSignature),
        plaintextMessageHash: shared.sha256(shared.stringify(message)),
        envelope,
        envelopeWire: JSON.stringify(envelope),
        encryptedMessageHash: envelope.metadata.encryptedMessageHash,
        metadataSignaturePayload: metadataPayload,
        deliveryInformation,
        deliveryServiceUrl: built.deliveryServiceUrl,
        dm3Checks,
    };
}

async function envelopesSection(parties) {
    const cases = [
        await envelopeCase(
            'NEW message from messaging.createMessage(to, from, text, signingKey)',
            (sk) => messaging.createMessage(NAMES.bob, NAMES.alice, 'Hello Bob! 👋', sk),
            parties,
        ),
        await envelopeCase(
            'REPLY with referenceMessageHash and an attachment; text with quotes, U+2028 and a control character',
            (sk) =>
                messaging.createReplyMessage(
                    NAMES.bob,
                    NAMES.alice,
                    'Re: "that" \u2028 line\ttab',
                    sk,
                    shared.sha256('the referenced message'),
                    [{ name: 'hi.txt', data: 'data:text/plain;base64,aGk=' }],
                ),
            parties,
        ),
        await envelopeCase(
            'REACTION: dm3 keeps the empty attachments array in the signed JSON',
            (sk) => messaging.createReactionMessage(NAMES.bob, NAMES.alice, '👍', sk, shared.sha256('some message')),
            parties,
        ),
    ];
    return {
        description:
            'Envelopes built by messaging.buildEnvelop(message, crypto.encryptAsymmetric, {to, from, ' +
            "deliverServiceProfile, keys}) from Alice to Bob through the DS (keys.cases[0], [1], [3]). envelope is " +
            'what the sender POSTs (params[0] of dm3_submitMessage is envelopeWire = JSON.stringify(envelope)). ' +
            'npm 1.7.1 writes metadata.encryptedMessageHash = sha256(stringify(envelope.message)) and signs ' +
            'metadataSignaturePayload = stringify(metadata without signature) with the sender Ed25519 key. The ' +
            'receiver decrypts envelope.message with its encryption key pair to message; its signature covers ' +
            'messageSignaturePayload. The DS decrypts metadata.deliveryInformation to deliveryInformation. ' +
            'plaintextMessageHash = sha256(stringify(message)) is what the git-source form would carry as ' +
            'metadata.messageHash (informational). dm3Checks: dm3 verified its own output (all true).',
        cases,
    };
}

async function postmarkSection(parties, envelopeVector) {
    const { bob, ds, bobProfile } = parties;
    const envelope = envelopeVector.envelope;
    const dsKeys = { signingKeyPair: ds.signingKeyPair, encryptionKeyPair: ds.encryptionKeyPair };
    const handled = await deliveryMessages.handleIncomingMessage(envelope, dsKeys, bobProfile);
    const stored = handled.encryptedEnvelop;
    const opened = await messaging.decryptEnvelop(stored, bob.encryptionKeyPair);
    const postmark = opened.postmark;
    const signaturePayload = postmarkSignaturePayload(postmark.incommingTimestamp, postmark.messageHash);
    const dm3Checks = {
        messageHash: postmark.messageHash === ethers.utils.hashMessage(shared.stringify(envelope.message)),
        signature: await crypto.checkSignature(ds.signingKeyPair.publicKey, signaturePayload, postmark.signature),
    };
    for (const [check, ok] of Object.entries(dm3Checks)) {
        if (!ok) throw new Error(`postmark check failed: ${check}`);
    }
    return {
        description:
            "A postmark added by dm3-lib-delivery's Messages.handleIncomingMessage(envelope, dsKeys, receiverProfile) " +
            '(addPostmark + decryptDeliveryInformation) to envelopes.cases[0]. storedEnvelope is the envelope ' +
            'with postmark = stringify(encrypted payload) as the dm3 DS stores and delivers it. The receiver ' +
            '(messaging.decryptEnvelop with its key pair) gets postmark {incommingTimestamp (ms), messageHash = ' +
            'ethers.utils.hashMessage(stringify(envelope.message)), signature}; the signature is Ed25519 by the ' +
            'DS over signaturePayload = sha256(stringify({incommingTimestamp, messageHash})). Ed25519 is ' +
            'deterministic, so re-signing with the same timestamp gives the same signature.',
        deliveryService: { profile: parties.dsProfile, signingKeyPair: ds.signingKeyPair, encryptionKeyPair: ds.encryptionKeyPair },
        receiver: { profile: bobProfile, encryptionKeyPair: bob.encryptionKeyPair },
        envelope,
        storedEnvelope: stored,
        postmarkWire: stored.postmark,
        postmark,
        signaturePayload,
        deliveryInformation: handled.decryptedDeliveryInformation,
        dm3Checks,
    };
}

async function main() {
    const keys = await keysSection();
    const [alice, bob, , ds] = keys.cases;
    const bobProfile = {
        publicEncryptionKey: bob.encryptionKeyPair.publicKey,
        publicSigningKey: bob.signingKeyPair.publicKey,
        deliveryServices: [NAMES.ds],
    };
    const dsProfile = {
        publicEncryptionKey: ds.encryptionKeyPair.publicKey,
        publicSigningKey: ds.signingKeyPair.publicKey,
        url: DS_URL,
    };
    const parties = { alice, bob, ds, bobProfile, dsProfile };
    const envelopes = await envelopesSection(parties);

    const out = {
        description:
            'Golden vectors produced by the official dm3 client libraries from npm, version 1.7.1, for checking ' +
            'Ensign (ensign.protocol) byte for byte. Regenerate with `npm ci --prefix specs/vectors && node ' +
            'specs/vectors/generate.mjs` (see specs/vectors/README.md). Key pairs use dm3 field names ' +
            '{publicKey, privateKey} (base64; Ed25519 privateKey is the 64-byte libsodium secret key). Random ' +
            'parts (nonces, ephemeral keys, timestamps) are recorded, not fixed.',
        generatedBy: {
            script: 'specs/vectors/generate.mjs',
            node: process.version,
            packages: installedVersions(),
        },
        vectors: {
            keys,
            sessionKeys: await sessionKeysSection(),
            signatures: await signaturesSection(alice.signingKeyPair),
            profile: await profileSection(alice),
            symmetric: await symmetricSection(),
            asymmetric: await asymmetricSection(bob.encryptionKeyPair),
            canonicalJson: canonicalSection(),
            hashes: hashesSection(),
            normalizeEnsName: normalizeSection(),
            envelopes,
            postmark: await postmarkSection(parties, envelopes.cases[0]),
        },
    };
    fs.writeFileSync(OUTPUT, JSON.stringify(out, null, 2) + '\n');
    process.stderr.write(`wrote ${path.relative(process.cwd(), OUTPUT)}\n`);
}

main().catch((err) => {
    process.stderr.write(`generate.mjs failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
